"""The benchmark itself: every artifact x every interpreter x thread counts, the pipeline, the Keras reference.

Edge artifacts are measured in this process through :class:`edge.runtime.Model`
(the same code the camera runner uses); TensorFlow is never imported here, so
it cannot hold threads or memory while the light runtimes are timed. The Keras
reference and every cold start run in child processes (``benchmarks.child``).
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from edge import contract, heap
from edge import runtime as rt
from edge.manifest import Manifest
from edge.runtime import Model, ModelError

from .child import B64, MARK
from .host import usable_cores
from .timing import time_calls

log = logging.getLogger("bench")
ROOT = Path(__file__).resolve().parent.parent
INSTALL_HINT = {"tflite_runtime": " (needs numpy<2)"}


@dataclass(frozen=True)
class Settings:
    budget_s: float = 2.0  # timed batch-1 calls per row
    warmup_s: float = 0.3
    b64_budget_s: float = 1.0
    test_images: int = 10000
    cold_runs: int = 3  # light runtimes
    keras_cold_runs: int = 3  # 0: skip (TensorFlow takes seconds to import)
    predict_runs: int = 15  # model.predict reference
    frames: int = 12  # pre-rendered frames per digit count
    e2e_budget_s: float = 3.0
    digit_counts: tuple[int, ...] = (1, 10)
    child_timeout_s: float = 300.0

    @classmethod
    def quick(cls) -> Settings:
        return cls(budget_s=0.05, warmup_s=0.02, b64_budget_s=0.03, test_images=500, cold_runs=1,
                   keras_cold_runs=0, predict_runs=3, frames=2, e2e_budget_s=0.1)


def thread_counts() -> list[int]:
    n = usable_cores()
    return [1] if n <= 1 else [1, n]


# -- runtimes ----------------------------------------------------------------------------------
def runtime_candidates(kind: str) -> tuple[str, ...]:
    """Every interpreter edge.runtime knows for ``kind``, installed or not (read at call time)."""
    return rt.TFLITE_RUNTIMES if kind == "tflite" else rt.ONNX_RUNTIMES


def missing_reason(name: str, kind: str) -> str:
    """Why ``name`` is not usable, with what to do about it."""
    pip = rt.PIP_NAME.get(name, name.replace("_", "-"))
    module = "ai_edge_litert.interpreter" if name == "ai_edge_litert" else name
    try:
        importlib.import_module(module)
    except ModuleNotFoundError:
        return f"not installed: pip install {pip}{INSTALL_HINT.get(name, '')}"
    except Exception as e:  # noqa: BLE001  (a broken wheel raises anything at import)
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        return f"broken install ({type(e).__name__}: {first}): pip install --force-reinstall {pip}{INSTALL_HINT.get(name, '')}"
    return f"not available: edge.runtime.available_runtimes({kind!r}) does not list {name}"


# -- child processes ---------------------------------------------------------------------------
class ChildError(RuntimeError):
    pass


def run_child(args: list[str], timeout: float) -> tuple[dict, float, float]:
    """Run ``python -m benchmarks.child ARGS``; return (its result, start wall time, ru_maxrss in MB).

    ru_maxrss (os.wait4: this child only, not every child) is a fallback: Linux
    keeps it across exec, so it can show the forking parent's size. The cold
    child reports its own VmHWM from /proc, which is what the table uses.
    """
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t_start = time.time()
        p = subprocess.Popen([sys.executable, "-m", "benchmarks.child", *args], stdout=out, stderr=err, env=env,
                             stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while True:
            pid, status, usage = os.wait4(p.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                p.kill()
                os.wait4(p.pid, 0)
                p.returncode = -9
                raise ChildError(f"timed out after {timeout:.0f}s")
            time.sleep(0.002)
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode("utf-8", "replace")
        stderr = err.read().decode("utf-8", "replace")
    if p.returncode != 0:
        lines = [ln for ln in stderr.strip().splitlines() if ln.strip()]
        raise ChildError(f"exit {p.returncode}: {lines[-1] if lines else 'no message'}")
    for line in reversed(stdout.splitlines()):
        if line.startswith(MARK):
            import json

            return json.loads(line[len(MARK):]), t_start, usage.ru_maxrss / 1024.0  # KiB on Linux
    raise ChildError("the child printed no result")


def cold_start(path: Path, runtime: str, threads: int | None, runs: int, timeout: float) -> dict:
    """Median over ``runs`` new processes of start -> first prediction, and their peak RSS."""
    if runs <= 0:
        return {"cold_start_ms": None, "cold_start_runs": 0, "peak_rss_mb": None, "cold_note": "skipped"}
    times, rss = [], []
    args = ["cold", "--file", str(path.resolve()), "--runtime", runtime]
    if threads:
        args += ["--threads", str(threads)]
    try:
        for _ in range(runs):
            res, t0, peak = run_child(args, timeout)
            times.append((res["t_first"] - t0) * 1e3)
            rss.append(res["vm_hwm_kb"] / 1024.0 if res.get("vm_hwm_kb") else peak)
    except ChildError as e:
        return {"cold_start_ms": None, "cold_start_runs": 0, "peak_rss_mb": None, "cold_note": f"failed: {e}"}
    return {"cold_start_ms": float(np.median(times)), "cold_start_runs": len(times),
            "cold_start_all_ms": [round(t, 1) for t in times], "peak_rss_mb": float(max(rss)), "cold_note": ""}


# -- rows --------------------------------------------------------------------------------------
COLUMNS = ("kind", "key", "file", "format", "precision", "runtime", "runtime_version", "threads", "bytes", "status",
           "accuracy", "test_images", "latency_median_ms", "latency_p90_ms", "latency_p99_ms", "latency_runs",
           "predict_median_ms", "b64_images_per_s", "b64_batch_median_ms", "b64_note", "cold_start_ms",
           "cold_start_runs", "peak_rss_mb", "cold_note", "int8_float_latency_ratio")


def empty_row(**fields) -> dict:
    """A model row with every column (None until measured), then ``fields``."""
    row = dict.fromkeys(COLUMNS)
    row.update(kind="model", status="ok", b64_note="", cold_note="", cold_start_runs=0)
    row.update(fields)
    return row


def base_row(art, runtime: str, threads: int | None) -> dict:
    return empty_row(key=art.key, file=art.file, format=art.format, precision=art.precision, runtime=runtime,
                     runtime_version=rt.runtime_version(runtime), threads=threads, bytes=art.entry.get("bytes"))


def _first_line(e: BaseException) -> str:
    """The message's first line, without onnxruntime's "[ONNXRuntimeError] : 2 : INVALID_ARGUMENT : " prefix."""
    line = (str(e).strip().splitlines() or [type(e).__name__])[0]
    return re.sub(r"^\[ONNXRuntimeError\] : \d+ : \w+ : ", "", line)


def _resized_tflite(path: Path, runtime: str, threads: int, delegates: bool = True):
    mod = importlib.import_module(f"{runtime}.interpreter")
    kwargs = {"model_path": str(path), "num_threads": int(threads)}
    if not delegates:
        kwargs["experimental_op_resolver_type"] = mod.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    interp = mod.Interpreter(**kwargs)
    interp.resize_tensor_input(interp.get_input_details()[0]["index"], [B64, 28, 28, 1])
    interp.allocate_tensors()
    return interp


def batch64(art, runtime: str, threads: int, model: Model, x64: np.ndarray, ref_pred: np.ndarray,
            s: Settings) -> dict:
    """Throughput at batch 64, or n/a with the reason. Results must match the batch-1 model's."""
    q = model.encode(x64)
    if model.batch == 0:
        run = lambda: model.invoke(q)  # noqa: E731
    elif art.format == "tflite":
        try:
            interp = _resized_tflite(art.path, runtime, threads)
        except Exception as e:  # noqa: BLE001
            try:  # XNNPack's own message says little; the builtin kernels name the op that pins the batch
                _resized_tflite(art.path, runtime, threads, delegates=False)
                why = _first_line(e)
            except Exception as e2:  # noqa: BLE001
                why = _first_line(e2)
            return {"b64_note": f"n/a: fixed batch {model.batch} and resize_tensor_input to {B64} fails: {why} "
                                "(a Flatten/Reshape in the graph holds the batch-1 shape)"}
        idx = interp.get_input_details()[0]["index"]
        out_idx = interp.get_output_details()[0]["index"]

        def run():
            interp.set_tensor(idx, q)
            interp.invoke()
            return interp.get_tensor(out_idx)
    else:
        def run():
            return model.invoke(q)
    try:
        y = run()
    except Exception as e:  # noqa: BLE001
        return {"b64_note": f"n/a: fixed batch {model.batch} (input {list(model.input.shape)}); "
                            f"{runtime} rejects batch {B64}: {_first_line(e)}"}
    y = np.asarray(y)
    if y.shape != (B64, 10):
        return {"b64_note": f"n/a: batch-{B64} output has shape {list(y.shape)}"}
    agree = int((model.decode(y).argmax(1) == ref_pred).sum())
    if agree != B64:
        return {"b64_note": f"n/a: the batch-{B64} interpreter disagrees with batch 1 on {B64 - agree}/{B64} images"}
    st = time_calls(run, budget_s=s.b64_budget_s, warmup_s=s.warmup_s, min_runs=3, min_warmup=2)
    note = "resized interpreter (resize_tensor_input)" if model.batch and art.format == "tflite" else ""
    return {"b64_images_per_s": B64 / (st["median_ms"] / 1e3), "b64_batch_median_ms": st["median_ms"],
            "b64_note": note}


def edge_rows(manifest: Manifest, x: np.ndarray, y: np.ndarray, s: Settings) -> list[dict]:
    rows = []
    threads = thread_counts()
    for art in manifest.artifacts:
        kind = art.format
        installed = rt.available_runtimes(kind)
        try:
            art.verify()
            verify_error = None
        except ModelError as e:
            verify_error = str(e)
        for runtime in runtime_candidates(kind):
            if runtime not in installed:
                row = base_row(art, runtime, None)
                row["status"] = missing_reason(runtime, kind)
                row["runtime_version"] = None
                rows.append(row)
                log.info("%-14s %-15s %s", art.key, runtime, row["status"])
                continue
            if verify_error:
                row = base_row(art, runtime, None)
                row["status"] = f"failed: {verify_error}"
                rows.append(row)
                continue
            rows.extend(_measure_artifact(art, runtime, threads, x, y, s))
    return rows


def _measure_artifact(art, runtime: str, threads: list[int], x, y, s: Settings) -> list[dict]:
    t = time.perf_counter()
    try:  # accuracy: once per artifact x runtime (thread count does not change the arithmetic)
        probs = Model(art.path, runtime=runtime, threads=max(threads)).predict(x)
        accuracy = float((probs.argmax(1) == y).mean())
    except Exception as e:  # noqa: BLE001  (a runtime that fails is a row, not a crash)
        row = base_row(art, runtime, None)
        row["status"] = f"failed: {_first_line(e)}"
        log.warning("%-14s %-15s %s", art.key, runtime, row["status"])
        return [row]
    log.info("%-14s %-15s accuracy %.2f%% on %d images (%.1fs)", art.key, runtime, 100 * accuracy, len(y),
             time.perf_counter() - t)
    rows = []
    x64 = np.resize(x, (B64,) + x.shape[1:])
    ref64 = probs[np.arange(B64) % len(x)].argmax(1)
    for n in threads:
        row = base_row(art, runtime, n)
        row.update(accuracy=accuracy, test_images=int(len(y)))
        try:
            m = Model(art.path, runtime=runtime, threads=n)
            q = m.encode(x[:1])
            lat = time_calls(lambda: m.invoke(q), budget_s=s.budget_s, warmup_s=s.warmup_s)
            row.update(latency_median_ms=lat["median_ms"], latency_p90_ms=lat["p90_ms"],
                       latency_p99_ms=lat["p99_ms"], latency_runs=lat["runs"], latency_warmup_runs=lat["warmup_runs"])
            x1 = x[:1]
            pred = time_calls(lambda: m.predict(x1), budget_s=s.budget_s / 4, warmup_s=s.warmup_s / 4)
            row["predict_median_ms"] = pred["median_ms"]
            row.update(batch64(art, runtime, n, m, x64, ref64, s))
        except Exception as e:  # noqa: BLE001
            row["status"] = f"failed: {_first_line(e)}"
            rows.append(row)
            log.warning("%-14s %-15s %d thread(s): %s", art.key, runtime, n, row["status"])
            continue
        row.update(cold_start(art.path, runtime, n, s.cold_runs, s.child_timeout_s))
        log.info("%-14s %-15s %d thread(s): batch-1 median %.3f ms (%d runs), cold start %s ms",
                 art.key, runtime, n, row["latency_median_ms"], row["latency_runs"],
                 f"{row['cold_start_ms']:.0f}" if row["cold_start_ms"] else "-")
        rows.append(row)
    return rows


# -- Keras reference ---------------------------------------------------------------------------
def keras_rows(manifest: Manifest, data_dir: str | None, s: Settings) -> tuple[list[dict], dict | None]:
    """Keras float model through a compiled call, one child process per thread count; plus model.predict."""
    src = manifest.root / manifest.data.get("source_model", {}).get("file", "model.keras")
    threads = thread_counts()

    def row(n):
        return empty_row(key="keras_float32", file=src.name, format="keras", precision="float32", runtime="keras",
                         runtime_version=rt.runtime_version("keras"), threads=n,
                         bytes=src.stat().st_size if src.is_file() else None)

    missing = [m for m in ("tensorflow", "keras") if importlib.util.find_spec(m) is None]
    if missing:
        r = row(None)
        r["status"] = f"not installed: {' and '.join(missing)}; pip install -e '.[train]'"
        r["runtime_version"] = None
        return [r], None
    if not src.is_file():
        r = row(None)
        r["status"] = f"failed: {src}: the Keras model is missing; run `make train` or copy model.keras beside manifest.json"
        return [r], None
    rows, predict_ref, accuracy = [], None, None
    for n in threads:
        r = row(n)
        args = ["keras", "--model", str(src.resolve()), "--threads", str(n),
                "--budget", str(s.budget_s), "--b64-budget", str(s.b64_budget_s), "--warmup", str(s.warmup_s),
                "--test-images", str(s.test_images if accuracy is None else 0)]
        if data_dir:
            args += ["--data", str(data_dir)]
        if n == max(threads):
            args += ["--predict-ref", "--predict-runs", str(s.predict_runs)]
        try:
            res, _, _ = run_child(args, s.child_timeout_s)
        except ChildError as e:
            r["status"] = f"failed: {e}"
            rows.append(r)
            log.warning("keras %d thread(s): %s", n, r["status"])
            continue
        if accuracy is None:
            accuracy = (res["accuracy"], res["test_images"])
        lat, b64 = res["latency"], res["batch64"]
        r.update(accuracy=accuracy[0], test_images=accuracy[1], latency_median_ms=lat["median_ms"],
                 latency_p90_ms=lat["p90_ms"], latency_p99_ms=lat["p99_ms"], latency_runs=lat["runs"],
                 latency_warmup_runs=lat["warmup_runs"], b64_images_per_s=B64 / (b64["median_ms"] / 1e3),
                 b64_batch_median_ms=b64["median_ms"], b64_note="tf.function, input signature (64, 28, 28, 1)")
        if "predict" in res:
            p = res["predict"]
            predict_ref = {"kind": "keras_predict", "threads": n, "median_ms": p["median_ms"], "p90_ms": p["p90_ms"],
                           "runs": p["runs"], "warmup_runs": p["warmup_runs"],
                           "what": "keras model.predict(one image, verbose=0), as in the tutorials"}
        r.update(cold_start(src, "keras", n, s.keras_cold_runs, s.child_timeout_s))
        if s.keras_cold_runs <= 0:
            r["cold_note"] = "skipped (--quick: TensorFlow takes seconds to start)"
        log.info("keras          compiled call   %d thread(s): batch-1 median %.3f ms (%d runs)", n,
                 r["latency_median_ms"], r["latency_runs"])
        rows.append(r)
    return rows, predict_ref


def add_ratios(rows: list[dict]) -> None:
    """int8 median / float32 median for the same format, runtime and thread count (< 1: int8 is faster)."""
    ok = [r for r in rows if r["status"] == "ok" and r["latency_median_ms"]]
    for r in ok:
        if r["precision"] != "int8":
            continue
        for f in ok:
            if (f["precision"] == "float32" and f["format"] == r["format"] and f["runtime"] == r["runtime"]
                    and f["threads"] == r["threads"]):
                r["int8_float_latency_ratio"] = r["latency_median_ms"] / f["latency_median_ms"]


# -- end to end --------------------------------------------------------------------------------
def pipeline_rows(manifest: Manifest, digits: np.ndarray, labels: np.ndarray, s: Settings) -> list[dict]:
    """Reader.read on pre-rendered 640x480 frames, float and int8 TFLite, one interpreter and one OpenCV thread."""
    import cv2

    from edge.detect import Reader
    from edge.synthetic import FrameMaker

    keys = [k for k in ("tflite_float32", "tflite_int8") if any(a.key == k for a in manifest.artifacts)]
    if not keys:
        return []
    frames = {}
    for n in s.digit_counts:
        maker = FrameMaker(digits, labels, seed=1000 + n, size=(640, 480))
        frames[n] = [maker.make(n) for _ in range(max(1, s.frames))]
    rows = []
    heap_state = heap.keep_freed_memory()  # as `python -m edge` does: this times what the runner runs
    old_threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        # A model that cannot be loaded (its file missing or broken) is its own status rows; the
        # other is still timed.
        readers, runtimes, failed = {}, {}, {}
        for key in keys:
            try:
                model = Model(manifest.get(key).path, threads=1)
            except Exception as e:  # noqa: BLE001  (ModelError, or whatever a broken file raises)
                failed[key] = f"failed: {_first_line(e)}"
                log.warning("pipeline %s: %s", key, _first_line(e))
                continue
            readers[key], runtimes[key] = Reader(model), model.runtime
        for n, fs in frames.items():
            # The models take turns on the same frame, so a busy machine slows them alike.
            results = _time_pipeline(readers, fs, s) if readers else {}
            for key in keys:
                if key in failed:
                    rows.append({"kind": "pipeline", "key": key, "threads": 1, "digits": n,
                                 "frame_size": [640, 480], "status": failed[key]})
                    continue
                row = {"kind": "pipeline", "key": key, "precision": manifest.get(key).precision,
                       "runtime": runtimes[key], "runtime_version": rt.runtime_version(runtimes[key]), "threads": 1,
                       "digits": n, "frame_size": [640, 480], "frames": len(fs), "heap": heap_state, "status": "ok",
                       **results[key]}
                log.info("pipeline %-14s %2d digits: total median %.2f ms (detect %.2f, classify %.2f), %d runs",
                         key, n, row["total_ms"], row["detect_ms"], row["classify_ms"], row["runs"])
                rows.append(row)
    except Exception as e:  # noqa: BLE001  (reported as status rows, the rest of the report stands)
        log.warning("pipeline: %s", _first_line(e))
        done = {(r["key"], r["digits"]) for r in rows}
        rows += [{"kind": "pipeline", "key": k, "threads": 1, "digits": n, "frame_size": [640, 480],
                  "status": f"failed: {_first_line(e)}"} for k in keys for n in frames if (k, n) not in done]
    finally:
        cv2.setNumThreads(old_threads)
    return rows


def _time_pipeline(readers: dict, frames, s: Settings) -> dict:
    """Time Reader.read per reader, round-robin over readers and frames, until the budget is spent."""
    clock = time.perf_counter
    exact = dict.fromkeys(readers, 0)
    for f in frames:  # warm-up pass, and the reading check
        for key, reader in readers.items():
            exact[key] += reader.read(f.image).text == f.text
    det, cls, tot = ({k: [] for k in readers} for _ in range(3))
    spent, i = 0.0, 0
    while spent < s.e2e_budget_s * len(readers) or i < max(3, len(frames)):
        img = frames[i % len(frames)].image
        for key, reader in readers.items():
            t0 = clock()
            r = reader.read(img)
            dt = clock() - t0
            det[key].append(r.detect_ms)
            cls[key].append(r.classify_ms)
            tot[key].append(dt * 1e3)
            spent += dt
        i += 1
    out = {}
    for key in readers:
        total = float(np.median(tot[key]))
        out[key] = {"detect_ms": float(np.median(det[key])), "classify_ms": float(np.median(cls[key])),
                    "total_ms": total, "total_p90_ms": float(np.percentile(tot[key], 90)), "fps": 1e3 / total,
                    "runs": len(tot[key]), "exact_text": exact[key] / len(frames)}
    return out


# -- everything --------------------------------------------------------------------------------
def mnist_test_set(data_dir: str | None) -> tuple[np.ndarray, np.ndarray]:
    """MNIST's test images and labels: from ``data_dir`` or $MNIST_DIR, else (neither set) from the
    Keras cache, as train, export and parity find it."""
    from edge.synthetic import load_test_digits

    loaded = load_test_digits(data_dir)
    if loaded is None and not data_dir and not os.environ.get("MNIST_DIR"):
        from train.data import load_mnist  # the Keras cache (a DataError names what it tried)

        loaded = load_mnist()[1]
    if loaded is None:
        raise ModelError(f"no MNIST test set (t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz]) in "
                         f"{data_dir or os.environ.get('MNIST_DIR') or '$MNIST_DIR (unset)'}; "
                         "set MNIST_DIR or pass --data")
    return loaded


def run_all(manifest: Manifest, data_dir: str | None, s: Settings) -> dict:
    digits, labels = mnist_test_set(data_dir)
    n = min(s.test_images, len(labels))
    x, y = contract.to_float(digits[:n]), labels[:n]
    t0 = time.perf_counter()
    rows = edge_rows(manifest, x, y, s)
    krows, predict_ref = keras_rows(manifest, data_dir, s)
    rows += krows
    add_ratios(rows)
    pipe = pipeline_rows(manifest, digits, labels, s)
    return {"settings": asdict(s), "thread_counts": thread_counts(), "rows": rows, "pipeline": pipe,
            "keras_predict": predict_ref, "seconds": round(time.perf_counter() - t0, 1)}

"""`python -m benchmarks --quick` on the tiny exported model: every row, every column, status rows."""

from __future__ import annotations

import json

import pytest

from benchmarks.__main__ import main
from benchmarks.run import COLUMNS, thread_counts
from edge import heap


@pytest.fixture(scope="module")
def quick_bench(exported, tmp_path_factory, monkeypatch_module):
    """One --quick run, with an extra ONNX interpreter named that cannot be imported."""
    import edge.runtime as rt

    monkeypatch_module.setattr(rt, "ONNX_RUNTIMES", rt.ONNX_RUNTIMES + ("no_such_onnx_runtime",))
    out = tmp_path_factory.mktemp("bench")
    assert main(["--quick", "--artifacts", str(exported), "--out", str(out)]) == 0
    return out, json.loads((out / "bench.json").read_text())


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def test_writes_every_output(quick_bench):
    out, report = quick_bench
    for name in ("bench.json", "bench.md", "bench.png"):
        assert (out / name).stat().st_size > 0, name
    assert not list(out.glob(".*.tmp*")), "a temporary file was left behind"
    host = report["host"]
    for k in ("cpu", "cores", "os", "python", "packages"):
        assert host[k], k
    assert "onnxruntime" in host["packages"] and "numpy" in host["packages"]
    md = (out / "bench.md").read_text()
    assert "| format | precision | runtime |" in md and "Edge pipeline" in md
    assert "int8_dot" in host and "dot-product instructions" in md


X86_VNNI = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC
flags\t\t: fpu sse4_2 avx avx2 avx512f avx512_vnni avx512bw
"""
X86_AVX2 = "processor\t: 0\nflags\t\t: fpu sse4_2 avx avx2 fma\n"
PI4 = "processor\t: 0\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm crc32 cpuid\n"
PI5 = "processor\t: 0\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp asimddp\n"


@pytest.mark.parametrize("text, dot, simd", [
    (X86_VNNI, ["AVX-512 VNNI"], ["sse4_2", "avx2", "avx512f"]),
    (X86_AVX2, [], ["sse4_2", "avx2"]),
    (PI4, [], ["asimd"]),
    (PI5, ["Arm dot product"], ["asimd"]),
])
def test_cpu_flags_tell_int8_dot_products(tmp_path, text, dot, simd):
    from benchmarks.host import SIMD, cpu_flags, int8_dot

    path = tmp_path / "cpuinfo"
    path.write_text(text + "\n" + text.replace("processor\t: 0", "processor\t: 1"))
    flags = cpu_flags(str(path))
    assert int8_dot(flags) == dot
    assert [f for f in SIMD if f in flags] == simd
    assert cpu_flags(str(tmp_path / "missing")) == set()


def test_report_says_what_int8_kernels_have():
    from benchmarks.report import _int8_line

    assert "fast path" in _int8_line({"int8_dot": ["AVX-512 VNNI"], "simd": ["avx2", "avx512f"]})
    slow = _int8_line({"int8_dot": [], "simd": ["avx2"]})
    assert "none (vector: avx2)" in slow and "no faster than float" in slow
    assert "not read" in _int8_line({})  # a report from before the line existed, or not Linux


def test_every_artifact_runtime_and_thread_count_is_a_row(quick_bench, exported):
    from edge.manifest import load_manifest

    _, report = quick_bench
    rows = report["rows"]
    for r in rows:
        assert set(COLUMNS) <= set(r), f"row {r['key']}/{r['runtime']} lacks {set(COLUMNS) - set(r)}"
    threads = thread_counts()
    assert report["thread_counts"] == threads
    for art in load_manifest(exported).artifacts:
        runtimes = ("ai_edge_litert", "tflite_runtime") if art.format == "tflite" else ("onnxruntime", "no_such_onnx_runtime")
        for name in runtimes:
            mine = [r for r in rows if r["key"] == art.key and r["runtime"] == name]
            assert mine, f"no row for {art.key} on {name}"
    ok = [r for r in rows if r["status"] == "ok"]
    measured = {(r["key"], r["runtime"]) for r in ok}
    assert {("tflite_float32", "ai_edge_litert"), ("tflite_int8", "ai_edge_litert"), ("onnx_float32", "onnxruntime"),
            ("onnx_int8", "onnxruntime"), ("keras_float32", "keras")} <= measured
    for key, runtime in measured:
        assert sorted(r["threads"] for r in ok if (r["key"], r["runtime"]) == (key, runtime)) == threads
    for r in ok:
        assert 0 < r["latency_median_ms"] <= r["latency_p90_ms"] <= r["latency_p99_ms"], r
        assert r["latency_runs"] >= 5
        assert 0.5 < r["accuracy"] <= 1.0 and r["test_images"] == 500
        assert r["bytes"] > 0
        assert r["b64_images_per_s"] or r["b64_note"].startswith("n/a"), r
        if r["format"] != "keras":
            assert r["cold_start_ms"] > 0 and r["peak_rss_mb"] > 10, r
        if r["precision"] == "int8":
            assert r["int8_float_latency_ratio"] > 0
    # accuracy is measured once per artifact x runtime, so it is the same at every thread count
    for key, runtime in measured:
        assert len({r["accuracy"] for r in ok if (r["key"], r["runtime"]) == (key, runtime)}) == 1
    # Keras always runs batch 64; a fixed-batch edge artifact either resizes or says why not
    assert all(r["b64_images_per_s"] for r in ok if r["format"] == "keras")
    assert all(r["b64_images_per_s"] or "fixed batch 1" in r["b64_note"] for r in ok if r["format"] != "keras")


def test_missing_runtimes_are_status_rows(quick_bench):
    _, report = quick_bench
    rows = report["rows"]
    fake = [r for r in rows if r["runtime"] == "no_such_onnx_runtime"]
    assert len(fake) == 2 and all(r["status"] == "not installed: pip install no-such-onnx-runtime" for r in fake)
    import importlib.util

    if importlib.util.find_spec("tflite_runtime") is None:
        tfl = [r for r in rows if r["runtime"] == "tflite_runtime"]
        assert len(tfl) == 2
        assert all(r["status"] == "not installed: pip install tflite-runtime (needs numpy<2)" for r in tfl)
        assert all(r["latency_median_ms"] is None and r["threads"] is None for r in tfl)


def test_pipeline_and_predict_reference(quick_bench):
    _, report = quick_bench
    pipe = report["pipeline"]
    assert {(r["key"], r["digits"]) for r in pipe} == {(k, n) for k in ("tflite_float32", "tflite_int8") for n in (1, 10)}
    for r in pipe:
        assert r["status"] == "ok" and r["threads"] == 1 and r["frame_size"] == [640, 480]
        assert r["total_ms"] >= r["detect_ms"] > 0 and r["classify_ms"] > 0 and r["fps"] > 0
        # Timed as `python -m edge` runs: with the freed frame buffers kept (edge.heap), where it can be.
        assert r["heap"] == heap.keep_freed_memory()
    kp = report["keras_predict"]
    assert kp["median_ms"] > 0 and kp["runs"] >= 3


def test_unusable_runtime_is_a_status_row_not_a_crash(exported, monkeypatch):
    """An interpreter that is listed but fails on the file becomes a 'failed: ...' row."""
    import edge.runtime as rt
    from benchmarks.run import Settings, edge_rows
    from edge.manifest import load_manifest

    def broken(self, runtime, threads):
        raise RuntimeError("simulated interpreter crash")

    monkeypatch.setattr(rt.Model, "_load_tflite", broken)
    import numpy as np

    x, y = np.zeros((4, 28, 28, 1), np.float32), np.zeros(4, np.uint8)
    rows = edge_rows(load_manifest(exported), x, y, Settings.quick())
    tfl = [r for r in rows if r["format"] == "tflite" and r["runtime"] == "ai_edge_litert"]
    assert tfl and all(r["status"].startswith("failed:") and "re-run `make export`" in r["status"] for r in tfl)


def test_a_missing_model_fails_its_own_pipeline_rows_only(exported, mnist, tmp_path):
    """With the int8 file gone, the float pipeline is still timed, and only int8's rows name the
    missing file (they used to fail all four rows, the float ones blaming the int8 file)."""
    import shutil

    from benchmarks.report import pipeline_table
    from benchmarks.run import Settings, pipeline_rows
    from edge.manifest import load_manifest

    art = tmp_path / "art"
    shutil.copytree(exported, art)
    (art / "model_int8.tflite").unlink()
    _, (x, y) = mnist  # MNIST test digits, as the benchmark renders them into frames
    rows = pipeline_rows(load_manifest(art), x[:200], y[:200], Settings.quick())
    by_key = {k: [r for r in rows if r["key"] == k] for k in ("tflite_float32", "tflite_int8")}
    assert [r["digits"] for r in by_key["tflite_float32"]] == [1, 10]
    assert all(r["status"] == "ok" and r["total_ms"] > 0 for r in by_key["tflite_float32"])
    assert len(by_key["tflite_int8"]) == 2
    assert all(r["status"].startswith("failed:") and "model_int8.tflite" in r["status"] for r in by_key["tflite_int8"])
    table = "\n".join(pipeline_table(rows))
    assert "–%" not in table and table.count("model_int8.tflite") == 2


def test_help_shows_defaults(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    assert "--quick" in text and "(default: artifacts)" in text and "(default: 2.0)" in text


def test_missing_manifest_is_a_clear_error(tmp_path, capsys):
    assert main(["--quick", "--artifacts", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "manifest.json" in err and "make export" in err

"""model.keras -> every deployable artifact + manifest.json."""

from __future__ import annotations

import hashlib
import logging
import os
import platform
import time
import zipfile
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np

from edge import contract
from edge.fsutil import atomic_path, sha256_file, write_json
from edge.manifest import MANIFEST, SCHEMA
from edge.runtime import Model, ModelError

from .formats import BY_KEY, FORMATS, ConversionError, Context

log = logging.getLogger("export")

TOOLS = ("tensorflow-cpu", "tensorflow", "keras", "tf2onnx", "onnx", "onnxruntime", "ai-edge-litert", "numpy")


class ExportError(RuntimeError):
    """A one-line, user-actionable export failure."""


@dataclass
class ExportConfig:
    model: str = "artifacts/model.keras"
    out: str | None = None  # default: the model's folder
    calib: int = 500
    seed: int = 1
    formats: tuple[str, ...] = tuple(f.key for f in FORMATS)
    val_images: int = 2000
    data_dir: str | None = None


def tool_versions() -> dict:
    out = {"python": platform.python_version()}
    for name in TOOLS:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            pass
    return out


def load_keras(path: Path):
    if path.is_dir():
        raise ExportError(f"{path}: is a folder; pass the model file in it, e.g. {path / 'model.keras'}")
    if not path.is_file():
        raise ExportError(f"{path}: no such model; train one first (`make train`) or pass --model PATH")
    if path.suffix == ".keras" and not zipfile.is_zipfile(path):  # (Keras itself says "File not found")
        raise ExportError(f"{path}: not a Keras model (a .keras file is a zip archive; this one is damaged, "
                          "truncated or something else); re-run `make train`")
    import keras

    try:
        return keras.models.load_model(path, compile=False)
    except Exception as e:  # noqa: BLE001  (Keras raises many kinds on a damaged file)
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise ExportError(f"{path}: cannot load the Keras model ({first}); re-run `make train`") from None


def calibration_set(y_train: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Indices of the representative set: ``n`` training images stratified by class, seeded."""
    from train.data import stratified_sample

    return stratified_sample(y_train, n, seed=seed)


def run(cfg: ExportConfig) -> dict:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from train import data as mnist

    src = Path(cfg.model)
    out = Path(cfg.out) if cfg.out else src.parent
    unknown = [k for k in cfg.formats if k not in BY_KEY]
    if unknown:
        raise ExportError(f"unknown format(s) {', '.join(unknown)}; choose from {', '.join(BY_KEY)}")
    if cfg.calib < 10:
        raise ExportError(f"--calib {cfg.calib}: need at least 10 calibration images")
    t0 = time.perf_counter()
    model = load_keras(src)
    raw = mnist.load_mnist(cfg.data_dir)
    sp = mnist.split(raw, seed=cfg.seed)
    cal_idx = calibration_set(sp.y_train, cfg.calib, cfg.seed)
    ctx = Context(
        model=model,
        calib=contract.to_float(sp.x_train[cal_idx]),
        val_x=contract.to_float(sp.x_val[: cfg.val_images]),
        val_y=sp.y_val[: cfg.val_images],
    )
    log.info("prepare    %5.1fs %s, %d calibration images", time.perf_counter() - t0, src, len(cal_idx))

    out.mkdir(parents=True, exist_ok=True)
    versions = tool_versions()
    entries = []
    probe = ctx.calib[:32]
    keras_probs = np.asarray(model(probe, training=False))
    for fmt in (BY_KEY[k] for k in cfg.formats):
        t = time.perf_counter()
        path = out / fmt.file
        tool = "tf2onnx " + versions.get("tf2onnx", "?") if fmt.kind == "onnx" else "tensorflow " + versions.get(
            "tensorflow-cpu", versions.get("tensorflow", "?"))
        try:
            with atomic_path(path) as tmp:
                notes = fmt.build(ctx, tmp)
                loaded = Model(tmp)  # it must load and run with the edge runtime, or it is not written
                probs = loaded.predict(probe)
                check = _check(fmt, loaded, probs, keras_probs)
                if fmt.precision == "float32" and check["max_abs_diff_vs_keras"] > 1e-5:
                    raise ConversionError(
                        f"outputs differ from Keras by {check['max_abs_diff_vs_keras']:.2e} (> 1e-5)")
        except (ConversionError, ModelError) as e:
            raise ExportError(f"{path}: {fmt.key} conversion failed: {e} ({tool})") from None
        except Exception as e:  # noqa: BLE001  (converters raise anything; name the format and the tool)
            first = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
            raise ExportError(f"{path}: {fmt.key} conversion failed: {type(e).__name__}: {first} ({tool})") from None
        entry = {
            "key": fmt.key,
            "file": fmt.file,
            "format": fmt.kind,
            "precision": fmt.precision,
            "description": fmt.description,
            "bytes": path.stat().st_size,
            "sha256": sha256_file(path),
            "input": loaded.input.to_dict(),
            "output": loaded.output.to_dict(),
            "batch": loaded.batch,
            **notes,
            "check": check,
        }
        entries.append(entry)
        log.info("%-14s %5.1fs %s (%.1f KB)", fmt.key, time.perf_counter() - t, path, entry["bytes"] / 1024)

    manifest = {
        "schema": SCHEMA,
        "contract_version": contract.CONTRACT_VERSION,
        "labels": list(contract.LABELS),
        "source_model": {"file": os.path.relpath(src.resolve(), out.resolve()), "sha256": sha256_file(src)},
        "calibration": {
            "size": int(len(cal_idx)),
            "seed": cfg.seed,
            "source": "training split (validation and test excluded), stratified by class",
            "sha256": hashlib.sha256(cal_idx.astype(np.int64).tobytes()).hexdigest(),
        },
        "tools": versions,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "artifacts": entries,
    }
    write_json(out / MANIFEST, manifest)
    log.info("manifest   %5.1fs %s, %d artifacts", time.perf_counter() - t0, out / MANIFEST, len(entries))
    return manifest


def _check(fmt, loaded: Model, probs: np.ndarray, keras_probs: np.ndarray) -> dict:
    check = {"max_abs_diff_vs_keras": float(np.abs(probs - keras_probs).max()), "probe_images": int(len(probs))}
    if fmt.precision == "int8":
        if loaded.input.dtype not in ("int8", "uint8") or loaded.output.dtype not in ("int8", "uint8"):
            raise ConversionError(f"I/O is {loaded.input.dtype}/{loaded.output.dtype}, expected integer")
        check["top1_agreement_vs_keras"] = float((probs.argmax(1) == keras_probs.argmax(1)).mean())
    return check

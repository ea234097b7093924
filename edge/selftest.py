"""Self-test on golden crops: does this interpreter, on this machine, read the digits it should?

``python -m edge.selftest --model FILE --crops DIR`` loads every PNG in DIR
with OpenCV, normalises it with :func:`edge.contract.normalize_crop`, predicts
with :class:`edge.runtime.Model` and compares with ``DIR/expected.json``
(``{"file.png": "7", ...}``). It prints one line per misread crop and a
summary, and exits 1 if any crop is misread or none is found (2 on a usage
error: a missing model, folder or expected.json). The Pi installer runs it
before switching to a new release; run it by hand after changing the
interpreter or the OS.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from . import contract
from .clihelp import Help
from .fsutil import read_json
from .runtime import Model, ModelError

EXPECTED = "expected.json"


class SelftestError(RuntimeError):
    """The crops folder or its expected.json is missing or malformed."""


def load_expected(crops: Path) -> dict[str, str]:
    path = crops / EXPECTED
    if not crops.is_dir():
        raise SelftestError(f"{crops}: no such folder of golden crops; pass --crops DIR (PNG files + {EXPECTED})")
    if not path.is_file():
        raise SelftestError(f"{path}: missing; it must map each PNG's file name to its label, e.g. {{\"a.png\": \"7\"}}")
    data = read_json(path, SelftestError, "it must be a JSON object {file name: label}")
    if not isinstance(data, dict):
        raise SelftestError(f"{path}: must be a JSON object {{file name: label}}, got {type(data).__name__}")
    return {str(k): str(v) for k, v in data.items()}


def load_crops(crops: Path) -> tuple[list[str], np.ndarray]:
    """Every PNG in ``crops`` (sorted by name) -> (names, uint8 (N, 28, 28) contract images)."""
    import cv2

    names, images = [], []
    for p in sorted(crops.glob("*.png")) + sorted(crops.glob("*.PNG")):
        img = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
        if img is None:
            raise SelftestError(f"{p}: not a readable PNG; replace or remove it")
        if img.ndim == 3 and img.shape[2] == 4:
            img = contract.on_white(img)
        names.append(p.name)
        images.append(contract.normalize_crop(img))
    return names, (np.stack(images) if images else np.zeros((0, contract.SIZE, contract.SIZE), np.uint8))


def run(model_path: str | Path, crops: str | Path, *, runtime: str | None = None, out=sys.stdout) -> dict:
    """Run the self-test; return a report dict (``report["passed"]`` is the verdict)."""
    crops = Path(crops)
    expected = load_expected(crops)
    names, images = load_crops(crops)
    model = Model(model_path, runtime=runtime)
    t0 = time.perf_counter()
    probs = model.predict_uint8(images) if len(images) else np.zeros((0, 10), np.float32)
    ms = (time.perf_counter() - t0) * 1000.0
    misread, unlabelled = [], []
    for name, p in zip(names, probs):
        if name not in expected:
            unlabelled.append(name)
            continue
        got = contract.LABELS[int(p.argmax())]
        if got != expected[name]:
            misread.append({"file": name, "expected": expected[name], "got": got, "confidence": float(p.max())})
            print(f"selftest: MISREAD {crops / name}: expected {expected[name]}, got {got} "
                  f"(confidence {float(p.max()):.2f})", file=out)
    for name in unlabelled:
        print(f"selftest: {crops / name}: not listed in {crops / EXPECTED}; add its label or remove it", file=out)
    missing = sorted(set(expected) - set(names))
    for name in missing:
        print(f"selftest: {crops / name}: listed in {EXPECTED} but missing", file=out)
    checked = len(names) - len(unlabelled)
    passed = checked > 0 and not misread and not unlabelled and not missing
    d = model.describe()
    report = {
        "passed": passed,
        "model": str(model_path),
        "runtime": d["runtime"],
        "runtime_version": d["runtime_version"],
        "crops": checked,
        "misread": misread,
        "unlabelled": unlabelled,
        "missing": missing,
        "ms": round(ms, 1),
    }
    if checked == 0:
        print(f"selftest: FAIL no labelled PNG crops found in {crops}", file=out)
    else:
        verdict = "PASS" if passed else "FAIL"
        print(f"selftest: {verdict} {checked - len(misread)}/{checked} crops read correctly "
              f"({Path(model_path).name}, {d['runtime']} {d['runtime_version']})", file=out)
    return report


GOLDEN_DIRS = ("golden", "tests/golden")  # the bundle's layout, then the source tree's


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m edge.selftest",
        description="Read golden digit crops with a model; exit 1 if any is misread or none is found.",
        formatter_class=Help,
    )
    p.add_argument("--model", default="artifacts/model_int8.tflite", metavar="FILE", help="a .tflite or .onnx model")
    p.add_argument("--crops", default=None, metavar="DIR",
                   help=f"folder of PNG crops with {EXPECTED} (default: golden, as in the Pi bundle; else tests/golden, "
                   "as in the source tree)")
    p.add_argument("--runtime", default=None, help="force an interpreter module (ai_edge_litert, tflite_runtime, onnxruntime)")
    p.add_argument("--json", action="store_true", help="also print the report as one JSON line")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        crops = args.crops or next((d for d in GOLDEN_DIRS if Path(d).is_dir()), GOLDEN_DIRS[0])
        report = run(args.model, crops, runtime=args.runtime)
    except (SelftestError, ModelError) as e:
        print(f"selftest: error: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report))
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())

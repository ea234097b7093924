"""Helpers shared by the Pi tests: golden crops made from MNIST test digits, and the tiny artifacts set."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np


def make_crops(out: Path, images: np.ndarray, labels: np.ndarray, models: list[Path], *, per_class: int = 2) -> Path:
    """Write photo-like crops (dark ink on light paper, upscaled x4, with a margin) + expected.json.

    Only digits every model in ``models`` reads correctly after the PNG round trip are kept,
    ``per_class`` of each digit, so the crops test the bundle, not the (weak, fast-trained) model.
    """
    import cv2

    from edge import contract
    from edge.runtime import Model

    out.mkdir(parents=True, exist_ok=True)
    loaded = [Model(m) for m in models]
    expected, counts = {}, dict.fromkeys(range(10), 0)
    for i, (img, label) in enumerate(zip(images, labels)):
        label = int(label)
        if counts[label] >= per_class:
            if min(counts.values()) >= per_class:
                break
            continue
        paper = 255 - cv2.resize(img, (112, 112), interpolation=cv2.INTER_CUBIC)
        paper = cv2.copyMakeBorder(paper, 16, 16, 16, 16, cv2.BORDER_CONSTANT, value=255)
        name = f"mnist_test_{i:05d}_{label}.png"
        cv2.imwrite(str(out / name), paper)
        x = contract.normalize_crop(cv2.imread(str(out / name), cv2.IMREAD_UNCHANGED))
        if all(int(m.predict_uint8(x[None]).argmax()) == label for m in loaded):
            expected[name] = str(label)
            counts[label] += 1
        else:
            (out / name).unlink()
    (out / "expected.json").write_text(json.dumps(expected, indent=2, sort_keys=True) + "\n")
    return out


def write_parity(artifacts: Path, passed: bool = True) -> None:
    """A parity.json as `python -m export.parity` writes it (the parts the bundle reads)."""
    m = json.loads((artifacts / "manifest.json").read_text())
    arts = [{"key": a["key"], "file": a["file"], "bytes": a["bytes"], "sha256": a["sha256"], "failures": []}
            for a in m["artifacts"]]
    (artifacts / "parity.json").write_text(json.dumps({"artifacts": arts, "failures": [], "passed": passed}, indent=2))


def pi_artifacts(src: Path, dst: Path) -> Path:
    """Copy just what the bundle needs (manifest, the TFLite models, parity.json) from an export folder."""
    dst.mkdir(parents=True, exist_ok=True)
    m = json.loads((src / "manifest.json").read_text())
    m["artifacts"] = [a for a in m["artifacts"] if a["format"] == "tflite"]
    (dst / "manifest.json").write_text(json.dumps(m, indent=2))
    for a in m["artifacts"]:
        shutil.copy2(src / a["file"], dst / a["file"])
    return dst

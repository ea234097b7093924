"""``python -m export``: model.keras -> TFLite (float32, int8) + ONNX (float32, int8) + manifest.json."""

from __future__ import annotations

import argparse
import logging
import sys

from edge.clihelp import Help, count, out_folder, seed
from train.data import DataError

from .export import ExportConfig, ExportError, run
from .formats import FORMATS


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m export",
        description="Convert a trained Keras model into every deployable artifact, each checked by loading it "
        "with the edge runtime, and write manifest.json. Then run `python -m export.parity` (the gate).",
        formatter_class=Help,
    )
    p.add_argument("--model", default="artifacts/model.keras", help="the trained Keras model")
    p.add_argument("--out", type=out_folder(), default=None, help="output folder (default: the model's folder)")
    p.add_argument("--calib", type=count("an image count (1 or more)", 1), default=500,
                   help="representative images for int8 calibration (training split, stratified by class)")
    p.add_argument("--seed", type=seed, default=1, help="seed of the calibration sample and validation split")
    p.add_argument("--formats", default=",".join(f.key for f in FORMATS), help="comma-separated formats to build")
    p.add_argument("--data", default=None, metavar="DIR", help="MNIST folder (default: $MNIST_DIR, then the Keras cache)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    cfg = ExportConfig(model=args.model, out=args.out, calib=args.calib, seed=args.seed,
                       formats=tuple(f.strip() for f in args.formats.split(",") if f.strip()), data_dir=args.data)
    try:
        run(cfg)
    except (ExportError, DataError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``python -m train``: train a model from the zoo and write its artifacts."""

from __future__ import annotations

import argparse
import logging
import sys

from edge.clihelp import Help, count, out_folder, seed

from .data import DataError


# The zoo's names, without importing train.models (Keras, ~10 s of TensorFlow start-up on a small
# machine, which --help has no need of). tests/test_train.py checks they are train.models.BUILDERS.
MODELS = ("mlp", "cnn_baseline", "cnn_large", "edge")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m train",
        description="Train an MNIST model and write model.keras, train_config.json, history.json, "
        "metrics.json, training_curves.png and confusion_matrix.png into --out.",
        formatter_class=Help,
    )
    p.add_argument("--model", default="edge", choices=MODELS, help="model to train")
    p.add_argument("--epochs", type=count("an epoch count (1 or more)", 1), default=None, help="epochs (default: the model's recipe; 1 with --fast)")
    p.add_argument("--batch-size", type=count("a batch size (1 or more)", 1), default=None, help="batch size (default: the model's recipe)")
    p.add_argument("--seed", type=seed, default=1, help="seed for the split, init, shuffling and augmentation")
    p.add_argument("--out", type=out_folder(), default="artifacts", help="output directory")
    p.add_argument("--data", default=None, metavar="DIR",
                   help="folder with the four MNIST IDX files (default: $MNIST_DIR, then the Keras cache)")
    p.add_argument("--download", action="store_true", help="download MNIST with Keras if no local copy is found")
    p.add_argument("--fast", action="store_true", help="smoke run: 6,000 training images, 1 epoch")
    p.add_argument("--detector-crops", type=count("an image count (0 or more)"), default=0, metavar="N",
                   help="add N training images cut by the edge detector from synthetic frames of training digits "
                   "(about 170 a second on 2 cores; measured: no clear gain on synthetic frames, so off by default)")
    p.add_argument("--flagged-ones", type=float, default=0.0, metavar="FRAC",
                   help="add FRAC of the training ones again with a flag drawn from their top (train/flags.py), "
                   "for the 1 much of the world writes; MNIST's are straight. Measured with 0.3 at two seeds: pen-drawn "
                   "page frames read 98.7-99.1%% exactly, not 94.8%%, but frames of MNIST digits 0.1-2.6 pp worse "
                   "(and MNIST test accuracy 99.58%%, not 99.62-99.64%%), so off by default")
    p.add_argument("--motion-blur", type=float, default=0.0, metavar="FRAC",
                   help="also streak FRAC of each batch's images as by motion during the exposure "
                   "(train/augment.py), for a webcam or a sheet that moves: see the README's Training section")
    p.add_argument("--threads", type=count("a thread count (0: all cores)"), default=0, help="TensorFlow intra-op threads (0: all cores)")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not 0.0 <= args.flagged_ones <= 1.0:
        parser.error(f"--flagged-ones is a fraction of the training ones, between 0 and 1 (got {args.flagged_ones})")
    if not 0.0 <= args.motion_blur <= 1.0:
        parser.error(f"--motion-blur is a share of each batch, between 0 and 1 (got {args.motion_blur})")
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    from .train import TrainConfig, run  # noqa: PLC0415

    cfg = TrainConfig(model=args.model, epochs=args.epochs, batch_size=args.batch_size, seed=args.seed,
                      out=args.out, data_dir=args.data, download=args.download, fast=args.fast,
                      threads=args.threads, detector_crops=args.detector_crops, flagged_ones=args.flagged_ones,
                      motion_blur=args.motion_blur)
    try:
        run(cfg)
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"error: {e.filename or ''}: {e.strerror or e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

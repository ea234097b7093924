"""``python -m edge.evaluate``: how well the runner reads synthetic camera frames.

Renders seeded frames of MNIST *test* digits (see ``edge.synthetic``) and
reports detection recall (IoU >= 0.5), digit accuracy (detected and read
right, over all digits), exact text on multi-digit frames, and false
positives. Needs MNIST (``--data`` or $MNIST_DIR) for honest digits.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from .__main__ import confidence, edge_ratio, load_model, narrow_ratio, share
from .clihelp import Help, count, seed
from .detect import DetectConfig, Reader
from .idx import DataError
from .runtime import ModelError
from .synthetic import LAYOUTS, MIN_SIDE, PALETTES, SHADOWS, STYLES, FrameMaker, load_test_digits, score


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m edge.evaluate", description=__doc__.split("\n\n")[1],
                                formatter_class=Help)
    p.add_argument("--model", default=None, help="model file (default: the int8 TFLite in ARTIFACTS/manifest.json)")
    p.add_argument("--artifacts", default="artifacts", help="folder with manifest.json")
    p.add_argument("--frames", type=count("a frame count (1 or more)", 1), default=250, help="frames to render (1-10 digits each on a page, 1-3 close up)")
    p.add_argument("--seed", type=seed, default=2026, help="seed of the frames")
    p.add_argument("--size", default=None, help="frame size WxH (default: 640x480; 4032x3024 for --layout closeup)")
    p.add_argument("--layout", choices=LAYOUTS, default="page",
                   help="page: 1-10 digits in 1-3 lines; closeup: 1-3 big digits (one alone is 40-85%% of the frame "
                   "tall), as a phone held close to the paper takes them")
    p.add_argument("--style", choices=STYLES, default="mnist",
                   help="digits: MNIST test digits as ink, or pen strokes drawn by edge.pen (not MNIST: an "
                   "out-of-distribution check, needs no MNIST)")
    p.add_argument("--paper", choices=PALETTES, default="office",
                   help="office: white, beige, grey, blue and green paper; sticky: yellow, orange, pink and lime "
                   "sticky notes; all: both; or one paper by name")
    p.add_argument("--shadow", choices=SHADOWS, default="soft",
                   help="soft: half the frames have a phone's soft shadow (ceiling light); hard: every frame has a "
                   "deep, sharp-edged one (direct sun, a small lamp)")
    p.add_argument("--turn", type=float, default=0.0, metavar="DEG",
                   help="the sheet turned in view by DEG degrees (either way, at random), as a phone held askew")
    p.add_argument("--motion", type=float, default=0.0, metavar="PX",
                   help="motion blur: the image streaks PX pixels (at 640 px wide) in a random direction, as a "
                   "sheet or a webcam moving during the exposure")
    p.add_argument("--touching", type=float, default=0.0, metavar="P",
                   help="chance that a digit is written touching (or nearly) the next one in its line")
    p.add_argument("--data", default=None, help="MNIST folder (default: $MNIST_DIR)")
    p.add_argument("--min-confidence", type=confidence, default=DetectConfig.min_confidence, metavar="CONF",
                   help="candidates the model is less sure of are counted as rejected, not as digits")
    p.add_argument("--recheck-below", type=float, default=DetectConfig.recheck_below, metavar="CONF",
                   help="a candidate read with less confidence is cut again at four other stroke widths and "
                   "the readings averaged (0: never)")
    p.add_argument("--narrow-seven", type=narrow_ratio, default=DetectConfig.narrow_seven, metavar="RATIO",
                   help="a digit read as 7 and narrower than RATIO of its height is weighed towards a flagged 1 "
                   "(0: never)")
    p.add_argument("--dark-surround", type=share, default=DetectConfig.dark_surround, metavar="SHARE",
                   help="drop a candidate when more than SHARE of the pixels around its ink are as dark as the ink "
                   "beside them: the table beside a turned sheet, a shadow's tip; 0: never, and no check for "
                   "the dark rim along the table's edge either")
    p.add_argument("--streak", type=edge_ratio, default=DetectConfig.streak, metavar="RATIO",
                   help="a frame whose digits' edges face one way more than RATIO (0: all one way, 1: all ways "
                   "alike) is taken as streaked by motion, and its faint strokes are followed further (0: never)")
    p.add_argument("--small-digit", type=narrow_ratio, default=DetectConfig.small_digit, metavar="SHARE",
                   help="a candidate under SHARE of the frame's median candidate height (3 or more of them) is "
                   "counted as rejected, not as a digit: a speck at a shadow's edge, a piece of a smeared stroke "
                   "(0: never)")
    p.add_argument("--no-upright", dest="upright", action="store_false",
                   help="read the digits of a turned sheet as they are, not turned back upright (for comparison)")
    p.add_argument("--weak-channel", action="store_true",
                   help="read the darkest colour channel of all three, the paper's weak one too (how the reader "
                   "worked before it read sticky notes; for comparison)")
    args = p.parse_args(argv)
    if not 0.0 <= args.touching <= 1.0:
        print(f"error: --touching {args.touching} is not a chance between 0 and 1", file=sys.stderr)
        return 2
    size = args.size or ("4032x3024" if args.layout == "closeup" else "640x480")
    try:
        w, h = (int(v) for v in size.lower().split("x"))
    except ValueError:
        print(f"error: --size {size!r} is not WIDTHxHEIGHT (e.g. 640x480)", file=sys.stderr)
        return 2
    if min(w, h) < MIN_SIDE:
        print(f"error: --size {size}: each side needs {MIN_SIDE} px or more", file=sys.stderr)
        return 2
    try:
        digits = load_test_digits(args.data) if args.style == "mnist" else (None, None)
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if digits is None:
        where = args.data or os.environ.get("MNIST_DIR")
        print(f"error: MNIST test digits not found{f' in {where}' if where else ''}: need t10k-images-idx3-ubyte.gz "
              "and t10k-labels-idx1-ubyte.gz (or the two unzipped); "
              f"{'pass --data DIR or set MNIST_DIR' if not where else 'point --data at the folder that holds them'} "
              "(or use --style pen, which needs no MNIST)", file=sys.stderr)
        return 2
    try:
        model = load_model(args.model, args.artifacts)
    except ModelError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    maker = FrameMaker(*digits, seed=args.seed, size=(w, h), style=args.style, touching=args.touching, layout=args.layout,
                        paper=args.paper, shadow=args.shadow, turn=args.turn, motion=args.motion)
    reader = Reader(model, DetectConfig(min_confidence=args.min_confidence, recheck_below=args.recheck_below,
                                        weak_channel=args.weak_channel, narrow_seven=args.narrow_seven,
                                        dark_surround=args.dark_surround, upright=args.upright,
                                        streak=args.streak, small_digit=args.small_digit))
    pairs = []
    for _ in range(args.frames):
        f = maker.make()
        pairs.append((f, reader.read(f.image)))
    result = {"model": str(model.path), "frames": args.frames, "seed": args.seed, "size": size, "layout": args.layout,
              "style": args.style, "paper": args.paper, "shadow": args.shadow, "turn": args.turn, "motion": args.motion,
              "weak_channel": args.weak_channel, "narrow_seven": args.narrow_seven, "dark_surround": args.dark_surround,
              "upright": args.upright, "streak": args.streak, "small_digit": args.small_digit, "touching": args.touching,
              **score(pairs)}
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

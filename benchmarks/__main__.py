"""``python -m benchmarks`` (``make bench``): latency, throughput, accuracy, cold start and memory.

Every artifact in ``manifest.json`` x every interpreter that can run it
(installed or not: a missing one is a status row) x 1 and all cores, the Keras
float model as the reference, and the edge pipeline on synthetic 640x480
frames. Writes bench.json, bench.md and bench.png and prints the table.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

from edge.clihelp import Help, count, out_folder
from edge.idx import DataError
from edge.fsutil import write_json, write_text
from edge.manifest import load_manifest
from edge.runtime import ModelError

from .host import host_info
from .report import markdown, plot
from .run import Settings, run_all


def build_parser() -> argparse.ArgumentParser:
    d = Settings()
    p = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Benchmark every artifact in DIR/manifest.json on every installed interpreter at 1 and all "
        "cores, plus the Keras reference and the edge pipeline. Writes bench.json, bench.md, bench.png.",
        formatter_class=Help,
    )
    p.add_argument("--artifacts", default="artifacts", metavar="DIR", help="folder with manifest.json")
    p.add_argument("--out", type=out_folder(), default=None, metavar="DIR", help="where to write bench.* (default: the artifacts folder)")
    p.add_argument("--data", default=None, metavar="DIR", help="MNIST folder (default: $MNIST_DIR)")
    p.add_argument("--quick", action="store_true",
                   help="seconds, not minutes: tiny time budgets, 500 test images, one cold start, no Keras cold "
                   "start (for tests; numbers are not for comparison; overrides the options below)")
    p.add_argument("--budget", type=float, default=d.budget_s, metavar="S",
                   help="seconds of timed batch-1 calls per row (after warm-up)")
    p.add_argument("--warmup", type=float, default=d.warmup_s, metavar="S", help="warm-up seconds per measurement")
    p.add_argument("--test-images", type=count("an image count (1 or more)", 1), default=d.test_images, metavar="N",
                   help="MNIST test images for accuracy (10000 = all)")
    p.add_argument("--cold-runs", type=int, default=d.cold_runs, metavar="N",
                   help="new processes per row for the cold start (0: skip)")
    p.add_argument("--keras-cold-runs", type=int, default=d.keras_cold_runs, metavar="N",
                   help="cold starts for the Keras rows (each imports TensorFlow; 0: skip)")
    p.add_argument("--frames", type=count("a frame count (1 or more)", 1), default=d.frames, metavar="N", help="pre-rendered frames per digit count")
    p.add_argument("--e2e-budget", type=float, default=d.e2e_budget_s, metavar="S",
                   help="seconds of timed Reader.read calls per pipeline row")
    return p


def settings_from(args) -> Settings:
    if args.quick:
        return Settings.quick()
    return replace(Settings(), budget_s=args.budget, warmup_s=args.warmup, test_images=args.test_images,
                   cold_runs=args.cold_runs, keras_cold_runs=args.keras_cold_runs, frames=args.frames,
                   e2e_budget_s=args.e2e_budget)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    out = Path(args.out or args.artifacts)
    s = settings_from(args)
    try:
        manifest = load_manifest(args.artifacts)
        host = host_info()
        t0 = time.perf_counter()
        result = run_all(manifest, args.data, s)
    except (ModelError, DataError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    report = {"schema": 1, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "quick": bool(args.quick),
              "artifacts": str(manifest.root), "manifest_created": manifest.data.get("created"), "host": host,
              **result, "wall_seconds": round(time.perf_counter() - t0, 1)}
    text = markdown(report)
    write_json(out / "bench.json", report)
    write_text(out / "bench.md", text + "\n")
    plot(report, out / "bench.png")
    print(text)
    print(f"wrote {out / 'bench.json'}, {out / 'bench.md'}, {out / 'bench.png'} ({report['wall_seconds']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

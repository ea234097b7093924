"""Regenerate the golden crops: MNIST *test* digits photographed as dark ink on paper.

    MNIST_DIR=../shared/data/mnist python tests/golden/make_golden.py

Writes tests/golden/<label>_<n>.png (3 per class, small grey/colour crops of
different sizes, paper colours, blur and noise) and expected.json
{file: label}. The digits are fixed indices into the test set, so the output
is the same every time. Used by the edge tests and by the Pi bundle's
self-test.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from edge.synthetic import INKS, PAPERS, load_test_digits  # noqa: E402

# The first three test digits of each class (clear, typical handwriting).
PER_CLASS = 3
OUT = Path(__file__).resolve().parent


def main() -> int:
    data = load_test_digits()
    if data is None:
        print("set MNIST_DIR to the folder with the MNIST IDX files", file=sys.stderr)
        return 2
    x, y = data
    rng = np.random.default_rng(2026)
    expected = {}
    papers, inks = list(PAPERS.values()), list(INKS.values())
    for label in range(10):
        for n, idx in enumerate(np.flatnonzero(y == label)[:PER_CLASS]):
            size = int(rng.choice([40, 64, 96]))
            digit = cv2.resize(x[idx], (size, size), interpolation=cv2.INTER_CUBIC).astype(np.float32) / 255.0
            paper = np.array(papers[(label + n) % len(papers)], np.float32)
            ink = np.array(inks[(label * 3 + n) % len(inks)], np.float32)
            img = paper * (1 - digit[..., None]) + ink * digit[..., None]
            img = cv2.GaussianBlur(img, (0, 0), 0.6) + rng.normal(0, 2.0, img.shape)
            img = np.clip(img, 0, 255).astype(np.uint8)
            if n == 2:
                img = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
            name = f"{label}_{n}.png"
            cv2.imwrite(str(OUT / name), img)
            expected[name] = int(label)
    (OUT / "expected.json").write_text(json.dumps(expected, indent=1, sort_keys=True) + "\n")
    print(f"wrote {len(expected)} crops to {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

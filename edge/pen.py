"""Digits drawn as pen strokes: handwriting that is *not* MNIST, to measure the reader out of its
training distribution.

MNIST digits were written with a thick pen, scanned and blurred into 20-px boxes; a digit on a
phone photo is a trajectory drawn with a ballpoint or a marker, at any size. Each digit here is
one of a few common ways people write it (a 1 with and without its flag and base, a 4 open and
closed, a 7 with and without its bar, ...), as control points in a box about 0.6 wide and 1
tall, then drawn the way a hand does: smoothed through the points, with slow wobble, slant,
width and a little rotation, in one constant pen width, anti-aliased at 4x and shrunk.

These shapes are this project's own guesses at how people write, not data: accuracy on them
says how the reader copes with clean strokes unlike MNIST's, not how well it reads any one
person's hand.
"""

from __future__ import annotations

import math

import cv2
import numpy as np


def _arc(cx: float, cy: float, rx: float, ry: float, a0: float, a1: float, n: int = 12) -> list[tuple[float, float]]:
    """Points on an ellipse from angle ``a0`` to ``a1`` in degrees (0 = right, 90 = down)."""
    t = np.radians(np.linspace(a0, a1, n))
    return [(cx + rx * math.cos(v), cy + ry * math.sin(v)) for v in t]


# label -> ways of writing it -> strokes -> points (x right 0..0.6, y down 0..1).
STROKES: dict[int, list[list[list[tuple[float, float]]]]] = {
    0: [[_arc(0.3, 0.5, 0.3, 0.5, -90, 275, 24)],
        [_arc(0.3, 0.5, 0.28, 0.5, -80, 290, 24)]],
    1: [[[(0.3, 0.0), (0.3, 1.0)]],
        [[(0.1, 0.2), (0.32, 0.0), (0.32, 1.0)]],
        [[(0.08, 0.22), (0.32, 0.0), (0.32, 1.0)], [(0.1, 1.0), (0.52, 1.0)]]],
    2: [[_arc(0.3, 0.27, 0.28, 0.27, 190, 360, 10) + [(0.5, 0.5), (0.0, 1.0), (0.6, 1.0)]],
        [_arc(0.3, 0.27, 0.28, 0.27, 180, 380, 10)
         + [(0.1, 0.85), (0.05, 0.97), (0.15, 0.92), (0.3, 0.97), (0.6, 1.0)]]],
    3: [[_arc(0.3, 0.25, 0.27, 0.25, 200, 450, 12) + _arc(0.3, 0.73, 0.3, 0.27, -90, 150, 12)[1:]],
        [[(0.02, 0.02), (0.58, 0.02), (0.2, 0.45)] + _arc(0.3, 0.72, 0.3, 0.28, -90, 150, 12)[1:]]],
    4: [[[(0.42, 0.0), (0.0, 0.68), (0.6, 0.68)], [(0.45, 0.3), (0.45, 1.0)]],
        [[(0.1, 0.0), (0.03, 0.6), (0.6, 0.6)], [(0.48, 0.0), (0.48, 1.0)]],
        [[(0.45, 1.0), (0.45, 0.0), (0.0, 0.68), (0.6, 0.68)]]],
    5: [[[(0.08, 0.0), (0.05, 0.45)] + _arc(0.28, 0.7, 0.3, 0.29, -125, 150, 14)[1:], [(0.08, 0.01), (0.55, 0.0)]],
        [[(0.58, 0.0), (0.1, 0.0), (0.06, 0.45)] + _arc(0.28, 0.7, 0.3, 0.29, -125, 150, 14)[1:]]],
    6: [[[(0.5, 0.0), (0.25, 0.2), (0.05, 0.55)] + _arc(0.3, 0.72, 0.27, 0.27, 180, 530, 18)],
        [_arc(0.55, 0.6, 0.55, 0.6, -100, -180, 8) + _arc(0.3, 0.72, 0.28, 0.27, 180, 540, 18)]],
    7: [[[(0.0, 0.02), (0.6, 0.0), (0.2, 1.0)]],
        [[(0.0, 0.02), (0.6, 0.0), (0.22, 1.0)], [(0.18, 0.5), (0.55, 0.5)]],
        [[(0.02, 0.15), (0.04, 0.0), (0.6, 0.0), (0.35, 0.55), (0.3, 1.0)]]],
    8: [[_arc(0.3, 0.25, 0.24, 0.25, 0, -180, 10)
         + [(0.1, 0.38), (0.5, 0.65)] + _arc(0.3, 0.75, 0.28, 0.25, -30, 210, 12) + [(0.5, 0.38), (0.54, 0.25)]],
        [_arc(0.3, 0.25, 0.25, 0.24, 0, 360, 16), _arc(0.3, 0.74, 0.3, 0.26, -90, 275, 18)]],
    9: [[_arc(0.3, 0.28, 0.28, 0.28, 10, 370, 18) + [(0.58, 0.3), (0.55, 1.0)]],
        [_arc(0.3, 0.28, 0.28, 0.28, 10, 370, 18) + [(0.58, 0.3), (0.5, 0.8), (0.35, 1.0)]]],
}


def _catmull_rom(p: np.ndarray, per_segment: int = 4) -> np.ndarray:
    """A smooth curve through the points (a polyline of ``per_segment`` samples per segment)."""
    if len(p) < 3:
        return p
    p = np.vstack([p[0], p, p[-1]])
    t = np.linspace(0, 1, per_segment, endpoint=False)[:, None]
    out = []
    for i in range(1, len(p) - 2):
        p0, p1, p2, p3 = p[i - 1], p[i], p[i + 1], p[i + 2]
        out.append(0.5 * (2 * p1 + (p2 - p0) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t ** 2
                          + (3 * p1 - p0 - 3 * p2 + p3) * t ** 3))
    out.append(p[-2][None])
    return np.vstack(out)


def pen_digit(label: int, height: int, rng: np.random.Generator, pen: float | None = None) -> np.ndarray:
    """An ink-opacity patch (float32, 0..1) of ``label`` drawn about ``height`` px tall.

    ``pen`` is the stroke width in pixels (default: a ballpoint 2-5% of the height or a marker
    5-12%, half and half)."""
    strokes = STROKES[int(label)][int(rng.integers(len(STROKES[int(label)])))]
    # Handwriting leans right or stands upright (a left lean turns a 1 into a backslash).
    slant, widen, rot = rng.uniform(-0.1, 0.3), rng.uniform(0.75, 1.25), math.radians(rng.uniform(-6, 6))
    if pen is None:
        pen = height * (rng.uniform(0.02, 0.05) if rng.random() < 0.5 else rng.uniform(0.05, 0.12))
    pen = max(1.0, float(pen))
    curves = []
    for s in strokes:
        q = np.array(s, np.float64)
        # A hand wobbles slowly along a stroke: smoothed noise, not per-point jitter.
        wobble = rng.normal(0, 0.03, q.shape)
        if len(q) >= 5:
            wobble = cv2.GaussianBlur(wobble, (1, 5), 0, sigmaY=1.2)
        q = _catmull_rom(q + wobble)
        x = q[:, 0] * widen + slant * (1 - q[:, 1])
        y = q[:, 1]
        curves.append(np.stack([x * math.cos(rot) - y * math.sin(rot), x * math.sin(rot) + y * math.cos(rot)], 1))
    pts = np.vstack(curves)
    lo, hi = pts.min(0), pts.max(0)
    s = height / max(hi[1] - lo[1], 1e-6)
    pad, ss = pen + 2, 4  # drawn at 4x, then shrunk: anti-aliased like a camera's pixels
    w, h = int(math.ceil((hi[0] - lo[0]) * s + 2 * pad)), int(math.ceil(height + 2 * pad))
    big = np.zeros((h * ss, w * ss), np.uint8)
    for c in curves:
        xy = np.round(((c - lo) * s + pad) * ss * 16).astype(np.int32)  # 4 fractional bits
        cv2.polylines(big, [xy], False, 255, max(1, int(round(pen * ss))), cv2.LINE_AA, shift=4)
    return cv2.resize(big, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0

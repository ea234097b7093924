"""The preprocessing contract: the one definition of what a model input is.

Every model in this project (training, export, parity, the edge runner) takes
the same input, made the way MNIST itself was made:

* grey, white ink on black (MNIST polarity),
* the ink's tight bounding box scaled so its longest side is 20 px, keeping
  the aspect ratio, with an area (anti-aliased) filter,
* placed in a 28x28 canvas so that the ink's centre of mass sits at the
  centre (14, 14),
* float32 in [0, 1], shape (28, 28, 1); for an int8 model the float value is
  quantized with the input tensor's own scale and zero point.

This module is numpy-only on purpose: training imports it, and so does the
Raspberry Pi runtime, which has no TensorFlow. Bump ``CONTRACT_VERSION`` when
anything here changes meaning; the export manifest records it and the edge
runner refuses a model made for another version.
"""

from __future__ import annotations

import functools

import numpy as np

CONTRACT_VERSION = 1
SIZE = 28  # model input side
BOX = 20  # longest side of the digit's bounding box inside the canvas
INPUT_SHAPE = (SIZE, SIZE, 1)
LABELS = tuple(str(d) for d in range(10))

__all__ = [
    "BOX",
    "CONTRACT_VERSION",
    "INPUT_SHAPE",
    "LABELS",
    "SIZE",
    "dequantize",
    "normalize_crop",
    "quantize",
    "to_float",
]


def to_float(images: np.ndarray) -> np.ndarray:
    """uint8 28x28 images (N,28,28) or (28,28) -> float32 in [0,1] with a channel axis."""
    x = np.asarray(images)
    if x.shape[-2:] != (SIZE, SIZE):
        raise ValueError(f"expected images of shape (..., {SIZE}, {SIZE}), got {x.shape}")
    return (x.astype(np.float32) / 255.0)[..., np.newaxis]


def quantize(x: np.ndarray, scale: float, zero_point: int, dtype=np.int8) -> np.ndarray:
    """Float -> integer with a tensor's own scale and zero point (round half to even, clipped)."""
    info = np.iinfo(dtype)
    q = np.round(np.asarray(x, dtype=np.float32) / np.float32(scale)) + zero_point
    return np.clip(q, info.min, info.max).astype(dtype)


def dequantize(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """Integer -> float32 with a tensor's own scale and zero point."""
    return (np.asarray(q, dtype=np.float32) - np.float32(zero_point)) * np.float32(scale)


@functools.lru_cache(maxsize=512)
def _area_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) matrix that resamples a 1-D signal by pixel-area averaging.

    Output pixel j covers input interval [j*r, (j+1)*r) with r = n_in/n_out;
    each input pixel contributes its overlap with that interval. This is
    OpenCV's INTER_AREA for shrinking and a linear-ish box filter for growing,
    and it keeps total ink proportional, as MNIST's anti-aliasing did.
    """
    r = n_in / n_out
    edges = np.arange(n_out + 1, dtype=np.float64) * r
    lo, hi = edges[:-1, None], edges[1:, None]
    pix = np.arange(n_in, dtype=np.float64)[None, :]
    overlap = np.clip(np.minimum(hi, pix + 1) - np.maximum(lo, pix), 0.0, None)
    m = (overlap / overlap.sum(axis=1, keepdims=True)).astype(np.float32)
    m.setflags(write=False)
    return m


def _median(v: np.ndarray) -> float:
    """``np.median`` of a 1-D float32 array by one partition (a crop's border: 0.02 ms, not 0.09)."""
    n = v.size
    k = n // 2
    if n % 2:
        return float(np.partition(v, k)[k])
    p = np.partition(v, [k - 1, k])
    return float((p[k - 1] + p[k]) / np.float32(2))


def normalize_crop(crop: np.ndarray, *, ink_is_dark: bool | None = None) -> np.ndarray:
    """Any crop of one digit -> a uint8 (28, 28) MNIST-style image.

    ``crop`` may be grey (H, W) or colour (H, W, 3/4, BGR order as OpenCV
    gives), any integer or float dtype. ``ink_is_dark`` says the polarity:
    True for dark ink on light paper (a photo), False for light ink on dark
    (MNIST), None to guess from the border (the border is background).
    An empty or blank crop gives an all-zero image.
    """
    g = np.asarray(crop)
    if g.ndim == 3:
        if g.shape[2] == 1:
            g = g[..., 0]
        else:
            # BGR(A) -> luma, same weights as cv2.COLOR_BGR2GRAY.
            g = g[..., 0] * 0.114 + g[..., 1] * 0.587 + g[..., 2] * 0.299
    if g.ndim != 2:
        raise ValueError(f"a crop must be (H, W) or (H, W, C), got shape {np.shape(crop)}")
    if g.size == 0:
        return np.zeros((SIZE, SIZE), np.uint8)
    if g.dtype.kind in "biu":  # integers and bools: no NaN/inf, and min/max/border before the copy
        lo, hi = float(g.min()), float(g.max())
        g = g.astype(np.float32)
    else:
        g = g.astype(np.float32)
        if not np.isfinite(g).all():
            g = np.nan_to_num(g, nan=0.0, posinf=0.0, neginf=0.0)
        lo, hi = float(g.min()), float(g.max())
    if hi - lo < 1e-6:
        return np.zeros((SIZE, SIZE), np.uint8)
    border = _median(np.concatenate([g[0], g[-1], g[:, 0], g[:, -1]]))
    if ink_is_dark is None:
        ink_is_dark = border > (lo + hi) / 2
    # Ink up, and what is no stronger than the typical border is background (0). In place: g is
    # this function's own copy.
    if ink_is_dark:
        g, floor = hi - g, hi - border
    else:
        g -= lo
        floor = border - lo
    g -= floor
    g /= max(1e-6, (hi - lo) - floor)
    np.clip(g, 0.0, 1.0, out=g)

    return _place(g)


def on_white(bgra: np.ndarray) -> np.ndarray:
    """A BGRA uint8 image laid on white paper by its alpha: BGR uint8."""
    a = bgra[..., 3:4].astype(np.float32) / 255.0
    return (bgra[..., :3].astype(np.float32) * a + 255.0 * (1.0 - a)).astype(np.uint8)


def normalize_ink(ink: np.ndarray) -> np.ndarray:
    """``normalize_crop(ink, ink_is_dark=False)`` for the detector's own crops, in 55-65% of the time
    (65-82 us against 98-147 on a 10-digit frame's crops, on a noisy machine; numpy calls of 1-5 us
    each are most of what is left).

    ``ink`` is uint8 (H, W), light ink on a background of exactly 0 all round its border (what
    ``edge.detect`` cuts out). Then the general path's darkest value, border level and floor are
    all 0, and its steps reduce to one division by the peak: the output is the same, byte for
    byte. Anything else goes through ``normalize_crop``."""
    if ink.dtype != np.uint8 or ink.ndim != 2 or ink.shape[0] < 2 or ink.shape[1] < 2:
        return normalize_crop(ink, ink_is_dark=False)
    import cv2  # the detector's own dependency: this module stays importable with numpy alone

    # The box of every pixel above 0: off the edges, the border is 0 all round (one OpenCV call
    # where four numpy reductions of the border took 3-4 times as long).
    x, y, w, h = cv2.boundingRect(ink)
    if w == 0:
        return np.zeros((SIZE, SIZE), np.uint8)
    if x == 0 or y == 0 or x + w == ink.shape[1] or y + h == ink.shape[0]:
        return normalize_crop(ink, ink_is_dark=False)
    hi = int(np.maximum.reduce(ink, axis=None))  # (ink.max() without its Python wrapper)
    # _place's "ink > 0.05" on ink / hi, found on the uint8 crop by OpenCV (one call, not four
    # numpy reductions), so only the digit's own box is turned to float.
    x, y, w, h = cv2.boundingRect(cv2.threshold(ink, _ink_floor(hi) - 1, 255, cv2.THRESH_BINARY)[1])
    g = ink[y : y + h, x : x + w].astype(np.float32)
    g /= hi  # what normalize_crop's "g -= lo; g -= floor; g /= hi - lo - floor" is with lo = floor = 0
    return _fit(g)


@functools.lru_cache(maxsize=256)
def _ink_floor(hi: int) -> int:
    """The least uint8 value v for which ``v / hi`` (in float32, as ``_place`` computes it) is over
    0.05: ``_place``'s ink threshold, on the uint8 scale."""
    return int(np.flatnonzero((np.arange(256, dtype=np.float32) / hi) > 0.05)[0])


_INDEX = np.arange(SIZE, dtype=np.float32)


def _place(g: np.ndarray) -> np.ndarray:
    """Ink in [0, 1] (float32, background 0) -> 28x28 uint8: tight box, longest side to ``BOX``
    by pixel-area averaging, centre of mass at the centre."""
    inked = g > 0.05
    rows = np.flatnonzero(inked.any(axis=1))
    if rows.size == 0:
        return np.zeros((SIZE, SIZE), np.uint8)
    cols = np.flatnonzero(inked.any(axis=0))
    return _fit(g[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1])


def _fit(g: np.ndarray) -> np.ndarray:
    """The ink's tight box (float32 in [0, 1]) -> 28x28 uint8: longest side to ``BOX`` by
    pixel-area averaging, centre of mass at the centre."""
    h, w = g.shape
    s = BOX / max(h, w)
    nh, nw = max(1, int(round(h * s))), max(1, int(round(w * s)))
    small = _area_matrix(h, nh) @ g @ _area_matrix(w, nw).T
    # (ufunc reductions, not small.max() and small.sum(): the same operations without their
    # Python wrappers, a few us a crop)
    small *= 1.0 / max(float(np.maximum.reduce(small, axis=None)), 1e-6)

    # Centre of mass -> (14, 14) in pixel-index coordinates, by an integer
    # shift as MNIST did (MNIST's own centres of mass all lie in [13.5, 14.5]).
    total = float(np.add.reduce(small, axis=None))
    cy = float(np.add.reduce(small, axis=1) @ _INDEX[:nh]) / total
    cx = float(np.add.reduce(small, axis=0) @ _INDEX[:nw]) / total
    top = min(max(int(round(SIZE / 2 - cy)), 0), SIZE - nh)
    left = min(max(int(round(SIZE / 2 - cx)), 0), SIZE - nw)
    out = np.zeros((SIZE, SIZE), np.uint8)
    small *= 255.0
    out[top : top + nh, left : left + nw] = np.rint(small, out=small)  # (np.round(small * 255.0), in place)
    return out

"""The preprocessing contract: MNIST-style 28x28 from any crop."""

from __future__ import annotations

import numpy as np
import pytest

from edge import contract


def _blob(h=60, w=30, dark=True, bg=230, ink=30):
    img = np.full((h + 40, w + 40), bg, np.uint8)
    img[20 : 20 + h, 20 : 20 + w] = ink
    img[20 + h // 3 : 20 + h // 2, 20 + w // 4 : 20 + w // 2] = bg  # a hole, so it is not symmetric
    return img if dark else 255 - img


def _com(a):
    a = a.astype(np.float64)
    ys, xs = np.indices(a.shape)
    return (ys * a).sum() / a.sum(), (xs * a).sum() / a.sum()


@pytest.mark.parametrize("dark", [True, False])
def test_box_centre_of_mass_and_polarity(dark):
    out = contract.normalize_crop(_blob(dark=dark))
    assert out.shape == (28, 28) and out.dtype == np.uint8
    assert out[0].max() == 0 and out[:, 0].max() == 0  # background is black: white ink on black
    ys, xs = np.nonzero(out > 0)
    assert max(ys.max() - ys.min() + 1, xs.max() - xs.min() + 1) == 20
    cy, cx = _com(out)
    assert abs(cy - 14) <= 1 and abs(cx - 14) <= 1
    assert out.max() == 255


def test_explicit_polarity_and_colour_input():
    crop = np.dstack([_blob()] * 3)
    assert np.array_equal(contract.normalize_crop(crop), contract.normalize_crop(_blob(), ink_is_dark=True))


def test_wide_digit_keeps_aspect():
    out = contract.normalize_crop(_blob(h=10, w=50))
    ys, xs = np.nonzero(out)
    assert xs.max() - xs.min() + 1 == 20 and ys.max() - ys.min() + 1 == 4


@pytest.mark.parametrize("crop", [np.zeros((0, 5)), np.full((9, 9), 7, np.uint8), np.zeros((3, 3), np.float64)])
def test_empty_or_blank_crop_is_blank(crop):
    assert contract.normalize_crop(crop).max() == 0


def test_quantize_roundtrip():
    x = np.linspace(0, 1, 101, dtype=np.float32)
    q = contract.quantize(x, 1 / 255, -128)
    assert q.dtype == np.int8 and q.min() == -128 and q.max() == 127
    assert np.abs(contract.dequantize(q, 1 / 255, -128) - x).max() <= 0.5 / 255 + 1e-7


def test_to_float_shape():
    x = contract.to_float(np.full((2, 28, 28), 255, np.uint8))
    assert x.shape == (2, 28, 28, 1) and x.dtype == np.float32 and x.max() == 1.0
    with pytest.raises(ValueError):
        contract.to_float(np.zeros((2, 27, 28), np.uint8))


def test_mnist_digit_roundtrip_stays_close(mnist):
    """A real MNIST digit, enlarged, printed dark on light and re-normalised, comes back as it was."""
    x = mnist[1][0][:100]
    diffs = []
    for img in x:
        paper = 255 - np.kron(img, np.ones((4, 4), np.uint8))  # a 112x112 "photo"
        diffs.append(np.abs(contract.normalize_crop(paper).astype(int) - img.astype(int)).mean())
    # Same placement as MNIST (not one pixel off) for nearly every digit.
    assert np.median(diffs) < 0.5 and np.mean(np.array(diffs) < 2) > 0.9


def _ink_crops(seed: int, n: int = 60):
    """Light ink on 0 in random shapes and sizes, as the detector cuts them (its border all 0)."""
    rng = np.random.default_rng(seed)
    for _ in range(n):
        h, w = int(rng.integers(3, 120)), int(rng.integers(3, 120))
        a = np.zeros((h + 4, w + 4), np.uint8)
        a[2:-2, 2:-2] = rng.integers(0, 256, (h, w)) * (rng.random((h, w)) < rng.uniform(0.05, 0.9))
        yield a


def test_normalize_ink_is_normalize_crop_byte_for_byte():
    """The detector's fast path gives what the contract gives, on crops it takes and on ones it hands on."""
    seen = 0
    for a in _ink_crops(0):
        assert np.array_equal(contract.normalize_ink(a), contract.normalize_crop(a, ink_is_dark=False))
        edged = a.copy()
        edged[[0, -1], :] = 90  # a grey border: not the fast path's case (its floor is not 0)
        edged[:, [0, -1]] = 90
        assert np.array_equal(contract.normalize_ink(edged), contract.normalize_crop(edged, ink_is_dark=False))
        for r, c in ((0, a.shape[1] // 2), (-1, 3), (a.shape[0] // 2, 0), (2, -1)):
            touched = a.copy()
            touched[r, c] = 7  # a little faint ink on one edge only: the general path too
            assert np.array_equal(contract.normalize_ink(touched), contract.normalize_crop(touched, ink_is_dark=False))
        seen += int(a.max() > 0)
    assert seen > 50
    # Its ink threshold is found on the uint8 scale: at every peak, faint ink just at and just under
    # the threshold decides the box the same way as the float path's "ink > 0.05".
    for hi in range(1, 256):
        a = np.zeros((12, 40), np.uint8)
        a[4:8, 18:22] = hi
        for v in range(max(0, hi // 20 - 2), hi // 20 + 3):
            a[2 + v % 8, 2 + 2 * (v % 16)] = min(v, hi)
        assert np.array_equal(contract.normalize_ink(a), contract.normalize_crop(a, ink_is_dark=False)), hi
    assert contract.normalize_ink(np.zeros((30, 20), np.uint8)).max() == 0
    f = np.zeros((30, 20), np.float32)
    f[5:25, 5:15] = 0.7  # not uint8: the general path
    assert np.array_equal(contract.normalize_ink(f), contract.normalize_crop(f, ink_is_dark=False))

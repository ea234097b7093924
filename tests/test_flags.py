"""train.flags: MNIST ones written again with a flag, as much of the world writes a 1."""

from __future__ import annotations

import numpy as np
import pytest

from train.flags import FLAG_ANGLE, FLAG_LENGTH, add_flags, flagged_ones


def _straight_one(x=14, top=4, bottom=24, width=2):
    a = np.zeros((28, 28), np.uint8)
    a[top:bottom, x - width // 2 : x - width // 2 + width] = 255
    return a


def test_flag_leaves_the_top_down_and_to_the_left():
    one = _straight_one()
    out = add_flags(one[None], seed=0)[0]
    assert out.shape == (28, 28) and out.dtype == np.uint8
    assert (out >= one).all(), "the digit's own ink is kept"
    added = (out.astype(int) - one) > 64
    ys, xs = np.nonzero(added)
    assert added.sum() >= 4
    # Left of the stem, in the digit's top 40%: a flag, not a 7's long bar nor a base.
    assert xs.max() < 13 and ys.min() >= 4 and ys.max() < 4 + 0.4 * 20
    # It reaches the stem: one stroke, not a separate dash.
    assert added[:, 11:13].any()


def test_flags_are_short_and_close_to_the_stem():
    """Over many seeds the flag's reach and its angle to the stem stay in their ranges: shorter
    than a 7's bar and closer to the stem."""
    one = _straight_one(width=2)  # the stem: columns 13-14, rows 4-23
    outs = add_flags(np.repeat(one[None], 200, axis=0), seed=1)
    angles, reach = [], []
    yy, xx = np.indices(one.shape) + 0.5
    for out in outs:
        added = np.clip(out.astype(float) - one, 0, None)
        added[:, 13:15] = 0  # the stem's own columns
        w = added / added.sum()
        cx, cy = (xx * w).sum(), (yy * w).sum()  # the flag's centre, seen from its start at (14, 5)
        angles.append(np.degrees(np.arctan2(14 - cx, cy - 5)))
        ys, xs = np.nonzero(added > 128)
        tip = np.argmin(xs)
        reach.append(np.hypot(14 - xs[tip] - 0.5, ys[tip] + 0.5 - 5) / 20)
    assert FLAG_LENGTH[0] - 0.1 < min(reach) and max(reach) < FLAG_LENGTH[1] + 0.1
    assert FLAG_ANGLE[0] - 6 < min(angles) and max(angles) < FLAG_ANGLE[1] + 6 and np.ptp(angles) > 10


def test_seeded_and_validated():
    ones = np.stack([_straight_one(x) for x in range(8, 20)])
    assert np.array_equal(add_flags(ones, seed=4), add_flags(ones, seed=4))
    assert not np.array_equal(add_flags(ones, seed=4), add_flags(ones, seed=5))
    assert add_flags(np.zeros((0, 28, 28), np.uint8), seed=0).shape == (0, 28, 28)
    with pytest.raises(ValueError, match="uint8"):
        add_flags(ones.astype(np.float32), seed=0)
    y = np.array([1] * 10 + [7] * 5, np.uint8)
    x = np.concatenate([ones[:10], np.zeros((5, 28, 28), np.uint8)])
    xf, yf = flagged_ones(x, y, 0.3, seed=0)
    assert xf.shape == (3, 28, 28) and (yf == 1).all()
    with pytest.raises(ValueError, match="between 0 and 1"):
        flagged_ones(x, y, 1.5, seed=0)


def test_real_ones_get_a_flag(mnist):
    (x, y), _ = mnist
    ones = x[y == 1][:300]
    out = add_flags(ones, seed=2)
    added = (out.astype(int) - ones) > 64
    assert (out >= ones).all()
    frac = added.sum(axis=(1, 2)) / np.maximum((ones > 128).sum(axis=(1, 2)), 1)
    assert np.median(frac) > 0.1 and np.median(frac) < 0.8
    # The flag sits in the top half of each digit.
    rows = np.nonzero(added.any(axis=2))
    assert np.mean(rows[1] < 16) > 0.9

"""Training-time augmentation that prepares a model for camera crops.

A detector's crop is never a perfect MNIST digit: it is a little rotated,
shifted, scaled, sheared, and drawn with a thinner or thicker pen. These ops
do exactly that, batched and in-graph (no Python per image), with stateless
random numbers keyed by ``(seed, step)`` so a run is repeatable.
"""

from __future__ import annotations

import math

import tensorflow as tf


def _affine(batch: int, seed, *, rotate_deg: float, scale: float, shear: float, shift_px: float):
    """Per-image 8-parameter projective transforms (output -> input) about the image centre."""
    u = tf.random.stateless_uniform((batch, 5), seed=seed, minval=-1.0, maxval=1.0)
    theta = u[:, 0] * (rotate_deg * math.pi / 180.0)
    s = 1.0 + u[:, 1] * scale
    sh = u[:, 2] * shear
    tx, ty = u[:, 3] * shift_px, u[:, 4] * shift_px
    c, si = tf.cos(theta), tf.sin(theta)
    # Forward map: A = R(theta) * Shear(sh) * S(s). We need its inverse (output -> input).
    a00, a01 = c * s, (c * sh - si) * s
    a10, a11 = si * s, (si * sh + c) * s
    det = a00 * a11 - a01 * a10
    i00, i01, i10, i11 = a11 / det, -a01 / det, -a10 / det, a00 / det
    cx = cy = 13.5
    # input = Inv * (output - centre - t) + centre
    ox = cx - i00 * (cx + tx) - i01 * (cy + ty)
    oy = cy - i10 * (cx + tx) - i11 * (cy + ty)
    zeros = tf.zeros_like(i00)
    return tf.stack([i00, i01, ox, i10, i11, oy, zeros, zeros], axis=1)


MOTION_TAPS = 7  # the streak's kernel is this many pixels square: streaks up to MOTION_MAX long fit in it
MOTION_MIN, MOTION_MAX = 1.5, 5.5  # streak lengths in 28-px pixels (the digit's box is 20 px tall)
MOTION_CUT = (0.1, 0.35)  # what the smear's faint tail loses, as a share of its peak (the detector's ink threshold)


def _max_pool(images, size: int):
    """``tf.nn.max_pool2d(images, size, 1, "SAME")`` of a (B, H, W, 1) batch, the same values in a
    fifth of the time: pooled with the batch as channels (TensorFlow's CPU pooling of one channel
    at a time cost 8-12 ms a batch of 128, more than the rest of the augmentation)."""
    return tf.transpose(tf.nn.max_pool2d(tf.transpose(images, [3, 1, 2, 0]), size, 1, "SAME"), [3, 1, 2, 0])


def _streak_kernels(batch: int, seed):
    """One normalised line kernel per image: a random direction, MOTION_MIN-MOTION_MAX px long,
    antialiased (weight 1 - distance from the segment). Shape (7, 7, B, 1), for a depthwise conv."""
    u = tf.random.stateless_uniform((batch, 2), seed=seed)
    angle = u[:, 0] * math.pi
    half = 0.5 * (MOTION_MIN + u[:, 1] * (MOTION_MAX - MOTION_MIN))
    r = tf.range(MOTION_TAPS, dtype=tf.float32) - (MOTION_TAPS - 1) / 2.0
    dy, dx = tf.meshgrid(r, r, indexing="ij")  # (7, 7)
    c, s = tf.cos(angle)[:, None, None], tf.sin(angle)[:, None, None]
    t = tf.clip_by_value(dx * c + dy * s, -half[:, None, None], half[:, None, None])
    dist = tf.sqrt(tf.square(dx - t * c) + tf.square(dy - t * s))
    k = tf.nn.relu(1.0 - dist)  # (B, 7, 7)
    k /= tf.reduce_sum(k, axis=[1, 2], keepdims=True)
    return tf.transpose(k, [1, 2, 0])[..., None]


def motion_blur(images, seed):
    """Each image of a float32 (B, 28, 28, 1) batch streaked as by a camera or a sheet moving during
    the exposure, then its faint tail cut, its stroke thinned and its peak brought back to 1, as
    the detector cuts a streaked digit out of a frame: the stroke smeared along the motion, small
    loops filled (``edge.evaluate --motion``)."""
    batch = tf.shape(images)[0]
    seeds = tf.random.experimental.stateless_split(seed, 2)
    kernels = _streak_kernels(batch, seeds[0])
    # One depthwise conv with the batch as channels: every image its own kernel.
    x = tf.transpose(images, [3, 1, 2, 0])  # (1, 28, 28, B)
    x = tf.nn.depthwise_conv2d(x, kernels, strides=[1, 1, 1, 1], padding="SAME")
    x = tf.transpose(x, [3, 1, 2, 0])
    x /= tf.maximum(tf.reduce_max(x, axis=[1, 2, 3], keepdims=True), 1e-3)
    cut = tf.random.stateless_uniform((batch, 1, 1, 1), seed=seeds[1], minval=MOTION_CUT[0], maxval=MOTION_CUT[1])
    x = tf.clip_by_value((x - cut) / (1.0 - cut), 0.0, 1.0)
    # The detector brings a stroke's width back to about 2 px of 20 (edge.detect._crop): a smear
    # widened by the streak is thinned by a pixel each side, unless that takes most of its ink (a
    # thin stroke streaked along itself is no wider).
    thinned = -_max_pool(-x, 3)
    wide = tf.reduce_sum(thinned, axis=[1, 2, 3], keepdims=True) > 0.35 * tf.reduce_sum(x, axis=[1, 2, 3], keepdims=True)
    x = tf.where(wide, thinned, x)
    return x / tf.maximum(tf.reduce_max(x, axis=[1, 2, 3], keepdims=True), 1e-3)


def augment_batch(images, seed, motion: float = 0.0):
    """Augment a float32 (B, 28, 28, 1) batch in [0, 1]; ``seed`` is a shape-(2,) int tensor.
    ``motion``: the share of images also streaked (``motion_blur``; 0: none, and the other
    augmentations draw exactly the random numbers they drew before it existed)."""
    batch = tf.shape(images)[0]
    seeds = tf.random.experimental.stateless_split(seed, 3)
    transforms = _affine(batch, seeds[0], rotate_deg=10.0, scale=0.10, shear=0.15, shift_px=2.0)
    out = tf.raw_ops.ImageProjectiveTransformV3(
        images=images,
        transforms=transforms,
        output_shape=tf.constant([28, 28]),
        interpolation="BILINEAR",
        fill_mode="CONSTANT",
        fill_value=0.0,
    )
    # Stroke thickness: a quarter of the images a pen thicker, a tenth thinner.
    thick = _max_pool(out, 2)
    thin = -_max_pool(-out, 2)
    r = tf.random.stateless_uniform((batch, 1, 1, 1), seed=seeds[1])
    out = tf.where(r < 0.25, thick, tf.where(r > 0.9, thin, out))
    if motion > 0:
        mseed = tf.random.experimental.stateless_fold_in(seed, 7)
        pick = tf.random.stateless_uniform((batch, 1, 1, 1), seed=mseed) < motion
        out = tf.where(pick, motion_blur(out, tf.random.experimental.stateless_fold_in(mseed, 1)), out)
    # Contrast: camera crops are normalised, but faint strokes survive as grey.
    gain = tf.random.stateless_uniform((batch, 1, 1, 1), seed=seeds[2], minval=0.85, maxval=1.0)
    peak = tf.maximum(tf.reduce_max(out, axis=[1, 2, 3], keepdims=True), 1e-3)
    return tf.clip_by_value(out / peak * gain, 0.0, 1.0)

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


def augment_batch(images, seed):
    """Augment a float32 (B, 28, 28, 1) batch in [0, 1]; ``seed`` is a shape-(2,) int tensor."""
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
    thick = tf.nn.max_pool2d(out, 2, 1, "SAME")
    thin = -tf.nn.max_pool2d(-out, 2, 1, "SAME")
    r = tf.random.stateless_uniform((batch, 1, 1, 1), seed=seeds[1])
    out = tf.where(r < 0.25, thick, tf.where(r > 0.9, thin, out))
    # Contrast: camera crops are normalised, but faint strokes survive as grey.
    gain = tf.random.stateless_uniform((batch, 1, 1, 1), seed=seeds[2], minval=0.85, maxval=1.0)
    peak = tf.maximum(tf.reduce_max(out, axis=[1, 2, 3], keepdims=True), 1e-3)
    return tf.clip_by_value(out / peak * gain, 0.0, 1.0)

"""Training digits as the edge runner will see them: crops cut by the detector from camera-like frames.

MNIST is clean, centred and drawn with one pen; a crop the runner cuts out of a
photo is not (a faint or broken stroke, JPEG noise, a pen normalised from thin
or thick, a neighbour's ink at the edge). Rendering *training* digits into
synthetic frames (``edge.synthetic``), running the real detector
(``edge.detect.find_candidates``) and keeping each crop that matches a drawn digit
gives training images from exactly that distribution, labelled by the digit
that was drawn. Test digits are never used here: ``python -m edge.evaluate``
measures on frames of test digits only.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor

import numpy as np

_POOL: tuple[np.ndarray, np.ndarray] | None = None


def _init(images: np.ndarray, labels: np.ndarray) -> None:
    global _POOL
    _POOL = (images, labels)


def _chunk(args) -> tuple[np.ndarray, np.ndarray]:
    frames, seed = args
    images, labels = _POOL
    from edge.detect import find_candidates
    from edge.synthetic import FrameMaker, best_match

    maker = FrameMaker(images, labels, seed=seed)
    xs, ys = [], []
    for _ in range(frames):
        frame = maker.make()
        cands, scale = find_candidates(frame.image)
        boxes = [tuple(round(v / scale) for v in c.box) for c in cands]
        for t in frame.digits:
            best = best_match(t.box, boxes)
            if best is not None:
                xs.append(cands[best].crop)
                ys.append(t.label)
    if not xs:
        return np.zeros((0, 28, 28), np.uint8), np.zeros((0,), np.uint8)
    return np.stack(xs), np.asarray(ys, np.uint8)


def detector_crops(images: np.ndarray, labels: np.ndarray, count: int, *, seed: int,
                   workers: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """About ``count`` detector crops of ``images`` (uint8 N x 28 x 28) with their labels.

    Seeded: the same arguments give the same crops, whatever the number of workers."""
    if count <= 0:
        return np.zeros((0, 28, 28), np.uint8), np.zeros((0,), np.uint8)
    frames = max(1, int(np.ceil(count / 5.5)))  # 5.5 digits per frame on average
    chunks = max(1, min(32, frames // 50))
    per = [frames // chunks + (1 if i < frames % chunks else 0) for i in range(chunks)]
    jobs = [(n, seed * 1000 + i) for i, n in enumerate(per)]
    workers = workers or min(len(jobs), os.cpu_count() or 1)
    if workers > 1:
        # spawn, not fork: the parent has TensorFlow's threads running, and a forked child could hang on them.
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init, initargs=(images, labels)) as pool:
            parts = list(pool.map(_chunk, jobs))
    else:
        _init(images, labels)
        parts = [_chunk(j) for j in jobs]
    x = np.concatenate([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts])
    return x[:count], y[:count]

"""Live stability: per-box temporal smoothing, so a steady digit does not flicker."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from .detect import DetectConfig, Digit, Reading, assemble, iou


@dataclass
class _Track:
    box: tuple[int, int, int, int]
    probs: deque = field(default_factory=deque)
    missed: int = 0


class Smoother:
    """Matches each frame's boxes to the previous frames' by overlap and averages their class
    probabilities over the last ``window`` frames. A track unseen for ``max_missed`` frames ends."""

    def __init__(self, window: int = 5, min_iou: float = 0.3, max_missed: int = 3,
                 min_confidence: float = DetectConfig.min_confidence):
        self.window, self.min_iou, self.max_missed, self.min_confidence = window, min_iou, max_missed, min_confidence
        self.tracks: list[_Track] = []

    def update(self, reading: Reading) -> Reading:
        """The same frame's reading, each digit's label and confidence averaged over its track."""
        cands = reading.digits + reading.rejected
        used: set[int] = set()
        out: list[Digit] = []
        rejected: list[Digit] = []
        for d in cands:
            best, best_iou = None, self.min_iou
            for ti, t in enumerate(self.tracks):
                if ti in used:
                    continue
                v = iou(t.box, d.box)
                if v >= best_iou:
                    best, best_iou = ti, v
            if best is None:
                self.tracks.append(_Track(d.box, deque(maxlen=self.window)))
                best = len(self.tracks) - 1
            used.add(best)
            t = self.tracks[best]
            t.box, t.missed = d.box, 0
            t.probs.append(np.asarray(d.probs if d.probs is not None else _one_hot(d), np.float32))
            mean = np.mean(t.probs, axis=0)
            label = int(mean.argmax())
            s = Digit(label, float(mean[label]), d.box, mean, small=d.small)
            # Smoothing may lift a digit over the confidence it needs, not over its frame's size rule.
            (out if s.confidence >= self.min_confidence and not s.small else rejected).append(s)
        for ti, t in enumerate(self.tracks):
            if ti not in used:
                t.missed += 1
        self.tracks = [t for t in self.tracks if t.missed <= self.max_missed]
        return assemble(out, rejected, reading.detect_ms, reading.classify_ms)


def _one_hot(d: Digit) -> np.ndarray:
    p = np.zeros(10, np.float32)
    p[d.label] = d.confidence
    return p

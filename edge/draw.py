"""Drawing a reading onto a frame: boxes, digits, confidence, the text and FPS."""

from __future__ import annotations

import cv2
import numpy as np

from .detect import Reading

GREEN, RED, WHITE, BLACK = (60, 200, 60), (40, 40, 230), (255, 255, 255), (0, 0, 0)


def annotate(frame: np.ndarray, reading: Reading, fps: float | None = None) -> np.ndarray:
    """A BGR copy of ``frame`` with the reading drawn on it."""
    img = frame.copy() if frame.ndim == 3 else cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    h, w = img.shape[:2]
    s = max(0.4, min(w, h) / 800)
    th = max(1, int(round(2 * s)))
    for d in reading.rejected:
        x, y, bw, bh = d.box
        cv2.rectangle(img, (x, y), (x + bw, y + bh), RED, th)
    for d in reading.digits:
        x, y, bw, bh = d.box
        cv2.rectangle(img, (x, y), (x + bw, y + bh), GREEN, th)
        label = f"{d.label} {d.confidence:.2f}"
        (tw, tht), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.6 * s, th)
        cv2.rectangle(img, (x, max(0, y - tht - 6)), (x + tw + 4, y), GREEN, -1)
        cv2.putText(img, label, (x + 2, max(tht, y - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.6 * s, BLACK, th, cv2.LINE_AA)
    banner = f"text: {reading.text or '-'}" + (f"   {fps:.1f} FPS" if fps else "")
    (tw, tht), _ = cv2.getTextSize(banner, cv2.FONT_HERSHEY_SIMPLEX, 0.7 * s, th)
    cv2.rectangle(img, (0, h - tht - 12), (min(w, tw + 12), h), BLACK, -1)
    cv2.putText(img, banner, (6, h - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.7 * s, WHITE, th, cv2.LINE_AA)
    return img

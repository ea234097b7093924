"""Camera-like frames of handwritten digits on paper, with exact ground truth.

Digits are MNIST *test* digits (never training digits, so measurements on
these frames are honest), drawn as dark ink on paper: random paper colour and
texture, ink colour and stroke thickness, several digits per frame in lines,
then the camera's share: perspective, uneven light, a soft shadow, blur,
sensor noise and JPEG compression. Seeded: the same seed gives the same frames.

When no MNIST copy is at hand (a Pi with no dataset), digits are drawn with
OpenCV's Hershey fonts instead, so ``run --source synthetic`` still works.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from .detect import iou
from .pen import pen_digit

# "mnist": MNIST test digits as ink; "pen": digits drawn as pen strokes (edge.pen), not MNIST.
STYLES = ("mnist", "pen")
# "page": 1-10 digits in 1-3 lines; "closeup": 1-3 big digits (one fills 40-85% of the frame height).
LAYOUTS = ("page", "closeup")

PAPERS = {  # BGR
    "white": (236, 238, 240),
    "beige": (180, 215, 232),
    "grey": (185, 188, 190),
    "blue": (225, 195, 150),
    "green": (175, 220, 185),
}
# Sticky notes, as a phone photographs them (BGR): saturated paper, where the darkest channel of a
# pencil or a red pen can be no darker than the paper's own (orange paper's blue channel is ~80).
STICKY = {
    "yellow": (130, 235, 250),
    "orange": (80, 175, 250),
    "pink": (185, 140, 250),
    "lime": (120, 235, 190),
}
# --paper: which papers a frame is drawn on, a set or one paper ("office", the default, is what
# every figure before the sticky notes was measured on, and draws the same frames for a seed).
PALETTES = {"office": PAPERS, "sticky": STICKY, "all": {**PAPERS, **STICKY},
            **{name: {name: bgr} for name, bgr in {**PAPERS, **STICKY}.items()}}
# The shadow a frame may have (the phone's, or a hand's): its edge's blur (Gaussian sigma, in pixels of
# a 640-px view) and how much light it takes. "soft" (the default): half the frames, under a ceiling
# light, as every figure before hard shadows was measured. "hard": every frame, in direct sun or
# under a small lamp, a sharp edge and a deeper shadow.
SHADOWS = {"soft": ((8.0, 30.0), (0.2, 0.45)), "hard": ((0.8, 4.0), (0.35, 0.65))}
INKS = {"black": (25, 25, 30), "blue": (140, 50, 20), "red": (40, 35, 170), "pencil": (80, 80, 85)}


@dataclass
class Truth:
    label: int
    box: tuple[int, int, int, int]  # x, y, w, h of the digit's ink in the frame
    line: int


@dataclass
class Frame:
    image: np.ndarray  # uint8 BGR
    digits: list[Truth] = field(default_factory=list)
    paper: str = ""  # names in PALETTES and INKS: what the frame is drawn with, to break results down
    ink: str = ""

    @property
    def text(self) -> str:
        lines: dict[int, list[Truth]] = {}
        for d in self.digits:
            lines.setdefault(d.line, []).append(d)
        return " ".join("".join(str(d.label) for d in sorted(ds, key=lambda d: d.box[0]))
                        for _, ds in sorted(lines.items()))


def load_test_digits(directory: str | os.PathLike | None = None) -> tuple[np.ndarray, np.ndarray] | None:
    """MNIST test images and labels from ``directory`` or $MNIST_DIR, or None if there is none."""
    from .idx import parse_idx

    d = directory or os.environ.get("MNIST_DIR")
    if not d:
        return None
    d = Path(d)
    for suffix in (".gz", ""):
        xi, yi = d / f"t10k-images-idx3-ubyte{suffix}", d / f"t10k-labels-idx1-ubyte{suffix}"
        if xi.is_file() and yi.is_file():
            return parse_idx(xi, kind="images", count=10000), parse_idx(yi, kind="labels", count=10000)
    return None


def font_digits(n: int = 200, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """28x28 white-on-black digits drawn with Hershey fonts (a stand-in when MNIST is absent)."""
    rng = np.random.default_rng(seed)
    fonts = [cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_COMPLEX,
             cv2.FONT_HERSHEY_SCRIPT_SIMPLEX, cv2.FONT_HERSHEY_TRIPLEX]
    xs, ys = [], []
    for i in range(n):
        label = i % 10
        img = np.zeros((56, 56), np.uint8)
        cv2.putText(img, str(label), (12, 46), fonts[rng.integers(len(fonts))], 1.6, 255,
                    int(rng.integers(3, 6)), cv2.LINE_AA)
        from .contract import normalize_crop

        xs.append(normalize_crop(img, ink_is_dark=False))
        ys.append(label)
    return np.stack(xs), np.array(ys, np.uint8)


MIN_SIDE = 32  # px: a line of digits at least 22 px tall, with its margins, fits


class FrameMaker:
    """Seeded generator of synthetic frames from a pool of 28x28 digits."""

    def __init__(self, digits: np.ndarray | None = None, labels: np.ndarray | None = None, *,
                 seed: int = 0, size: tuple[int, int] = (640, 480), style: str = "mnist",
                 touching: float = 0.0, layout: str = "page", paper: str = "office", shadow: str = "soft",
                 turn: float = 0.0, motion: float = 0.0):
        if min(size) < MIN_SIDE:
            raise ValueError(f"frame size {size[0]}x{size[1]} is too small: each side needs {MIN_SIDE} px or more")
        self.turn = float(turn)  # degrees the sheet is turned in view (either way, at random); 0: level
        self.motion = float(motion)  # px (at 640 px) the image streaks in one exposure, any direction; 0: still
        if shadow not in SHADOWS:
            raise ValueError(f"unknown shadow {shadow!r}; expected one of {', '.join(SHADOWS)}")
        self.shadow = shadow
        if paper not in PALETTES:
            raise ValueError(f"unknown paper {paper!r}; expected one of {', '.join(PALETTES)}")
        self.papers = PALETTES[paper]
        if style not in STYLES:
            raise ValueError(f"unknown digit style {style!r}; expected one of {', '.join(STYLES)}")
        if layout not in LAYOUTS:
            raise ValueError(f"unknown layout {layout!r}; expected one of {', '.join(LAYOUTS)}")
        self.style, self.layout = style, layout
        self.touching = touching  # chance that a digit is written touching (or nearly) the next one
        if digits is None and style == "pen":
            digits, labels = np.zeros((10, 28, 28), np.uint8), np.arange(10, dtype=np.uint8)  # labels only
        if digits is None:
            loaded = load_test_digits()
            digits, labels = loaded if loaded is not None else font_digits()
        self.digits, self.labels = digits, labels
        self.rng = np.random.default_rng(seed)
        self.size = size

    def _digit_alpha(self, img: np.ndarray, height: int) -> np.ndarray:
        """A 28x28 digit -> an ink-opacity patch ``height`` px tall, pen thickness varied."""
        ys, xs = np.nonzero(img > 30)
        img = img[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1] if ys.size else img
        h, w = img.shape
        s = height / h
        patch = cv2.resize(img, (max(1, round(w * s)), max(1, height)), interpolation=cv2.INTER_CUBIC)
        pen = self.rng.uniform(-1.0, 0.7)  # <0 thinner (ballpoint), >0 thicker (marker)
        r = int(round(abs(pen) * height / 50))
        if r >= 1:
            kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
            patch = cv2.dilate(patch, kernel) if pen > 0 else cv2.erode(patch, kernel)
        alpha = np.clip(patch.astype(np.float32) / 255.0 * 1.2, 0.0, 1.0)
        return alpha

    def make(self, n_digits: int | None = None) -> Frame:
        rng = self.rng
        W, H = self.size
        if self.layout == "closeup":  # the phone held close: 1-3 digits (one: 40-85% of the frame tall)
            n_digits = int(n_digits if n_digits is not None else rng.integers(1, 4))
            n_lines, per_line = 1, np.array([n_digits])
            h_max = min(0.85 * H, 0.75 * W / (0.8 * n_digits + 0.25))  # framed with some paper around
            dh = int(rng.uniform(0.47 * h_max, h_max))
        else:
            n_digits = int(n_digits if n_digits is not None else rng.integers(1, 11))
            # Layout: lines of digits, sized to fit the frame.
            n_lines = int(min(n_digits, rng.integers(1, 4)))
            per_line = np.full(n_lines, n_digits // n_lines)
            per_line[: n_digits % n_lines] += 1
            max_per_line = int(per_line.max())
            h_max = min(0.75 * H / (1.5 * n_lines), 0.8 * W / (0.95 * max_per_line + 0.3))
            dh = int(rng.uniform(max(22, 0.45 * h_max), max(23, h_max)))
        paper_name = list(self.papers)[rng.integers(len(self.papers))]
        paper = np.array(self.papers[paper_name], np.float32) * rng.uniform(0.85, 1.05)
        ink_name = list(INKS)[rng.integers(len(INKS))]
        ink = np.array(INKS[ink_name], np.float32)
        canvas = np.empty((H, W, 3), np.float32)
        canvas[:] = paper
        # Paper texture: fine grain plus slow blotches.
        canvas += rng.normal(0, 3.0, (H, W, 1)).astype(np.float32)
        blotch = cv2.resize(rng.normal(0, 6.0, (H // 40 + 2, W // 40 + 2)).astype(np.float32), (W, H),
                            interpolation=cv2.INTER_CUBIC)
        canvas += blotch[..., None]

        truths: list[Truth] = []
        alpha_layers = []
        total_h = n_lines * dh * 1.5
        y = rng.uniform(0.08 * H, max(0.08 * H + 1, H - total_h - 0.05 * H))
        for li, count in enumerate(per_line):
            pick = rng.integers(len(self.digits), size=count)
            if self.style == "pen":  # one pen per frame: a ballpoint (2-5% of the height) or a marker (5-12%)
                if li == 0 and self.layout == "closeup":  # close up, the same pens are thinner still
                    pen = dh * (rng.uniform(0.01, 0.03) if rng.random() < 0.5 else rng.uniform(0.03, 0.08))
                elif li == 0:
                    pen = dh * (rng.uniform(0.02, 0.05) if rng.random() < 0.5 else rng.uniform(0.05, 0.12))
                patches = [_trim(pen_digit(int(self.labels[i]), int(dh * rng.uniform(0.85, 1.1)), rng, pen))
                           for i in pick]
            else:
                patches = [self._digit_alpha(self.digits[i], int(dh * rng.uniform(0.85, 1.1))) for i in pick]
            gaps = [int(dh * rng.uniform(0.18, 0.45)) for _ in range(count - 1)]
            if self.touching:  # (drawn only when asked: the default frames stay as they were)
                gaps = [int(-dh * rng.uniform(0.0, 0.04)) if rng.random() < self.touching else g for g in gaps]
            width = sum(p.shape[1] for p in patches) + sum(gaps)
            x = rng.uniform(0.04 * W, max(0.04 * W + 1, W - width - 0.04 * W))
            for k, (i, patch) in enumerate(zip(pick, patches)):
                ph, pw = patch.shape
                yy = int(np.clip(y + rng.uniform(-0.08, 0.08) * dh, 0, H - ph))
                xx = int(np.clip(x, 0, W - pw))
                alpha_layers.append((int(self.labels[i]), li, patch, yy, xx))
                x += pw + (gaps[k] if k < len(gaps) else 0)
            y += dh * rng.uniform(1.35, 1.6)

        alpha = np.zeros((H, W), np.float32)
        for _, _, patch, yy, xx in alpha_layers:
            region = alpha[yy : yy + patch.shape[0], xx : xx + patch.shape[1]]
            np.maximum(region, patch, out=region)
        ink_strength = rng.uniform(0.75, 1.0)
        canvas = canvas * (1 - alpha[..., None] * ink_strength) + ink * (alpha[..., None] * ink_strength)

        # Camera: a slight perspective (a tilted sheet).
        jitter = 0.04 * min(W, H)
        src = np.float32([[0, 0], [W, 0], [W, H], [0, H]])
        dst = src + rng.uniform(-jitter, jitter, (4, 2)).astype(np.float32)
        if self.turn:  # the sheet (or the phone) turned by `turn` degrees either way, shrunk to stay in view
            a = np.radians(self.turn * (1 if rng.random() < 0.5 else -1))
            fit = 1.0 / (abs(np.cos(a)) + abs(np.sin(a)) * max(W / H, H / W))
            rot = np.float32([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]) * fit
            centre = np.float32([W / 2, H / 2])
            dst = ((dst - centre) @ rot.T + centre).astype(np.float32)
        M = cv2.getPerspectiveTransform(src, dst)
        border = tuple(float(v) for v in paper * 0.6)
        canvas = cv2.warpPerspective(canvas, M, (W, H), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                                     borderValue=border)
        layer = np.zeros((H, W), np.float32)  # one digit at a time: the truth box after the warp
        for label, li, patch, yy, xx in alpha_layers:
            layer[:] = 0
            layer[yy : yy + patch.shape[0], xx : xx + patch.shape[1]] = patch
            warped = cv2.warpPerspective(layer, M, (W, H), flags=cv2.INTER_LINEAR)
            ys, xs = np.nonzero(warped > 0.35)
            if ys.size == 0:
                continue
            truths.append(Truth(label, (int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1),
                                        int(ys.max() - ys.min() + 1)), li))

        # Light: a smooth gradient, and sometimes the phone's soft shadow.
        gx, gy = np.meshgrid(np.linspace(-1, 1, W, dtype=np.float32), np.linspace(-1, 1, H, dtype=np.float32))
        a, b = rng.uniform(-0.18, 0.18, 2)
        light = 1.0 + a * gx + b * gy
        if self.shadow == "hard" or rng.random() < 0.5:
            # Drawn at about 640 px and enlarged: its soft edge is a share of the view, not a number of
            # pixels (a 12 MP frame of the same scene has the same shadow, six times as many pixels wide).
            k = max(1, round(max(W, H) / 640))
            shadow = np.zeros((H // k, W // k), np.float32)
            cx, cy = rng.uniform(0, W), rng.uniform(0, H)
            axes = (int(rng.uniform(0.3, 0.8) * W) // k, int(rng.uniform(0.2, 0.6) * H) // k)
            cv2.ellipse(shadow, (int(cx) // k, int(cy) // k), axes, float(rng.uniform(0, 180)), 0, 360, 1.0, -1)
            edge, depth = SHADOWS[self.shadow]
            shadow = cv2.GaussianBlur(shadow, (0, 0), sigmaX=rng.uniform(*edge))
            if k > 1:
                shadow = cv2.resize(shadow, (W, H), interpolation=cv2.INTER_LINEAR)
            light *= 1.0 - rng.uniform(*depth) * shadow
        canvas *= light[..., None]

        # Sensor: blur, noise, JPEG.
        sigma = rng.uniform(0.0, 1.3)
        if sigma > 0.3:
            canvas = cv2.GaussianBlur(canvas, (0, 0), sigma)
        if self.motion:  # the sheet or the camera moving during the exposure: a streak `motion` px long at 640 px
            n = max(2, int(round(self.motion * max(W, H) / 640)))
            streak = np.zeros((n | 1, n | 1), np.float32)
            a, c = rng.uniform(0, np.pi), (n | 1) // 2
            cv2.line(streak, (int(round(c - np.cos(a) * n / 2)), int(round(c - np.sin(a) * n / 2))),
                     (int(round(c + np.cos(a) * n / 2)), int(round(c + np.sin(a) * n / 2))), 1.0, 1)
            canvas = cv2.filter2D(canvas, -1, streak / streak.sum())
        canvas += rng.normal(0, rng.uniform(1, 5), canvas.shape).astype(np.float32)
        img = np.clip(canvas, 0, 255).astype(np.uint8)
        ok, enc = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(45, 95))])
        img = cv2.imdecode(enc, cv2.IMREAD_COLOR)
        return Frame(img, truths, paper_name, ink_name)


def _trim(alpha: np.ndarray) -> np.ndarray:
    """An ink patch cut to its ink's box."""
    ys, xs = np.nonzero(alpha > 0.02)
    return alpha[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1] if ys.size else alpha


def best_match(box, boxes, used=()) -> int | None:
    """Index of the box in ``boxes`` that overlaps ``box`` most (IoU >= 0.5), skipping indices in
    ``used``; None when none does. How a drawn digit is paired with what the detector found."""
    best, best_iou = None, 0.5
    for j, b in enumerate(boxes):
        if j in used:
            continue
        v = iou(box, b)
        if v >= best_iou:
            best, best_iou = j, v
    return best


def score(frames_and_readings) -> dict:
    """Detection recall, digit accuracy and exact-text rate over (Frame, Reading) pairs."""
    n_true = n_found = n_right = 0
    multi = multi_exact = 0
    false_pos = 0
    for frame, reading in frames_and_readings:
        used = set()
        ds = reading.digits + reading.rejected
        boxes = [d.box for d in ds]
        for t in frame.digits:
            n_true += 1
            best = best_match(t.box, boxes, used)
            if best is not None:
                used.add(best)
                n_found += 1
                n_right += int(best < len(reading.digits) and ds[best].label == t.label)
        false_pos += len([j for j in range(len(reading.digits)) if j not in used])
        if len(frame.digits) > 1:
            multi += 1
            multi_exact += int(reading.text == frame.text)
    return {
        "digits": n_true,
        "recall": n_found / max(1, n_true),
        "accuracy": n_right / max(1, n_true),
        "accuracy_of_found": n_right / max(1, n_found),
        "false_positives": false_pos,
        "multi_digit_frames": multi,
        "exact_text": multi_exact / max(1, multi),
    }

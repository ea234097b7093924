"""Finding handwritten digits in a camera frame or a photo, and reading them.

The pipeline, each step chosen for real photos of digits on paper:

1. **Ink map.** The darkest colour channel, shrunk to a working size (on coloured paper,
   such as sticky notes, of the channels where the paper is bright: ``paper_channels``). The
   paper's local
   brightness is estimated by a morphological closing on a quarter-size
   copy (it erases strokes narrower than the kernel but keeps shadows,
   table edges and lighting gradients where they are), and ink is the
   *relative* darkness ``(paper - pixel) / paper``. That one ratio is what
   makes white, beige, grey, blue and green paper, a phone's shadow and
   uneven light look the same.
2. **Hysteresis threshold.** Weak ink pixels are kept only within a few
   pixels (``GROW``) of strong ones: the faint edges of thin ballpoint strokes
   survive; paper grain, JPEG noise and shadow edges next to a stroke do not.
3. **Grouping.** Each connected piece of ink is a candidate; pieces that sit
   above one another (the bar of a 5, a 4 drawn in two strokes), halves of a
   broken digit and the surviving fragments of a faint one are merged by
   their layout, never by dilating everything (that glues neighbours);
   specks, long lines, border-touching bands (paper edges, shadow bands, the
   table) and solid blobs are dropped by size, aspect and ink ratio (a
   narrow solid bar stays: that is a straight "1"). A piece wider than one
   digit may be digits written touching: it is also offered cut where the
   ink meets in a neck between two tall bodies, and the model's readings of
   the pieces and of the whole decide (``pick_split``).
4. **Crops.** Each digit's own ink (not its neighbours'), with its stroke
   width brought to MNIST's (about a tenth of the digit's longest side) so a thin
   pen and a thick marker look alike, goes through the one preprocessing
   contract (``edge.contract.normalize_crop``).
5. **Reading order.** Digits are grouped into lines by vertical overlap and
   read left to right; lines are joined with a space.

A candidate the model is unsure of (confidence under ``recheck_below``) is cut
again at four other stroke widths and the five readings averaged; one still
under ``min_confidence`` is reported as rejected instead of as a wrong digit.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import itertools
import math
import time
from dataclasses import dataclass, field

import cv2
import numpy as np

from . import contract


INK_KINDS = ("auto", "dark", "light")


@dataclass(frozen=True)
class DetectConfig:
    work_size: int = 960  # longest side the detector works at (bigger frames are shrunk)
    ink_low: float = 0.14  # relative darkness a pixel needs to count as ink...
    ink_high: float = 0.28  # ...and at least one pixel of each stroke must reach this
    min_height_frac: float = 0.025  # a digit is at least this fraction of the frame's shorter side...
    min_height_px: int = 8  # ...and at least this many working pixels tall
    max_height_frac: float = 0.98
    min_edge: float = 0.022  # ink whose edges rise more slowly (per px) is a soft shadow, not a stroke
    # Below this, a candidate is "rejected", not a digit. It was 0.4. The model is trained with label
    # smoothing, so a true but odd digit (an open 8, a 3 like a reversed C) can top its ten at
    # 0.28-0.40; such rejections failed 14 of seed 5's 53 failed frames (1,000 frames). On 13 sets of
    # edge.evaluate frames (4,150), 0.25 read 0.4-1.3 pp more frames exactly in 8 and none fewer in
    # any, for 0-2 more false digits a set (9 more, 65 -> 74, on pen digits streaked 9 px). Against
    # non-digits it was never much of a test: 91% of printed letters read at 0.4 or more, 99% at 0.25.
    min_confidence: float = 0.25
    # A candidate read with less confidence is cut again at other stroke widths and the readings
    # averaged (0: never). Stroke width is the crop's one guess: a broken or blotted stroke can
    # mislead it. On four runs (3,250 frames) this read 7 more frames exactly and none fewer.
    recheck_below: float = 0.6
    max_digits: int = 64
    # A box wider than this (width / height) is also tried cut into touching digits (0: never)...
    split_aspect: float = 0.7
    # ...and one wider than this is never a digit or a row of them.
    max_split_aspect: float = 4.5
    ink: str = "auto"  # "dark" ink on paper, "light" ink on a dark ground, or "auto": tell from the frame
    weak_channel: bool = False  # keep the paper's weak colour channel (see paper_channels): for comparison
    # A "7" narrower than this share of its height is most likely a 1 written with a flag: its 7 is
    # weighed down (see _discount_seven; 0: never).
    narrow_seven: float = 0.45
    # A candidate is dropped when more than this share of the pixels just outside its ink are as
    # dark as the ink beside them: it is a piece of a dark region (the table beside a turned sheet,
    # a shadow's tip), not ink on paper (see _dark_surround; 0: never, and no _rim_of_dark either).
    dark_surround: float = 0.2
    upright: bool = True  # turn each digit of a turned sheet (see skew) back upright before reading it
    # A frame whose kept ink's edges face one way more than this (see streak: 0 one way, 1 all
    # ways) is streaked by motion, and its faint ink is followed further along itself (0: never).
    streak: float = 0.35
    # A candidate under this share of the frame's median candidate height (with SMALL_MIN_DIGITS or
    # more to tell the median) is reported as rejected, not as a digit: a speck at a shadow's
    # edge, a fleck of the table or a fragment of a smeared stroke, not one of the sheet's digits
    # (0: never).
    small_digit: float = 0.5

    def __post_init__(self):
        if self.ink not in INK_KINDS:
            raise ValueError(f"ink must be one of {', '.join(INK_KINDS)}, not {self.ink!r}")
        if not 0.0 <= self.dark_surround <= 1.0:
            raise ValueError(f"dark_surround is a share from 0 (never) to 1, not {self.dark_surround}")
        if not 0.0 <= self.streak <= 1.0:
            raise ValueError(f"streak is an edge-direction ratio from 0 (never) to 1, not {self.streak}")
        if not 0.0 <= self.small_digit < 1.0:
            raise ValueError(f"small_digit is a share of the median height from 0 (never) to below 1, not {self.small_digit}")
        if not 0.0 <= self.narrow_seven < 1.0:
            raise ValueError(f"narrow_seven is a width-to-height ratio from 0 (never) to below 1, not {self.narrow_seven}")


@dataclass
class Digit:
    label: int
    confidence: float
    box: tuple[int, int, int, int]  # x, y, w, h in frame pixels
    probs: np.ndarray | None = field(default=None, repr=False, compare=False)  # all ten, for smoothing
    small: bool = False  # rejected as far smaller than the frame's other candidates (DetectConfig.small_digit)

    def to_dict(self) -> dict:
        return {"label": int(self.label), "confidence": round(float(self.confidence), 4),
                "box": [int(v) for v in self.box]}


@dataclass
class Reading:
    """What one frame says: accepted digits in reading order, the text, and the rejected candidates."""

    digits: list[Digit] = field(default_factory=list)
    rejected: list[Digit] = field(default_factory=list)
    text: str = ""
    lines: list[list[int]] = field(default_factory=list)  # indices into digits, per line
    detect_ms: float = 0.0
    classify_ms: float = 0.0

    def to_dict(self) -> dict:
        return {
            "text": self.text,
            "digits": [d.to_dict() for d in self.digits],
            "rejected": [d.to_dict() for d in self.rejected],
            "detect_ms": round(self.detect_ms, 3),
            "classify_ms": round(self.classify_ms, 3),
        }

    def scaled(self, factor: float) -> Reading:
        """The same reading with every box times ``factor``: the boxes of an image read at 1/``factor``
        of its file's size, put back in the file's pixels."""
        def up(d: Digit) -> Digit:
            return dataclasses.replace(d, box=tuple(int(round(v * factor)) for v in d.box))

        return dataclasses.replace(self, digits=[up(d) for d in self.digits], rejected=[up(d) for d in self.rejected])


@dataclass
class Split:
    """One way to cut a wide candidate into touching digits (see ``_splits``)."""

    parts: list[Candidate]
    neck: float  # 0-1: how clearly every cut falls between two digits' bodies


@dataclass
class Candidate:
    box: tuple[int, int, int, int]  # working-image pixels
    crop: np.ndarray  # uint8 28x28 contract image
    # What the crop was cut from (working ink map, kept ink, box), to cut it again: see recrops().
    source: tuple | None = field(default=None, repr=False, compare=False)
    # A box too wide for one digit may be digits written touching: ways to cut it into 2, 3, ...
    # digits (see _splits); the reader keeps the whole or one of them (see pick_split).
    splits: list[Split] = field(default_factory=list, repr=False, compare=False)
    turn: float = 0.0  # degrees the crop was turned back upright: the slope of the frame's lines (see skew)


# Cutting touching digits apart (see _splits and pick_split): a cut must be a neck at least this
# clear, and is kept when (the product of its pieces' confidences - the whole's) + WEIGHT * neck
# exceeds GAIN. Fitted on the 312 cuts offered in 1,000 seeded frames (MNIST and pen digits,
# touching and not): 172 of 207 touching groups cut into the right number of digits, none of 105
# single digits with a neck (nor any of the ~5,000 without one).
SPLIT_MIN_NECK = 0.1
SPLIT_NECK_WEIGHT = 0.25
SPLIT_GAIN = 0.15
# ...plus ASPECT_WEIGHT times how much wider than tall (ASPECT_FROM) the whole is: a digit is
# rarely wider than tall, and the model reads two touching digits as one at 0.9 and more ("41" as
# 4 at 0.98, "44" as 4 at 0.96). On the 834 cuts offered in nine sets of 250 frames (touching and
# not, MNIST and pen, hard shadows, sticky notes, three seeds), 14 more touching groups are cut
# right and no single digit is cut; from 0.8 of the height it cut 19 more groups but 5 single
# wide digits too (a 6 into "16", a 4 into "11").
SPLIT_ASPECT_WEIGHT = 0.3
SPLIT_ASPECT_FROM = 1.0
# Besides evenly spaced cuts, a cut is tried at the deepest point of each neck at least this clear
# (the deepest SPLIT_MAX_NECKS of them): a 1 touching a 0 puts their neck far from the middle. At
# 0.1 an open 0 was cut into "61"; at 0.3 none of 2,000 frames of untouching digits changed.
SPLIT_ANCHOR_NECK = 0.3
SPLIT_MAX_NECKS = 4
# A box narrower than DetectConfig.split_aspect, from SPLIT_NARROW_FROM of its height wide, is
# tried cut too, but only at a neck clearer than SPLIT_NARROW_NECK: two 1s written touching are
# 0.5-0.7 as wide as tall (touching pen-drawn frames 87.0 -> 88.3% exact, none fewer in 18 sets of
# 250 frames; all cuts from 0.5 cut single digits too: turned, hard-shadow and seed-99 frames lost
# one each).
SPLIT_NARROW_FROM = 0.5
SPLIT_NARROW_NECK = 0.6
# Each piece of a cut must be at least SPLIT_SHORT of the whole's height and at most SPLIT_WIDE
# times as wide as it is tall (an MNIST 5 with a long bar is 1.2-1.45: at 1.2 the cut failed).
SPLIT_SHORT = 0.7
SPLIT_WIDE = 1.5

RECHECK_STROKES = (0.06, 0.08, 0.12, 0.14)  # stroke widths (of the longest side) a recheck tries


def recrops(cand: Candidate) -> list[np.ndarray]:
    """The candidate's crop cut again at each of ``RECHECK_STROKES`` (its own crop where that fails)."""
    if cand.source is None:
        return [cand.crop] * len(RECHECK_STROKES)
    ink, mask, box = cand.source
    out = []
    for stroke in RECHECK_STROKES:
        crop = _crop(ink, mask, box, stroke=stroke, turn=cand.turn)
        out.append(cand.crop if crop is None else crop)
    return out


def as_image(frame: np.ndarray) -> np.ndarray:
    """Any image (H,W), (H,W,1/3/4), any numeric dtype -> uint8 (H,W) or (H,W,3/4), values scaled
    to 0-255 (floats in [0, 1] count as that range; NaN and inf as 0). Raises ValueError if it is
    not an image."""
    a = np.asarray(frame)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (3, 4)) or a.shape[0] < 1 or a.shape[1] < 1:
        raise ValueError(f"not an image: array of shape {a.shape}")
    if a.dtype != np.uint8:
        a = a.astype(np.float64)
        a = np.nan_to_num(a, nan=0.0, posinf=0.0, neginf=0.0)
        if a.dtype.kind == "f" and a.max(initial=0) <= 1.0 and a.min(initial=0) >= 0.0:
            a = a * 255.0
        elif np.issubdtype(np.asarray(frame).dtype, np.integer) and np.asarray(frame).dtype.itemsize > 1:
            a = a / max(1.0, float(np.iinfo(np.asarray(frame).dtype).max) / 255.0)
        a = np.clip(a, 0, 255).astype(np.uint8)
    return a


def to_gray(frame: np.ndarray, light_ink: bool = False, channels: tuple[int, ...] | None = None) -> np.ndarray:
    """Any image (see ``as_image``) -> uint8 single channel where ink is dark.

    ``light_ink``: the ink is lighter than its background (chalk on a board, a white-on-black
    digit as MNIST stores them); the image is turned so that it reads as dark ink on paper.
    ``channels``: the colour channels to read (BGR indices, from ``paper_channels``; None: all).
    Raises ValueError if it is not an image."""
    a = as_image(frame)
    return _gray(_planes(a) if a.ndim == 3 else a, light_ink, channels)


def _planes(img: np.ndarray) -> list[np.ndarray]:
    """A colour image's blue, green and red planes, each contiguous (alpha is left out)."""
    return list(cv2.split(np.ascontiguousarray(img)))[:3]


def _gray(image: np.ndarray | list[np.ndarray], light_ink: bool, channels: tuple[int, ...] | None) -> np.ndarray:
    """``to_gray`` of a grey uint8 image, or of a colour one given as its ``_planes``."""
    if isinstance(image, list):
        # The darkest channel, not luma: red ink on beige or blue ink on blue paper
        # keeps its contrast there, and dark ink stays dark in every channel (for light ink, the
        # lightest channel, turned).
        pick = cv2.max if light_ink else cv2.min
        a = functools.reduce(pick, [image[c] for c in (channels or (0, 1, 2))])
        return cv2.bitwise_not(a) if light_ink else a
    a = np.ascontiguousarray(image)
    return cv2.bitwise_not(a) if light_ink else a


def sample_step(shape: tuple[int, ...]) -> int:
    """The stride that samples about 10,000 pixels of an image: enough to tell its paper and ink."""
    return max(1, int(math.sqrt(shape[0] * shape[1] / 10_000)))


WEAK_CHANNEL = 0.7  # a colour channel where the paper is darker than this share of its brightest is not read


def paper_channels(sample: np.ndarray) -> tuple[int, ...] | None:
    """The colour channels (BGR indices) where the paper is bright, or None for all of them (white,
    grey and pale paper; an image with one channel). ``sample``: uint8 pixels of the frame
    (``as_image``'s output, or a strided view of it: about 10,000 are plenty).

    On coloured paper the darkest channel is the paper's weak one: orange paper's blue channel
    is about 80 of 255, and blue ink or a pencil is no darker there, so the ink vanished (none of
    27 frames of orange sticky notes with blue ink or pencil read right) and the paper's grain,
    relative to so dark a channel, came out as ink (334 false digits on 250 frames of sticky
    notes). A channel where the paper (the median of the channel) is under ``WEAK_CHANNEL`` of
    its brightest channel is therefore not read: ink of any colour is darker, relative to the
    paper, in the paper's own bright channels (red ink on blue paper too, whose red channel is
    0.67 of its blue: the ink was lost there in 1 of 250 pen-drawn frames)."""
    if sample.ndim != 3 or sample.dtype != np.uint8:
        return None
    return _bright_planes(_planes(sample))


def _bright_planes(planes: list[np.ndarray]) -> tuple[int, ...] | None:
    """``paper_channels`` of a sample given as its ``_planes``."""
    k = planes[0].size // 2
    level = []  # each channel's median, from its histogram (a tenth of np.partition's work here)
    for p in planes:
        cum = np.add.accumulate(cv2.calcHist([p], [0], None, [256], [0, 256]).ravel())  # (np.cumsum: 3 us more)
        level.append(int(np.searchsorted(cum, k, side="right")))
    keep = tuple(c for c in range(3) if level[c] >= WEAK_CHANNEL * max(level))
    return None if len(keep) == 3 else keep


def light_ink(gray: np.ndarray) -> bool:
    """Whether a frame (``to_gray``'s output) holds light ink on a dark ground rather than dark ink
    on paper: a dark, even ground (its median under 100, hardly anything darker than it) with a
    thin tail of much lighter pixels, which keep off the frame's edges. A dim photo of paper fails
    the test: its ink is a dark tail under the paper's median; so does a sheet mostly in a deep
    shadow: its light pixels are the paper around the shadow, out to the frame's edges (a phone
    between a lamp and the sheet: 3 of 200 frames with hard shadows were taken for light ink)."""
    step = sample_step(gray.shape)
    g = gray[::step, ::step]
    hist = cv2.calcHist([np.ascontiguousarray(g)], [0], None, [256], [0, 256]).ravel()
    cum = np.add.accumulate(hist) / max(1.0, float(g.size))
    lo, med, hi = (int(np.searchsorted(cum, q)) for q in (0.005, 0.5, 0.995))
    if med >= 100 or hi - med < 80:
        return False
    light = med + (hi - med) // 2
    bright = 1.0 - cum[min(255, light)]
    if not (med - lo < 0.25 * (hi - med) and bright < 0.4):
        return False
    edges = np.concatenate([g[0], g[-1], g[:, 0], g[:, -1]])
    return np.count_nonzero(edges > light) <= LIGHT_EDGE * edges.size


LIGHT_EDGE = 0.05  # light ink keeps off the frame's edges: at most this share of them is light


HARD_EDGE_REACH = 3  # small (quarter-size) pixels: how far past a hard edge the estimate runs
HARD_EDGE_SLACK = 0.06  # a fall of the paper's estimate under this share of it is light, not an edge
LOCAL_PAPER = 0.04  # near a hard edge, the paper is also read from a closing this share of the shorter side wide


@functools.lru_cache(maxsize=8)
def _filled(shape: tuple[int, ...], value: int) -> np.ndarray:
    """A read-only uint8 array of ``shape`` holding ``value`` (made once per frame size)."""
    a = np.full(shape, value, np.uint8)
    a.setflags(write=False)
    return a


@functools.lru_cache(maxsize=8)
def _square(k: int) -> np.ndarray:
    """A k x k square structuring element (made once per size)."""
    return np.ones((k, k), np.uint8)


def _quarter(gray: np.ndarray) -> np.ndarray:
    """``gray`` at a quarter of its size, in two halvings: OpenCV has a vectorised path for exactly
    half (0.04 ms on 640x480), not for a quarter (0.26 ms); the two differ by at most one grey level."""
    h, w = gray.shape
    half = cv2.resize(gray, (max(1, w // 2), max(1, h // 2)), interpolation=cv2.INTER_AREA)
    return cv2.resize(half, (max(1, w // 4), max(1, h // 4)), interpolation=cv2.INTER_AREA)


def _enlarged_rows(small: np.ndarray, size: tuple[int, int], y0: int, y1: int) -> np.ndarray:
    """Rows ``y0``..``y1`` of ``small`` enlarged to ``size`` (w, h) by INTER_LINEAR. When h is exactly
    4 times ``small``'s height, only the band of small rows those read (one more each side, so the
    band's own edge is never read) is enlarged: the same bytes as enlarging all of it, in the
    share of the time the band is of the frame."""
    w, h = size
    sh = small.shape[0]
    if h != 4 * sh:
        return cv2.resize(small, size, interpolation=cv2.INTER_LINEAR)[y0:y1]
    s0, s1 = max(0, y0 // 4 - 1), min(sh, (y1 - 1) // 4 + 2)
    band = cv2.resize(small[s0:s1], (w, 4 * (s1 - s0)), interpolation=cv2.INTER_LINEAR)
    return band[y0 - 4 * s0 : y1 - 4 * s0]


def ink_map(gray: np.ndarray, stroke_hint: float | None = None) -> np.ndarray:
    """Relative darkness in [0, 255] (uint8): 0 is paper, 255 is black on the brightest paper."""
    h, w = gray.shape
    small = _quarter(gray)
    # Kernel wider than any stroke (a fifth of the shorter side), narrower than a shadow.
    k = max(3, int(min(small.shape) * 0.2) | 1)
    paper = cv2.morphologyEx(small, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_RECT, (k, k)))
    paper = cv2.blur(paper, (3, 3))
    # A hard shadow's edge (direct sun, a small lamp): the estimate above runs a few pixels past it
    # into the shadow (the closing cannot follow a curved edge, the blur and the enlarging spread
    # it), and there the paper looks darker than its estimate, so the edge came out as a line of
    # ink ("1"s, strokes joined to it). Where the estimate falls steeply, by more than
    # HARD_EDGE_SLACK of itself within HARD_EDGE_REACH small pixels, it is also allowed down to
    # its darkest neighbour's level there: a pixel no brighter than that is the shadow's paper.
    fall = cv2.subtract(cv2.subtract(paper, cv2.erode(paper, _square(2 * HARD_EDGE_REACH + 1))),
                        cv2.convertScaleAbs(paper, alpha=HARD_EDGE_SLACK))
    # That let a pencil line on the lit side, no darker than the shadow's paper, down to paper too:
    # a digit crossing the edge came out in two pieces (half the false digits of 200 frames with
    # hard shadows). A closing LOCAL_PAPER of the frame wide fills such lines but follows the
    # edge, so where there is a steep edge the paper may also be what it says (the brighter of
    # the two: a stroke wider than that closing is let down as before). Hard shadows: 85.7 ->
    # 91.2% of frames exactly (28 -> 14 false digits), pen-drawn 81.8 -> 89.6%; 0.2-0.4 ms, and
    # only on frames with a steep edge (a shadow's, the sheet's against the table).
    #
    # The paper is then max(min(estimate, max(let down, grey, closing)), grey): as lo <= paper (and
    # so lo <= paper once enlarged: the same weights, rounded alike), that is max(lo, min(paper,
    # closing), grey), and with no steep edge (lo == paper) max(paper, grey): one enlarging and
    # two full-size steps fewer, the same bytes. The last max is not made either: where the grey
    # is over the estimate, the darkness below (the estimate less the grey, floored at 0) is 0
    # whatever it is divided by, and elsewhere the max is the estimate.
    up = functools.partial(cv2.resize, dsize=(w, h), interpolation=cv2.INTER_LINEAR)
    if cv2.countNonZero(fall) == 0:
        paper = up(paper)
    else:
        lo = up(cv2.subtract(paper, fall))
        if LOCAL_PAPER:
            k = max(5, int(min(h, w) * LOCAL_PAPER) | 1)
            # lo is up(paper) except within a small pixel of the fall (what the enlarging reads), and
            # there min(up(paper), closing) <= up(paper) == lo changes nothing: only the fall's box
            # (in full-size pixels, a small pixel wider all round) is closed, from gray k pixels
            # wider still (what a closing's dilation then erosion reach). The same bytes, and on a
            # frame where the fall is a corner or a few specks, not 0.5 ms of closing the frame.
            fx, fy, fw, fh = cv2.boundingRect(fall)
            sy, sx = h / fall.shape[0], w / fall.shape[1]
            y0, y1 = max(0, int((fy - 2) * sy)), min(h, int(math.ceil((fy + fh + 2) * sy)))
            x0, x1 = max(0, int((fx - 2) * sx)), min(w, int(math.ceil((fx + fw + 2) * sx)))
            cy0, cy1, cx0, cx1 = max(0, y0 - k), min(h, y1 + k), max(0, x0 - k), min(w, x1 + k)
            closed = cv2.morphologyEx(gray[cy0:cy1, cx0:cx1], cv2.MORPH_CLOSE, _square(k))
            # (numpy on these views: cv2.min and cv2.max take 2 ms for what numpy does in 0.03 when an
            # argument is not contiguous.)
            part = np.minimum(_enlarged_rows(paper, (w, h), y0, y1)[:, x0:x1], closed[y0 - cy0 : y1 - cy0, x0 - cx0 : x1 - cx0])
            np.maximum(lo[y0:y1, x0:x1], part, out=lo[y0:y1, x0:x1])
        paper = lo
    dark = cv2.subtract(paper, gray)  # (where the estimate is too dark, it is paper after all: 0)
    # ratio = dark / paper, with the paper floored so noise in near-black areas is not "ink".
    ratio = cv2.divide(dark, cv2.max(paper, _filled(paper.shape, 48)), scale=255)  # (a scalar 48 is 20x slower)
    return cv2.GaussianBlur(ratio, (3, 3), 0)


def _percentile(values: list[int], q: float) -> float:
    """``np.percentile(values, q)`` of a short list of integers, in pure Python: the same value
    (linear interpolation), in 2 us rather than 50-90 (numpy's cost for one call on a list)."""
    v = sorted(values)
    pos = (len(v) - 1) * (q / 100.0)
    k = int(pos)
    if k + 1 >= len(v):
        return float(v[-1])
    t = pos - k
    a, b = v[k], v[k + 1]
    return float(b - (b - a) * (1 - t) if t >= 0.5 else a + (b - a) * t)  # numpy's own rounding


def _digit_shaped(boxes: list[list[int]], cap: float) -> list[tuple[int, int]]:
    """The pairs (i < j, in row-major order) of boxes that together make one digit's shape: no
    taller than 2.2 times the taller one nor than ``cap``, and narrower than 1.5 times as tall."""
    b = np.array(boxes)
    x0, y0, h = b[:, 0], b[:, 1], b[:, 3]
    x1, y1 = x0 + b[:, 2], y0 + h
    merged_w = np.maximum(x1[:, None], x1) - np.minimum(x0[:, None], x0)
    merged_h = np.maximum(y1[:, None], y1) - np.minimum(y0[:, None], y0)
    ok = (merged_h < np.minimum(2.2 * np.maximum(h[:, None], h), cap)) & (merged_w < 1.5 * merged_h)
    i, j = np.nonzero(np.triu(ok, 1))
    return list(zip(i.tolist(), j.tolist()))


def _merge_pieces(boxes: list[list[int]]) -> list[list[int]]:
    """Merge boxes that belong to one digit: stacked above one another with enough horizontal overlap."""
    boxes = [list(b) for b in boxes]
    if not boxes:
        return boxes
    # No merge may grow taller than about two typical pieces: merges must not chain
    # across a whole block of digits.
    ref = _percentile([b[3] for b in boxes], 75)  # a typical digit's height in this frame
    cap = 2.2 * ref
    changed = True
    while changed:
        changed = False
        # Every merge must give one digit's shape: that is tested first, for all pairs at once (it
        # rules out most: digits side by side, other lines), and the rules below are worked out for
        # the pairs left, in the same order as pair by pair.
        for i, j in _digit_shaped(boxes, cap):
            a, b = boxes[i], boxes[j]
            ax0, ay0, ax1, ay1 = a[0], a[1], a[0] + a[2], a[1] + a[3]
            bx0, by0, bx1, by1 = b[0], b[1], b[0] + b[2], b[1] + b[3]
            tall = max(a[3], b[3])
            merged_w, merged_h = max(ax1, bx1) - min(ax0, bx0), max(ay1, by1) - min(ay0, by0)
            xover = min(ax1, bx1) - max(ax0, bx0)
            gap = max(ay0, by0) - min(ay1, by1)  # negative: they overlap vertically
            small, big = (a, b) if a[2] * a[3] < b[2] * b[3] else (b, a)
            contained = (small[0] >= big[0] - 0.3 * big[2] and small[0] + small[2] <= big[0] + 1.3 * big[2]
                         and small[1] >= big[1] - 0.35 * big[3] and small[1] + small[3] <= big[1] + 1.35 * big[3])
            stacked = xover > 0.5 * min(a[2], b[2]) and gap < 0.2 * tall
            # A 5's flying bar: short, at the body's top, starting over or just right of it.
            bar = (small[3] < 0.5 * big[3] and small[1] + small[3] <= big[1] + 0.4 * big[3]
                   and small[1] >= big[1] - 0.5 * big[3] and big[0] - 0.2 * big[2] <= small[0]
                   <= big[0] + 1.25 * big[2])
            # A piece (a 5's bar, half a 4) is smaller than the body and sits over it.
            piece = small[2] * small[3] < 0.8 * big[2] * big[3] and small[3] < 0.8 * big[3]
            # Two halves of one broken digit: together they are no taller than a digit and
            # narrow as one; two digits side by side are wide, two lines are too tall. A speck
            # is no half (one speck between two lines once chained them into one block).
            halves = (xover > 0.2 * min(a[2], b[2]) and gap < 0.3 * tall and merged_h < 1.9 * tall
                      and merged_w < 0.9 * merged_h and min(a[3], b[3]) >= 0.3 * tall)
            # A short stroke fragment (a broken-off end) right next to a digit's body.
            dx = max(0, max(ax0, bx0) - min(ax1, bx1))
            frag = (small[3] < 0.45 * big[3] and small[2] * small[3] < 0.2 * big[2] * big[3]
                    and max(dx, gap) < 0.12 * big[3])
            # A digit broken into two pieces of about the same size, one over the other (a 5's
            # top and bowl): each piece is short for this frame, together they are one digit tall.
            # Two digits on adjacent lines are each a digit tall, so they are never both short.
            split = (stacked and gap < 0.15 * tall and max(a[3], b[3]) <= 0.75 * ref
                     and merged_h <= 1.25 * ref)
            # Two fragments of one faint digit (a 5's bar and part of its bowl): neither is a
            # digit's height, they are close, and together they fit in one digit's box.
            frags = (max(a[3], b[3]) <= 0.75 * ref and merged_h <= 1.25 * ref and merged_w <= 1.2 * ref
                     and max(dx, gap) <= 0.3 * ref)
            if (piece and (stacked or contained or bar or halves or frag)) or split or frags:
                x0, y0 = min(ax0, bx0), min(ay0, by0)
                boxes[i] = [x0, y0, max(ax1, bx1) - x0, max(ay1, by1) - y0]
                del boxes[j]
                changed = True
                break
    return boxes


GROW = 3  # weak ink counts within this many working pixels of strong ink
STROKE = 0.1  # MNIST's stroke width as a fraction of the digit's longest side


_CCL = getattr(cv2, "CCL_BBDT", None)


def _components(binary: np.ndarray):
    """8-connected components with stats. BBDT computes the stats about twice as fast as
    OpenCV's default (Spaghetti) here: 0.8 vs 1.8 ms on a 640x480 frame."""
    if _CCL is not None:
        n, labels, stats, _ = cv2.connectedComponentsWithStatsWithAlgorithm(binary, 8, cv2.CV_32S, _CCL)
    else:
        n, labels, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    return n, labels, stats


STREAK_INK = 1.25  # streak measures the edges of ink this many times the strong-ink level
STREAK_MIN_PX = 50  # fewer pixels than this near such ink (half size): too little to tell, not streaked
STREAK_REACH = 20 / 640  # on a streaked frame, weak ink is followed this far (share of the longer side)


def streak(ink: np.ndarray, mask: np.ndarray, level: int) -> float:
    """How one-directional the edges of the kept ink are: the smaller eigenvalue of their gradients'
    structure tensor over the larger, 0 (every edge faces one way) to 1 (all ways alike). ``ink``:
    ``ink_map``'s output; ``mask``: the ink kept as digits' pieces (0/255, ``_pieces``), both cut
    to the pieces' box.

    ``level``: the edges measured are those within a pixel (half size) of kept ink this dark.

    A frame streaked by motion (the hand or the camera moving during the exposure) keeps the
    strokes that run along the motion and smears those across it over the streak's length: a thin
    pen line 9 px streaked fades to a fifth of its darkness, under the strong-ink level, so only
    the strokes along the motion were left, each read as a "1". Handwriting's edges face every way:
    on 2,250 still frames of nine kinds (``edge.evaluate`` sets) the median was 0.62 and 82 (3.6%)
    measured under 0.35, the default ``DetectConfig.streak``; following their faint ink further
    changed one of those readings (a hard shadow's; under 0.45, 204 frames, it also cost two MNIST
    frames with hard shadows). Only the kept ink is measured: with the paper's and the table's edges
    a still frame of pencil on grey paper measured 0.30. Of 250 pen-drawn frames streaked 9 px, 144
    measured under 0.35. On such a frame, weak ink is followed along itself from
    strong ink (``STREAK_REACH``) instead of only ``GROW`` pixels round it. Measured at half size on
    the pieces' box: 0.05-0.1 ms on a 10-digit frame.
    Returns 1.0 (not streaked) when too little ink is kept to tell."""
    h, w = ink.shape
    h, w = h - h % 2, w - w % 2  # even: OpenCV's fast path for exactly half
    if w < 4 or h < 4:
        return 1.0
    size = (w // 2, h // 2)
    box = ink[:h, :w]
    half = cv2.resize(box, size, interpolation=cv2.INTER_AREA)
    kept = cv2.resize(cv2.bitwise_and(box, mask[:h, :w]), size, interpolation=cv2.INTER_AREA)
    near = cv2.threshold(cv2.dilate(kept, _square(3)), level - 1, 1, cv2.THRESH_BINARY)[1].view(bool)
    gx = cv2.Sobel(half, cv2.CV_32F, 1, 0)[near]
    if gx.size < STREAK_MIN_PX:
        return 1.0
    gy = cv2.Sobel(half, cv2.CV_32F, 0, 1)[near]
    a, b, c = float(gx @ gx), float(gy @ gy), float(gx @ gy)
    mean, spread = (a + b) / 2, math.sqrt(max(0.0, ((a - b) / 2) ** 2 + c * c))
    return (mean - spread) / max(mean + spread, 1e-9)


# Components are found from their outlines (cv2.findContours) when the ink has at most this many
# horizontal runs, else by connectedComponentsWithStats. Outlines cost ~9 us each: on a frame of
# digits (15-30 outlines; at most 2,927 runs in 165 synthetic frames of eleven kinds and sizes) they
# take 0.15-0.25 ms against 0.9-1.0 ms, whose statistics pass visits every pixel of a frame that
# is mostly paper; on noise or a texture (thousands of specks or holes: 5,000 outlines from 2%
# speckle, 50,000 from fine stripes) 45-460 ms against 1-2 ms. Outlines are at most twice the runs.
OUTLINE_RUNS = 2500
ALONE_MAX = 200  # up to this many outlines, each component's box is tested against all the others'


def _runs(binary: np.ndarray) -> int:
    """The horizontal runs of ink in a 0/1 image (each begins where a pixel is set and its left
    neighbour is not)."""
    return cv2.countNonZero(cv2.compare(binary[:, 1:], binary[:, :-1], cv2.CMP_GT)) + cv2.countNonZero(binary[:, 0])


class _Parts:
    """The 8-connected components of a 0/1 image: ``boxes`` (N x 4 int array: x, y, w, h) and, on
    demand, each one's own pixels in its box (``own``). The same components, boxes and pixels
    whichever way they are found (see ``OUTLINE_RUNS``); from outlines, in the raster order of
    their first pixels (connectedComponents numbers them by 2x2 blocks, so two that begin in the
    same pair of rows may come in the other order: on 400 frames of ten kinds the candidates were
    the same as sets, and on 600 the readings)."""

    def __init__(self, binary: np.ndarray):
        self.binary = binary
        self._labels = self._contours = self._alone = None
        if _runs(binary) > OUTLINE_RUNS:
            n, self._labels, stats = _components(binary)
            self.boxes = stats[1:, :4]
            return
        contours, hier = cv2.findContours(binary, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)
        self._contours, self._links, outer = contours, [], []
        if hier is not None:
            self._links = links = hier[0].tolist()  # per contour: next, previous, first child, parent
            for i, link in enumerate(links):
                depth, p = 0, link[3]
                while p >= 0:
                    depth, p = depth + 1, links[p][3]
                if depth % 2 == 0:  # an outer border (odd depths are holes' borders)
                    x, y = contours[i][0][0]  # where the trace began: the component's first pixel
                    outer.append((int(y), int(x), i))
        outer.sort()
        self._index = [i for _, _, i in outer]
        self.boxes = np.array([cv2.boundingRect(contours[i]) for i in self._index], np.int32).reshape(-1, 4)
        # A component whose box meets no other's owns all the ink in its box: its pixels are then
        # that part of the image as it is (most digits: 12 us a component less than cutting them
        # out). Worked out for all at once when there are few (a frame of digits has 15-30).
        if len(self.boxes) <= ALONE_MAX:
            x0, y0, w, h = self.boxes.T
            x1, y1 = x0 + w, y0 + h
            meet = ((x0[:, None] < x1) & (x0 < x1[:, None])) & ((y0[:, None] < y1) & (y0 < y1[:, None]))
            self._alone = np.count_nonzero(meet, axis=1) == 1  # (each box meets itself)

    def own(self, k: int) -> np.ndarray:
        """Component ``k``'s own pixels (0/1 uint8) in its box (read-only)."""
        x, y, w, h = self.boxes[k].tolist()
        if self._alone is not None and self._alone[k]:
            px = self.binary[y : y + h, x : x + w]
            px.flags.writeable = False
            return px
        if self._labels is not None:
            return (self._labels[y : y + h, x : x + w] == k + 1).view(np.uint8)
        # Inside its outline, ink, and not inside the outline of a component in one of its holes
        # (a speck in a 0's loop). One contour a call: given the whole list, drawContours converts
        # all of it every time (seconds, on noise).
        i, links = self._index[k], self._links
        canvas = np.zeros((h, w), np.uint8)
        cv2.drawContours(canvas, [self._contours[i]], 0, 1, cv2.FILLED, offset=(-x, -y))
        nested = []
        hole = links[i][2]
        while hole >= 0:
            inner = links[hole][2]
            while inner >= 0:
                nested.append(self._contours[inner])
                inner = links[inner][0]
            hole = links[hole][0]
        if nested:  # (disjoint outlines: filled together, their union)
            cv2.drawContours(canvas, nested, -1, 0, cv2.FILLED, offset=(-x, -y))
        return canvas & self.binary[y : y + h, x : x + w]


def _pieces(low: np.ndarray, strong_px: np.ndarray, cfg: DetectConfig, min_h: float
            ) -> tuple[np.ndarray, list[list[int]]] | None:
    """The ink (``low``, 0/1) that may be digits: its components holding strong ink (``strong_px``,
    0/1), less specks, paper edges, shadow bands and ruling. Returns (mask of the kept ink as 0/255,
    the boxes of its pieces merged into digits), or None when nothing is left."""
    h, w = low.shape
    parts = _Parts(low)
    if not len(parts.boxes):
        return None
    # Ruled or squared paper: its lines join every digit they cross into one frame-wide piece,
    # which would be dropped whole. Only then (a piece over half the frame wide or tall, mostly
    # empty, and mostly away from the frame's border: the L of a table edge along two sides is
    # not ruling) are the lines taken out and the components found again.
    b = max(2, int(0.06 * min(h, w)))
    own = {}  # component -> its pixels, cut out when first needed
    bx, by, bw, bh = parts.boxes.T
    for k in np.flatnonzero((bw > 0.5 * w) | (bh > 0.5 * h)):
        x, y, cw, ch = parts.boxes[k].tolist()
        own[k] = px = parts.own(k)
        area = np.count_nonzero(px)
        if area < 0.5 * cw * ch:
            # Its pixels among every 4th row and column of the frame, b px in from its edges.
            r0, c0 = b + -(-max(0, y - b) // 4) * 4, b + -(-max(0, x - b) // 4) * 4
            inner = np.count_nonzero(px[r0 - y : max(r0, min(h - b, y + ch)) - y : 4,
                                        c0 - x : max(c0, min(w - b, x + cw)) - x : 4])
            if inner * 16 > 0.5 * area:
                low = np.ascontiguousarray(_remove_rules(np.ascontiguousarray(_remove_rules(low).T)).T)
                parts, own = _Parts(low), {}
                bx, by, bw, bh = parts.boxes.T
                break
    # Drop specks (anything much smaller than a digit's stroke piece); paper edges, the table and
    # shadow bands (big things along the frame's border); and what holds no strong ink. The boxes
    # say most of it at once; each component left is cut out to be weighed, and drawn into the mask.
    # A close-up digit may touch an edge; a band spanning the frame, a sliver, a nearly empty
    # diagonal or a small cut-off fragment is not a digit. A digit touches the frame's edge with a
    # stroke end; an edge band lies along it.
    touches = (bx <= 1) | (by <= 1) | (bx + bw >= w - 1) | (by + bh >= h - 1)
    aspect = bw / np.maximum(bh, 1)
    left = (np.maximum(bw, bh) >= 0.3 * min_h) & (bh <= cfg.max_height_frac * h) & ~(
        touches & ((bw > 0.9 * w) | (bh > 0.9 * h) | (aspect < 0.25) | (aspect > 4) | ((bh < 0.2 * h) & (bw < 0.2 * w))))
    least = max(4, 0.02 * min_h * min_h)
    mask = np.zeros_like(low)
    kept = []
    for k in np.flatnonzero(left):
        x, y, cw, ch = box = tuple(parts.boxes[k].tolist())
        px = own[k] if k in own else parts.own(k)
        area = np.count_nonzero(px)
        if area < least:
            continue
        if touches[k]:
            contact = ((np.count_nonzero(px[0]) if y == 0 else 0) + (np.count_nonzero(px[-1]) if y + ch == h else 0)
                       + (np.count_nonzero(px[:, 0]) if x == 0 else 0)
                       + (np.count_nonzero(px[:, -1]) if x + cw == w else 0))
            # (a diagonal paper edge is a big, nearly empty box)
            if area / max(cw * ch, 1) < 0.12 or contact > 0.3 * max(cw, ch):
                continue
        # (ANDs and a maximum, not indexing by px: 7 us a component less)
        if not cv2.countNonZero(strong_px[y : y + ch, x : x + cw] & px):
            continue  # weak ink only: near a stroke, not one
        np.maximum(mask[y : y + ch, x : x + cw], px * np.uint8(255), out=mask[y : y + ch, x : x + cw])
        kept.append(box)
    if not kept:
        return None
    # Components are not dilated together (that glued neighbouring digits); the
    # pieces of one digit are merged by _merge_pieces, from their layout.
    if len(kept) > 2 * cfg.max_digits:
        # Hundreds of pieces (the broken lines of squared paper): merging compares every pair,
        # ~0.3 s for 470 pieces, so only the largest are digits' pieces worth merging.
        kept = sorted(kept, key=lambda bx_: -(bx_[2] * bx_[3]))[: 2 * cfg.max_digits]
    return mask, _merge_pieces([list(bx_) for bx_ in kept])


# OpenCV's IPP paths (x86 builds) set up per call: 10-30 us each for a histogram or a morphology on
# a crop, where OpenCV's own code takes 3-8, and on a frame of digits its own contour tracing, closing
# and dilation were faster too (cv2.split of a colour frame as fast as IPP's extractChannel, three
# times). So detection turns IPP off for its own calls (the switch is per thread) and puts it back
# as it was: the same bytes on 300 frames of ten kinds, and a 10-digit frame 0.2-0.3 ms faster.
_IPP = getattr(cv2, "ipp", None)


@contextlib.contextmanager
def _without_ipp():
    """OpenCV's IPP paths off in this thread, and back as they were after."""
    if _IPP is None:
        yield
        return
    ipp = _IPP.useIPP()
    _IPP.setUseIPP(False)
    try:
        yield
    finally:
        _IPP.setUseIPP(ipp)


def find_candidates(frame: np.ndarray, cfg: DetectConfig = DetectConfig()) -> tuple[list[Candidate], float]:
    """Digit-like ink blobs in a frame, as contract-ready 28x28 crops. Returns (candidates, frame->work scale)."""
    with _without_ipp():
        return _find_candidates(frame, cfg)


def _find_candidates(frame: np.ndarray, cfg: DetectConfig) -> tuple[list[Candidate], float]:
    """find_candidates, with OpenCV's IPP off."""
    img = as_image(frame)
    # Which way the ink goes and the paper's colour, both from the same ~10,000 pixels (light_ink
    # samples a grey frame with this very stride). A colour frame is split into its planes first and
    # they are sampled, not the frame: a sample of the frame itself gathers from every few bytes of
    # it (0.12 ms of waiting on memory, on a frame not yet in the cache), a plane's from memory the
    # split has just written. The same samples, so the same bytes.
    step = sample_step(img.shape)
    if img.ndim == 3:
        image = _planes(img)
        samples = [np.ascontiguousarray(p[::step, ::step]) for p in image]
        gray_sample = _gray(samples, False, None)
    else:
        image = img
        gray_sample = np.ascontiguousarray(img[::step, ::step])
    light = cfg.ink == "light" or (cfg.ink == "auto" and light_ink(gray_sample))
    channels = None if light or cfg.weak_channel or img.ndim == 2 else _bright_planes(samples)
    gray = _gray(image, light, channels)
    h0, w0 = gray.shape
    scale = min(1.0, cfg.work_size / max(h0, w0))
    if scale < 1.0:
        gray = cv2.resize(gray, (max(1, round(w0 * scale)), max(1, round(h0 * scale))), interpolation=cv2.INTER_AREA)
    h, w = gray.shape
    if min(h, w) < 8:
        return [], scale
    ink = ink_map(gray)
    # Strong ink: the configured level, or lower on a faint frame (pencil, a dim room, a thin
    # pen): under half of what its darkest strokes reach, but never down into the weak-ink band.
    top = _percentile_u8(ink[::4, ::4], 99.9) / 255.0
    high = min(max(0.45 * top, cfg.ink_low + 0.05), cfg.ink_high)  # (np.clip of a scalar: 10 us)
    strong_px = cv2.threshold(ink, int(high * 255) - 1, 1, cv2.THRESH_BINARY)[1]  # ink >= level, as 0/1
    # Weak ink counts only near strong ink: the faint edge of a stroke, not the paper
    # grain or shadow edge that happens to touch it further away.
    weak = cv2.threshold(ink, int(cfg.ink_low * 255) - 1, 1, cv2.THRESH_BINARY)[1]
    low = cv2.bitwise_and(weak, cv2.dilate(strong_px, _disc(GROW)))
    min_h = max(cfg.min_height_px, cfg.min_height_frac * min(h, w))
    pieces = _pieces(low, strong_px, cfg, min_h)
    # A frame streaked by motion: see streak. Its weak ink is followed further along itself. (One
    # piece cannot tell a streak from a 1, whose edges all face one way too: 4 of 12 one-digit
    # frames of the benchmark measured under 0.35.)
    if pieces is not None and cfg.streak and len(pieces[1]) >= 2:
        x0, y0 = min(b[0] for b in pieces[1]), min(b[1] for b in pieces[1])
        x1, y1 = max(b[0] + b[2] for b in pieces[1]), max(b[1] + b[3] for b in pieces[1])
        streaked = streak(ink[y0:y1, x0:x1], pieces[0][y0:y1, x0:x1], int(STREAK_INK * high * 255)) < cfg.streak
    else:
        streaked = False
    if streaked:
        reach = max(1, round(STREAK_REACH * max(h, w)))
        for _ in range(reach):
            low = cv2.bitwise_and(cv2.dilate(low, _square(3)), weak)
        pieces = _pieces(low, strong_px, cfg, min_h)
    if pieces is None:
        return [], scale
    mask, boxes = pieces
    found = []
    for x, y, bw, bh in boxes:
        if bh < min_h or bh > cfg.max_height_frac * h:
            continue
        aspect = bw / bh
        # Rules and a sheet's edge are wider still; a ballpoint "1" close up is a line 0.01-0.03 as wide
        # as it is tall (the limit was 0.03, and dropped it).
        if aspect > cfg.max_split_aspect or aspect < 0.008:
            continue
        touches = x <= 1 or y <= 1 or x + bw >= w - 1 or y + bh >= h - 1
        region = mask[y : y + bh, x : x + bw]
        count = np.count_nonzero(region)
        fill = count / float(bw * bh)
        # Solid blobs (a finger, a pen cap) are not digits; but a narrow solid bar is what a straight
        # "1" is (its box is all ink), so bars narrower than 0.3 of their height are kept.
        if aspect >= 0.3 and fill > (0.9 if aspect < 0.45 else 0.86):
            continue
        if touches and fill > 0.6:
            continue
        win = ink[y : y + bh, x : x + bw]
        # A shadow's tip or a smudge: ink with no edges. Only faint ink needs the test (a shadow
        # is never dark); skipping it for dark strokes keeps a 10-digit frame 0.5 ms faster.
        if float((win & region).sum()) < 0.4 * 255 * count and _edge_steepness(win, region) < cfg.min_edge:
            continue
        if cfg.dark_surround and _dark_surround(gray, mask, (x, y, bw, bh)) > cfg.dark_surround:
            continue
        if cfg.dark_surround and aspect < RIM_ASPECT and _rim_of_dark(gray, mask, (x, y, bw, bh)):
            continue
        found.append((int(x), int(y), int(bw), int(bh)))
    # On a sheet turned in view (its lines slope: see line_slope), each digit is turned back upright.
    turn = math.degrees(line_slope(found, gray)) if cfg.upright else 0.0
    cands = []
    for box in found:
        aspect = box[2] / box[3]
        # Wider than one digit: perhaps digits written touching. Wider still (> 2.2) it is a row of
        # them or nothing (a rule, a sheet's edge): kept only if it cuts into digit-sized pieces.
        splits = []
        if cfg.split_aspect and aspect > min(cfg.split_aspect, SPLIT_NARROW_FROM):
            # Narrower: two 1s written touching, cut only at a clear neck.
            splits = _splits(ink, mask, box, min_h, SPLIT_NARROW_NECK if aspect <= cfg.split_aspect else SPLIT_MIN_NECK)
        crop = _crop(ink, mask, box, min_peak=0.0, turn=turn) if aspect <= 2.2 else None
        if crop is None and not splits:
            continue
        cands.append(Candidate(box, crop, (ink, mask, box), splits, turn))
        if len(cands) >= cfg.max_digits:
            break
    return cands, scale


def _splits(ink: np.ndarray, mask: np.ndarray, box, min_h: float, min_neck: float = SPLIT_MIN_NECK) -> list[Split]:
    """Ways to cut a wide box into 2, 3, ... digits written touching one another.

    Digits are about 0.45-1.1 of their height wide, so a box ``aspect`` wide holds between
    aspect / 1.1 and aspect / 0.45 of them. For each count the cuts go where the ink's column
    profile spans least height near the even spacing (touching digits meet in a stroke or two,
    not in their bodies); the deepest point of each clear neck is tried too, alone and with the
    others, for digits of unequal width (a 1 and a 0). A cut whose pieces are not each most of the
    box's height and narrow enough for one digit is no way to cut it: a rule or a sheet's edge cut
    up gives dashes. Only ways whose neck (below) is deeper than ``min_neck`` are cut and returned."""
    x, y, bw, bh = box
    region = mask[y : y + bh, x : x + bw] > 0
    # Where two digits touch, the ink in a column spans little height (a stroke meets a stroke);
    # through a digit's body it spans most of it (the top and bottom of an 0). The number of ink
    # pixels in a column would say the opposite for two 0s side by side.
    inked = region.any(axis=0)
    first = np.argmax(region, axis=0)
    last = bh - 1 - np.argmax(region[::-1], axis=0)
    span = np.where(inked, last - first + 1, 0).astype(np.float32) / bh
    # The clearest neck any cut could find: most wide single digits have none, and stop here.
    depth = np.minimum(np.maximum.accumulate(span), np.maximum.accumulate(span[::-1])[::-1]) - span
    if depth.max(initial=0.0) <= min_neck:  # (no cut's neck is deeper than the deepest column's)
        return []
    aspect = bw / bh
    most = min(6, math.ceil(aspect / 0.45))  # more pieces than this would each be too narrow
    ways = []  # each: the cut columns, 0 and bw included
    for n in range(max(2, int(aspect / 1.1)), most + 1):
        step = bw / n
        cuts = [0]
        for j in range(1, n):
            e = j * step
            lo, hi = max(cuts[-1] + 1, int(e - 0.35 * step)), min(bw - 1, int(e + 0.35 * step) + 1)
            if hi <= lo:
                break
            c = np.arange(lo, hi)
            cuts.append(int(c[np.argmin(span[lo:hi] + 0.5 * ((c - e) / step) ** 2)]))
        else:
            ways.append(cuts + [bw])
    # Digits are not evenly wide: a 1 beside a 0 puts their neck far from the middle, outside
    # any evenly spaced cut's reach. So the deepest point of each clear neck is also tried as a
    # cut, alone and with the others (the deepest SPLIT_MAX_NECKS: at most 15 ways).
    necks = []
    deep = depth > SPLIT_ANCHOR_NECK
    edges = np.flatnonzero(np.diff(np.concatenate([[False], deep, [False]]).astype(np.int8)))
    for a, b in zip(edges[::2], edges[1::2]):
        necks.append((float(depth[a:b].max()), a + int(np.argmax(depth[a:b]))))
    necks = sorted(c for _, c in sorted(necks, reverse=True)[:SPLIT_MAX_NECKS])
    for k in range(1, min(len(necks), most - 1) + 1):
        for combo in itertools.combinations(necks, k):
            cuts = [0, *combo, bw]
            if cuts not in ways:
                ways.append(cuts)
    out = []
    pieces: dict[tuple[int, int], Candidate | None] = {}  # columns a..b -> its piece (None: no digit)
    for cuts in ways:
        # How clearly each cut is a neck between two bodies: the lower of the tallest columns
        # on its two sides, less the column at the cut (a wide 4 or 7 cut through its bar has
        # a short side; two digits that touch have two tall ones). Most single digits have
        # none (median 0 on 1,800 wide ones; touching pairs 0.6), so they cost no crops.
        neck = min(min(span[a:c].max(), span[c:b].max()) - span[c]
                   for a, c, b in zip(cuts[:-2], cuts[1:-1], cuts[2:]))
        if neck <= min_neck:
            continue
        parts = []
        for a, b in zip(cuts[:-1], cuts[1:]):
            # Two ways of cutting often share a piece (the same columns): it is cut once, and the
            # reader, which reads each piece once, reads it once.
            if (a, b) not in pieces:
                pieces[(a, b)] = _piece(ink, mask, region, box, a, b, min_h)
            part = pieces[(a, b)]
            if part is None:
                break
            parts.append(part)
        else:
            out.append(Split(parts, float(neck)))
    return out


def _piece(ink: np.ndarray, mask: np.ndarray, region: np.ndarray, box, a: int, b: int,
           min_h: float) -> Candidate | None:
    """Columns ``a``..``b`` of a wide box as one digit of a cut, or None when they hold no digit:
    no ink, too short a piece, too wide for one digit, or nothing left to crop."""
    x, y, _, bh = box
    sub = region[:, a:b]
    rows, cols = np.flatnonzero(sub.any(axis=1)), np.flatnonzero(sub.any(axis=0))
    if rows.size == 0:
        return None
    ph, pw = int(rows[-1] - rows[0] + 1), int(cols[-1] - cols[0] + 1)
    if ph < max(min_h, SPLIT_SHORT * bh) or pw > SPLIT_WIDE * ph:  # short, or too wide for one digit
        return None
    pbox = (int(x + a + cols[0]), int(y + rows[0]), pw, ph)
    crop = _crop(ink, mask, pbox)
    return None if crop is None else Candidate(pbox, crop, (ink, mask, pbox))


def pick_split(whole: float | None, splits: list[tuple[np.ndarray, float]], aspect: float = 0.0) -> int | None:
    """Which reading of a wide candidate to keep: -1 for the whole, k for ``splits[k]``, None for
    neither. ``whole`` is the whole crop's confidence (None: too wide to be one digit); each split
    is (its pieces' confidences, its neck); ``aspect`` the whole's width / height. A split must
    read better than the whole by ``SPLIT_GAIN``: the product of its pieces' confidences (the
    chance all of them are right, so more pieces need more evidence), less the whole's, plus
    ``SPLIT_NECK_WEIGHT`` times its neck and ``SPLIT_ASPECT_WEIGHT`` times the whole's width past
    ``SPLIT_ASPECT_FROM`` of its height."""
    best, best_gain = (-1, SPLIT_GAIN) if whole is not None else (None, -math.inf)
    wide = SPLIT_ASPECT_WEIGHT * max(0.0, aspect - SPLIT_ASPECT_FROM)
    for k, (confs, neck) in enumerate(splits):
        gain = float(np.prod(confs)) - (whole or 0.0) + SPLIT_NECK_WEIGHT * neck + wide
        if gain > best_gain:
            best, best_gain = k, gain
    return best


def _percentile_u8(a: np.ndarray, q: float) -> float:
    """``np.percentile(a, q)`` (linear interpolation) of a uint8 array, from its histogram: the same
    value, 0.05 ms instead of 1.5 ms on a frame's ink map."""
    hist = cv2.calcHist([np.ascontiguousarray(a)], [0], None, [256], [0, 256]).ravel()
    cum = np.add.accumulate(hist)
    pos = q / 100.0 * (a.size - 1)
    k = int(pos)
    lo = int(np.searchsorted(cum, k, side="right"))  # the k-th smallest value (0-based)
    hi = int(np.searchsorted(cum, min(k + 1, a.size - 1), side="right"))
    return lo + (pos - k) * (hi - lo)


RULES_MIN = 3  # long parallel lines it takes to be ruled or squared paper


def _ruled(stats: np.ndarray, w: int) -> bool:
    """Whether long horizontal lines (their component stats) are a sheet's ruling: at least
    ``RULES_MIN`` of them half the frame long, stacked at a pitch under a third of their length.
    Digits' strokes are not: one long stroke (a close-up 1's stem, an underline) is no ruling, and
    the stems of two or three close-up digits stand about a digit's width apart, as far as they
    are long (taken for rules, they were erased)."""
    long = stats[stats[:, cv2.CC_STAT_WIDTH] >= w // 2]
    if len(long) < RULES_MIN:
        return False
    centres = np.sort(long[:, cv2.CC_STAT_TOP] + long[:, cv2.CC_STAT_HEIGHT] / 2.0)
    pitch = float(np.median(np.diff(centres)))
    return pitch < float(np.median(long[:, cv2.CC_STAT_WIDTH])) / 3.0


def _remove_rules(binary: np.ndarray) -> np.ndarray:
    """The binary ink without its long thin horizontal lines (a ruled sheet's rules), and with the
    strokes those lines crossed bridged again. Call it on the transpose for vertical lines.

    A rule is a thin line of ink at least a quarter of the frame long, on a sheet ``_ruled``
    finds ruled (many long lines close together); a digit's strokes are shorter, and a
    close-up digit's long stems are few and far apart, so both stay (a thin ballpoint's stem in
    a close-up is as thin as a rule: taken for one, it was erased). Only the columns where the rule is alone are cleared, across its whole band: no stub of the rule is
    left stuck to a digit beside a stroke (such stubs turned a 2 into a 7 and a 0 into a 6)."""
    h, w = binary.shape
    if w < 40:
        return binary
    thick_max = max(3, int(round(0.012 * max(h, w))))  # a rule's thickness at this size
    # Rules are short horizontal runs (a short run tolerates a few degrees of tilt once the ink
    # is thickened by a pixel up and down)...
    runs = cv2.morphologyEx(cv2.dilate(binary, np.ones((3, 1), np.uint8)), cv2.MORPH_OPEN,
                            np.ones((1, max(12, w // 16)), np.uint8))
    if not runs.any():
        return binary
    # ...that join into a line a quarter of the frame long.
    n, labels, stats = _components(runs)
    lines = np.flatnonzero(stats[1:, cv2.CC_STAT_WIDTH] >= w // 4) + 1
    if not _ruled(stats[lines], w):
        return binary
    band = np.zeros_like(binary)
    for i in lines:
        x0, y0, cw, ch = (int(v) for v in stats[i, :4])
        line = labels[y0 : y0 + ch, x0 : x0 + cw] == i
        # Per column, the line is the rule alone (its thickness, +2 from the dilation) or a rule with
        # a stroke crossing or lying on it (thicker). Only the rule alone is taken out: the rest is
        # the stroke, and a crossing cut is bridged below.
        count = line.sum(axis=0)
        alone = (count > 0) & (count <= thick_max + 2)
        if alone.sum() < 0.5 * np.count_nonzero(count):
            continue  # mostly thick: a close-up digit's long stroke, not a rule
        # The rule's band in those columns: its median thickness around each column's centre (a
        # column where the rule came out thin or thick is taken out to the rule's usual width).
        centre = line.argmax(axis=0) + count / 2.0
        half = float(np.median(count[alone])) / 2.0
        inband = (np.abs(np.arange(ch)[:, None] + 0.5 - centre[None, :]) <= half) & alone[None, :]
        band[y0 : y0 + ch, x0 : x0 + cw] |= inband.astype(np.uint8)
    rules = band & binary
    out = binary & ~rules
    # A stroke that crossed a rule is cut where the rule was: close the cut, only there, only
    # where there is ink on both sides (a rule with nothing crossing it stays empty).
    bridged = cv2.morphologyEx(out, cv2.MORPH_CLOSE, np.ones((thick_max + 4, 1), np.uint8))
    return out | (bridged & cv2.dilate(rules, np.ones((3, 1), np.uint8)))


def _edge_steepness(ink: np.ndarray, mask: np.ndarray) -> float:
    """How steeply the ink rises at its edges: the 90th percentile of its gradient over the kept
    pixels, in ink units (0-1) per working pixel. A pen stroke rises within a pixel or two, even
    blurred and faint (0.025 and up on 11,000 synthetic digits, 0.06 typical); the soft edge of a
    phone's shadow spreads over tens of pixels (0.009-0.019), though it is as dark as pencil."""
    g = cv2.magnitude(cv2.Sobel(ink, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(ink, cv2.CV_32F, 0, 1, ksize=3))
    vals = g[mask > 0]
    if vals.size == 0:
        return 0.0
    k = int(0.9 * (vals.size - 1))
    vals.partition(k)  # (in place: vals is this function's own; np.partition copies it first)
    return float(vals[k]) / (8.0 * 255.0)  # Sobel's 3x3 kernel sums to 8


DARK_NEAR = 9  # working px (a square): a pixel beside a candidate is compared with its darkest ink this near,
DARK_NEAR_SHARE = 16  # or within this share of its height if that is more (a big soft digit's edge is wide)...
DARK_SLACK = 0.2  # ...and is as dark as it when at most this share of the candidate's contrast brighter


def _dark_surround(gray: np.ndarray, mask: np.ndarray, box) -> float:
    """The share of the pixels around a candidate's ink (within 2 px of it, not ink themselves) that
    are as dark as its own ink beside them: 0 for a stroke on paper, 0.3-0.7 for a piece of the table.

    The ink map measures darkness against the paper's estimate, a closing a fifth of the frame wide:
    beside a sheet turned in view the table's narrow wedges, and a shadow's narrow tip, are filled
    with the paper's level and read as ink, "1"s along the sheet's edge (53 false digits in 250
    frames turned 15 degrees, 50 in 250 with hard shadows). Their far side fades into more of the
    same dark table, which the ink map calls paper. A stroke's surroundings are paper: brighter than
    its ink by more than ``DARK_SLACK`` of its contrast (a pixel beside it under ``ink_low`` of
    darkness, its core over ``ink_high``), also where a hard shadow crosses it, as the comparison is
    with the ink within ``DARK_NEAR`` px, on the same side of the shadow's edge; a big digit's soft
    edge is compared with ink further in (``DARK_NEAR_SHARE``: at 9 px four close-up MNIST digits
    in 100 frames were lost). On 1,700 digits of level, turned and pen-drawn frames the share was at
    most 0.04, and 0.26 for a digit merged with a shadow's rim; 0.09-0.78 for the false digits.

    A candidate whose region (its box and ``pad`` px round it) has nothing on its border nearly as
    dark as its darkest ink is on paper and returns 0 at once: 20 us a candidate instead of 200
    (a wedge's table runs on past the border; this lets through 1-3 more false digits in 250 frames
    turned or shadowed, of 11-28)."""
    x, y, bw, bh = box
    reach = max(DARK_NEAR, (bh // DARK_NEAR_SHARE) | 1)
    pad = reach // 2 + 2
    y0, y1 = max(0, y - pad), min(gray.shape[0], y + bh + pad)
    x0, x1 = max(0, x - pad), min(gray.shape[1], x + bw + pad)
    g = gray[y0:y1, x0:x1]
    # Quick way out (most candidates): nothing on the region's border is nearly as dark as the ink.
    lo = int(g.min())
    rim = int(np.concatenate((g[0], g[-1], g[:, 0], g[:, -1])).min())
    if rim > lo * (1.0 + DARK_SLACK):
        return 0.0
    m = np.zeros((y1 - y0, x1 - x0), np.uint8)
    m[y - y0 : y - y0 + bh, x - x0 : x - x0 + bw] = mask[y : y + bh, x : x + bw]
    own = m > 0
    # The darkest of the candidate's own ink within reach // 2 px of each pixel (255: none).
    near = cv2.erode(np.where(own, g, np.uint8(255)), _square(reach))
    ring = cv2.dilate(m, _square(5)) > mask[y0:y1, x0:x1]  # within 2 px of its ink, and no ink
    beside = g[ring]
    if beside.size == 0:
        return 0.0
    inked = g[own]
    inked.partition(inked.size // 2)
    core = float(inked[inked.size // 2])
    k = int(0.9 * (beside.size - 1))
    paper = float(np.partition(beside, k)[k])
    contrast = max(0.0, (paper - core) / max(paper, 1.0))
    return np.count_nonzero(beside <= near[ring] * (1.0 + DARK_SLACK * contrast)) / beside.size


RIM_ASPECT = 0.5  # only a candidate narrower than this share of its height is looked at (a "1")
RIM_DARK = 0.75  # a pixel beside the ink under this share of the paper's level (there) is dark
RIM_ONE, RIM_OTHER = 0.7, 0.2  # over RIM_ONE of one side's pixels dark, under RIM_OTHER of the other's
RIM_INK = 1.4  # and that side no lighter than this many times the candidate's own ink (medians)


def _rim_of_dark(gray: np.ndarray, mask: np.ndarray, box) -> bool:
    """Whether a narrow candidate is the dark rim along a dark region's edge rather than a stroke on
    paper: what lies beside its ink (within 2 px) is dark on one side, left or right of its ink in
    each row, and paper on the other, and the dark side is nearly as dark as the candidate itself.

    A sheet on a table, turned in view, shows a thin rim darker than the table right along its edge
    (a JPEG or sharpening halo); the ink map reads it as ink, a "1" along the sheet's edge, which
    ``_dark_surround`` misses: the table beyond it is lighter than the rim, so nothing around the
    region is as dark as its "ink" (8 of the 21 wrong frames of 250 turned 15 degrees). A stroke
    on paper has paper on both sides; one crossing a shadow's edge has the shadow at one end, not
    along one side. A 1 written right along a hard shadow's edge is taken for a rim too (one digit
    in 500 frames with hard shadows)."""
    x, y, bw, bh = box
    y0, y1 = max(0, y - 3), min(gray.shape[0], y + bh + 3)
    x0, x1 = max(0, x - 3), min(gray.shape[1], x + bw + 3)
    g = gray[y0:y1, x0:x1]
    m = np.zeros((y1 - y0, x1 - x0), np.uint8)
    m[y - y0 : y - y0 + bh, x - x0 : x - x0 + bw] = mask[y : y + bh, x : x + bw]
    own = m > 0
    per_row = np.count_nonzero(own, axis=1)
    # Beside the ink: within 2 px of it, not ink itself, in a row that has some of its ink.
    ring = (cv2.dilate(m, _square(5)) > mask[y0:y1, x0:x1]) & (per_row > 0)[:, None]
    ry, rx = np.nonzero(ring)
    if ry.size < 8:
        return False
    centre = (own @ np.arange(own.shape[1], dtype=np.float32)) / np.maximum(per_row, 1)  # the ink's middle per row
    vals = g[ry, rx]
    k = int(0.9 * (vals.size - 1))
    dark = vals < RIM_DARK * float(np.partition(vals, k)[k])
    left = rx < centre[ry]
    n_left = np.count_nonzero(left)
    if n_left < 4 or vals.size - n_left < 4:
        return False
    dark_left = np.count_nonzero(dark & left) / n_left
    dark_right = np.count_nonzero(dark & ~left) / (vals.size - n_left)
    if not (max(dark_left, dark_right) > RIM_ONE and min(dark_left, dark_right) < RIM_OTHER):
        return False
    side = vals[left] if dark_left > dark_right else vals[~left]
    return float(np.median(side)) < RIM_INK * float(np.median(g[own]))


@functools.lru_cache(maxsize=64)
def _disc(r: int) -> np.ndarray:
    """An elliptic structuring element of radius ``r`` (made once per radius)."""
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))


def _crop(ink: np.ndarray, mask: np.ndarray, box, min_peak: float = 0.0, stroke: float = STROKE,
          turn: float = 0.0) -> np.ndarray | None:
    """The digit's own ink, stroke width normalised, as a 28x28 contract image (all uint8 OpenCV ops),
    turned ``turn`` degrees counter-clockwise (a digit on a turned sheet, back upright).

    None when the box holds no ink, or ink whose core is fainter than ``min_peak``
    (paper grain beside real, darker writing)."""
    x, y, bw, bh = box
    pad = max(2, bh // 8)
    y0, y1 = max(0, y - pad), min(ink.shape[0], y + bh + pad)
    x0, x1 = max(0, x - pad), min(ink.shape[1], x + bw + pad)
    # Only this digit's ink inside its box (not a neighbour's strokes reaching into the padding).
    m = np.zeros((y1 - y0, x1 - x0), np.uint8)
    m[y - y0 : y - y0 + bh, x - x0 : x - x0 + bw] = mask[y : y + bh, x : x + bw]
    # (numpy, not cv2, for the element-wise steps: on arrays this small a numpy call costs 0.5 us,
    # a cv2 call 1-2 us.)
    area = np.count_nonzero(m)
    if area == 0:
        return None
    soft = ink[y0:y1, x0:x1] & m
    # Stroke width to MNIST's: about 2 px in a 20-px box, i.e. a tenth of the digit's longest side.
    target = stroke * max(bw, bh)
    # The ink's width from its area and its edge (its pixels less those left by a 3x3 erosion).
    sw = 2.0 * area / max(area - cv2.countNonZero(cv2.erode(m, None)), 1)
    if sw < 0.75 * target:
        soft = cv2.dilate(soft, _disc(max(1, int(round((target - sw) / 2)))))
    elif sw > 1.4 * target:
        eroded = cv2.erode(soft, _disc(max(1, int(round((sw - target) / 2)))))
        if np.count_nonzero(eroded) > 0.25 * np.count_nonzero(soft):  # never erase the digit
            soft = eroded
    # Contrast to the stroke's core (95th percentile of the ink); soft edges stay soft, as in MNIST.
    inked = soft[soft > 0]
    if inked.size == 0:
        return None
    k = math.ceil(0.95 * inked.size) - 1
    inked.partition(k)  # (in place: np.partition would copy it first)
    peak = int(inked[k])
    if peak < min_peak:
        return None
    soft = cv2.convertScaleAbs(soft, alpha=255.0 / max(peak, 1))
    if turn:
        soft = _turned(soft, turn)
    return contract.normalize_ink(soft)


def _turned(img: np.ndarray, degrees: float) -> np.ndarray:
    """``img`` turned ``degrees`` counter-clockwise about its centre, on a canvas that holds all of it."""
    h, w = img.shape
    m = cv2.getRotationMatrix2D((w / 2.0, h / 2.0), degrees, 1.0)
    c, s = abs(m[0, 0]), abs(m[0, 1])
    nw, nh = int(math.ceil(w * c + h * s)), int(math.ceil(w * s + h * c))
    m[0, 2] += (nw - w) / 2.0
    m[1, 2] += (nh - h) / 2.0
    return cv2.warpAffine(img, m, (nw, nh), flags=cv2.INTER_LINEAR, borderValue=0)


def iou(a, b) -> float:
    """Intersection over union of two (x, y, w, h) boxes."""
    ax0, ay0, aw, ah = a
    bx0, by0, bw, bh = b
    iw = max(0, min(ax0 + aw, bx0 + bw) - max(ax0, bx0))
    ih = max(0, min(ay0 + ah, by0 + bh) - max(ay0, by0))
    inter = iw * ih
    return inter / float(aw * ah + bw * bh - inter) if inter else 0.0


SKEW_MIN = 3.0  # degrees: a frame whose lines slope less than this is read as it is
SKEW_REACH = 2.0  # a digit's neighbour in its line is at most this many heights to its right...
SKEW_RISE = 0.45  # ...and rises or falls at most this share of that (24 degrees)
# The slope is taken from at least this many pairs of neighbours: two-digit lines wobble by up to
# 8 degrees each (a digit's baseline), and three of them once made a slope that merged two lines.
SKEW_PAIRS = 3
# Two pairs are enough when both slope the same way by at least this many degrees: a sheet turned
# 15 degrees that shows two short lines ("25" over "72") otherwise read as one line, "2572"; two
# pairs of level frames' digits sloped at most 8 and 11, or 9 and 7 (1,500 frames of seven sets).
SKEW_FEW_MIN = 9.0


def skew(boxes: list[tuple[int, int, int, int]]) -> float:
    """How far the frame's lines of digits slope, in radians (positive: down to the right), or 0.0
    when they slope less than ``SKEW_MIN`` degrees or there are too few digits to tell.

    The median slope between digits that are each other's nearest neighbour in a line (of a
    similar size, a third of a height to ``SKEW_REACH`` heights apart, rising or falling less than
    ``SKEW_RISE`` of that): a sheet or a phone turned by 10 degrees puts one line's last digit a
    whole digit lower than its first, and the lines ran into each other."""
    slopes = _pair_slopes(boxes)
    return _median_slope(slopes) if _enough_pairs(slopes) else 0.0


def _enough_pairs(slopes: list[float]) -> bool:
    """Whether the slopes of neighbouring digits (``_pair_slopes``) are enough to tell a slope."""
    k = len(slopes)
    return k >= SKEW_PAIRS or (k == 2 and min(abs(slopes[0]), abs(slopes[1])) >= math.radians(SKEW_FEW_MIN)
                               and (slopes[0] > 0) == (slopes[1] > 0))


def _median_slope(slopes: list[float]) -> float:
    """The median of sorted slopes (radians), or 0.0 if it is under ``SKEW_MIN`` degrees."""
    k = len(slopes)
    angle = slopes[k // 2] if k % 2 else (slopes[k // 2 - 1] + slopes[k // 2]) / 2
    return angle if abs(angle) >= math.radians(SKEW_MIN) else 0.0


def _pair_slopes(boxes: list[tuple[int, int, int, int]]) -> list[float]:
    """The slopes (radians, sorted) between digits that are each other's nearest neighbour in a
    line: see ``skew``."""
    n = len(boxes)
    if n < 2:
        return []
    # Plain Python over the boxes in order of x, each compared with those to its right within
    # reach: 45 us for a 10-digit frame, where the same on 10 x 10 numpy arrays took 110.
    c = [(x + w / 2, y + h / 2, max(h, 1.0)) for x, y, w, h in boxes]
    order = sorted(range(n), key=lambda i: c[i][0])
    reach = SKEW_REACH * max(h for _, _, h in c)
    right, right_dx = [-1] * n, [math.inf] * n  # each digit's nearest neighbour on its right...
    left, left_dx = [-1] * n, [math.inf] * n  # ...and on its left: a pair must be each other's
    for a, i in enumerate(order):
        xi, yi, hi = c[i]
        for j in order[a + 1 :]:
            xj, yj, hj = c[j]
            dx = xj - xi
            if dx >= reach:
                break
            if (dx <= min(hi, hj) / 3 or dx >= SKEW_REACH * max(hi, hj) or not 0.5 < hj / hi < 2.0
                    or abs(yj - yi) >= SKEW_RISE * dx):
                continue
            if dx < right_dx[i] or (dx == right_dx[i] and j < right[i]):
                right_dx[i], right[i] = dx, j
            if dx < left_dx[j] or (dx == left_dx[j] and i < left[j]):
                left_dx[j], left[j] = dx, i
    slopes = sorted(math.atan2(c[j][1] - c[i][1], c[j][0] - c[i][0]) for i, j in enumerate(right) if j >= 0 and left[j] == i)
    return slopes


# Where too few digits pair up to tell the lines' slope, the sheet's own edges may: a sheet turned
# 10-15 degrees with its digits in short lines ("7" over "2" over "9") read its lines run together.
SHEET_LEN = 0.3  # a sheet's edge: a straight line at least this share of the frame's shorter side...
SHEET_MAX = 20.0  # ...sloping at most this many degrees from level or upright...
SHEET_CANNY = (40, 100)  # ...found by Canny's edges at these levels (quarter size)
SHEET_AGREE = 8.0  # the digits' own pairs, if any, must mostly slope within this many degrees of it


def line_slope(boxes: list[tuple[int, int, int, int]], gray: np.ndarray) -> float:
    """The slope of the frame's lines of digits (radians, as ``skew``): the digits' own (``skew``)
    when enough of them pair up to tell; else, for two digits or more, the slope of the sheet's
    edges (``sheet_angle``), if at least half of what pairs there are slope within
    ``SHEET_AGREE`` degrees of it. ``boxes`` are in ``gray``'s pixels."""
    slopes = _pair_slopes(boxes)
    if _enough_pairs(slopes):
        return _median_slope(slopes)
    if len(boxes) < 2:  # one digit has no reading order to get wrong
        return 0.0
    sheet = sheet_angle(gray, boxes)
    if sheet is None or 2 * sum(abs(s - sheet) <= math.radians(SHEET_AGREE) for s in slopes) < len(slopes):
        return 0.0
    return sheet if abs(sheet) >= math.radians(SKEW_MIN) else 0.0


def sheet_angle(gray: np.ndarray, boxes: list[tuple[int, int, int, int]] = ()) -> float | None:
    """The slope of the sheet's edges in view (radians, positive: down to the right), or None when
    none is seen. An edge is a straight line, ``SHEET_LEN`` of the shorter side long or more, within
    ``SHEET_MAX`` degrees of level or of upright (an upright edge counts as its slope from upright),
    with all the digits' boxes' centres (``boxes``, in ``gray``'s pixels) on one side of it: a
    shadow's edge that runs between the digits is not the sheet's (a phone's shadow across a level
    sheet, at 28 degrees, turned a frame's three lines). The median slope of the edges, by length.

    0.2-0.7 ms on 640x480 here (the quarter-size image, Canny, a probabilistic Hough transform);
    only frames whose digits do not tell it themselves need it (see ``line_slope``)."""
    h, w = gray.shape
    small = _quarter(gray)
    fx, fy = small.shape[1] / w, small.shape[0] / h
    length = SHEET_LEN * min(small.shape)
    found = cv2.HoughLinesP(cv2.Canny(small, *SHEET_CANNY), 1, math.pi / 360, threshold=max(1, int(length / 2)),
                            minLineLength=length, maxLineGap=3)
    if found is None:
        return None
    centres = [((x + bw / 2) * fx, (y + bh / 2) * fy) for x, y, bw, bh in boxes]
    edges = []
    for x1, y1, x2, y2 in found[:, 0].tolist():
        slope = (math.degrees(math.atan2(y2 - y1, x2 - x1)) + 45.0) % 90.0 - 45.0  # upright: from upright
        if abs(slope) > SHEET_MAX:
            continue
        side = [(cx - x1) * (y1 - y2) + (cy - y1) * (x2 - x1) for cx, cy in centres]
        if side and min(side) < 0 < max(side):
            continue
        edges.append((slope, math.hypot(x2 - x1, y2 - y1)))
    if not edges:
        return None
    edges.sort()
    half_length, run = sum(n for _, n in edges) / 2, 0.0
    for slope, n in edges:
        run += n
        if run >= half_length:
            return math.radians(slope)
    return math.radians(edges[-1][0])


def group_lines(boxes: list[tuple[int, int, int, int]], angle: float | None = None) -> list[list[int]]:
    """Indices of boxes grouped into text lines (top to bottom), each read left to right; on a
    sloping page (``angle`` radians, or else ``skew(boxes)``), along its lines."""
    if angle is None:
        angle = skew(boxes)
    if angle:
        c, s = math.cos(angle), math.sin(angle)
        level = []
        for x, y, w, h in boxes:  # each box's centre turned back by the slope, its size kept
            cx, cy = x + w / 2, y + h / 2
            level.append((cx * c + cy * s - w / 2, -cx * s + cy * c - h / 2, w, h))
        boxes = level
    order = sorted(range(len(boxes)), key=lambda i: boxes[i][1] + boxes[i][3] / 2)
    lines: list[list[int]] = []
    spans: list[list[float]] = []
    for i in order:
        x, y, w, h = boxes[i]
        cy = y + h / 2
        best = None
        for li, (top, bot) in enumerate(spans):
            overlap = min(bot, y + h) - max(top, y)
            if overlap > 0.4 * min(h, bot - top) and top - 0.1 * h <= cy <= bot + 0.1 * h:
                best = li
                break
        if best is None:
            lines.append([i])
            spans.append([y, y + h])
        else:
            lines[best].append(i)
            # The line's band follows its latest members (a tilted sheet's lines drift).
            spans[best] = [min(spans[best][0], y) * 0.5 + y * 0.5, max(spans[best][1], y + h) * 0.5 + (y + h) * 0.5]
    for line in lines:
        line.sort(key=lambda i: boxes[i][0])
    lines.sort(key=lambda line: min(boxes[i][1] for i in line))
    return lines


class Reader:
    """Frame -> Reading, with one loaded model. Reuse it across frames."""

    def __init__(self, model, cfg: DetectConfig = DetectConfig()):
        self.model = model
        self.cfg = cfg

    def read(self, frame: np.ndarray) -> Reading:
        t0 = time.perf_counter()
        cands, scale = find_candidates(frame, self.cfg)
        t1 = time.perf_counter()
        reading = Reading(detect_ms=(t1 - t0) * 1e3)
        if not cands:
            return reading
        # The slope of the lines, found once: the candidates' (see find_candidates) is the digits'.
        angle = math.radians(cands[0].turn) if self.cfg.upright else None
        cands, probs = self._classify(cands)
        unsure = np.flatnonzero(probs.max(axis=1) < self.cfg.recheck_below)
        if unsure.size:
            with _without_ipp():
                crops = [v for i in unsure for v in recrops(cands[i])]
            again = self.model.predict_uint8(np.stack(crops))
            again = again.reshape(unsure.size, len(RECHECK_STROKES), -1)
            probs = np.array(probs, dtype=np.float32)
            probs[unsure] = (probs[unsure] + again.sum(axis=1)) / (1 + len(RECHECK_STROKES))
        t2 = time.perf_counter()
        reading.classify_ms = (t2 - t1) * 1e3
        inv = 1.0 / scale
        accepted, rejected = [], []
        small = _small_below(cands, self.cfg.small_digit)
        for c, p in zip(cands, probs):
            x, y, w, h = c.box
            box = (int(round(x * inv)), int(round(y * inv)), int(round(w * inv)), int(round(h * inv)))
            if w < self.cfg.narrow_seven * h and p.argmax() == SEVEN:
                p = _discount_seven(p)
            label = int(p.argmax())
            d = Digit(label, float(p[label]), box, p, small=h < small)
            (accepted if d.confidence >= self.cfg.min_confidence and not d.small else rejected).append(d)
        return assemble(accepted, rejected, reading.detect_ms, reading.classify_ms, angle)

    def _classify(self, cands: list[Candidate]) -> tuple[list[Candidate], np.ndarray]:
        """Every candidate's probabilities, in one batch with the pieces of the wide ones; a wide one
        is replaced by the way of cutting it that reads better than the whole (``SPLIT_GAIN``)."""
        crops = []
        rows: dict[tuple[int, int], list[int]] = {}  # (candidate, split or -1 for the whole) -> its rows
        seen: dict[int, int] = {}  # id of a piece shared by two splits -> its row: read once
        for i, c in enumerate(cands):
            if c.crop is not None:
                rows[(i, -1)] = [len(crops)]
                crops.append(c.crop)
            for k, split in enumerate(c.splits):
                for p in split.parts:
                    if id(p) not in seen:
                        seen[id(p)] = len(crops)
                        crops.append(p.crop)
                rows[(i, k)] = [seen[id(p)] for p in split.parts]
        probs = self.model.predict_uint8(np.stack(crops))
        if len(crops) == len(cands):  # nothing wide: one row per candidate, in order
            return cands, probs
        out, out_rows = [], []
        for i, c in enumerate(cands):
            best = pick_split(float(probs[rows[(i, -1)][0]].max()) if c.crop is not None else None,
                              [(probs[rows[(i, k)]].max(axis=1), sp.neck) for k, sp in enumerate(c.splits)],
                              c.box[2] / c.box[3])
            if best is None:
                continue  # too wide for one digit, and no way to cut it reads as digits
            if best == -1:
                out.append(c)
                out_rows.extend(rows[(i, -1)])
            else:
                out.extend(c.splits[best].parts)
                out_rows.extend(rows[(i, best)])
        return out, probs[out_rows] if out_rows else probs[:0]


SMALL_MIN_DIGITS = 3  # fewer candidates than this cannot tell a typical digit's height


def _small_below(cands: list[Candidate], share: float) -> float:
    """The height (working pixels) under which a candidate is too small to be one of this frame's
    digits: ``share`` of the candidates' median height, or 0 (none is) with fewer than
    ``SMALL_MIN_DIGITS`` of them or ``share`` 0.

    One sheet's digits are written about one size, and the median is theirs while they are most
    of the candidates. What is left under half of it was, on 2,000 frames of eight kinds
    (``edge.evaluate`` sets, 11,000 digits), 23 false digits and no true one: specks at a hard
    shadow's edge, a fleck of the table, the pieces of a stroke smeared by motion. A small
    digit that is really there (an exponent) is still reported, as rejected with its label."""
    if not share or len(cands) < SMALL_MIN_DIGITS:
        return 0.0
    return share * _percentile([c.box[3] for c in cands], 50)


SEVEN = 7
NARROW_SEVEN_WEIGHT = 0.1  # a 7 narrower than DetectConfig.narrow_seven keeps this share of its probability


def _discount_seven(p: np.ndarray) -> np.ndarray:
    """Probabilities with a 7's weighed down by ``NARROW_SEVEN_WEIGHT`` and made to sum to 1 again.

    For a digit narrower than ``DetectConfig.narrow_seven`` (0.45) of its height: six MNIST test
    7s in 1,028 are that narrow (their ink over 40 of 255), against 59% of its 1s, but a 1 written
    with a flag (as much of the world writes it, and MNIST's American writers hardly did) is that
    narrow and looks to the model like a 7: 10 of the 11 misread digits of 250 pen-drawn frames.
    Weighed down tenfold, a 7 the model is sure of stays a 7 (at 0.4, the narrow MNIST 7s of 1,250
    frames: 5 of 6 stayed); a 1 with a flag, read as a 7 at 0.5-0.9 with the 1 second, reads as a 1.
    The limit was 0.4 (one test 7 in 1,028, 45% of the 1s, measured so); a flagged 1 written
    slanting is wider, and 0.45 read 12 more frames of 1,250 pen-drawn ones exactly (hard shadows
    90.0 -> 93.2%, touching 86.1 -> 87.0%, streaked 9 px 85.9 -> 86.8%, close-ups 97.0 -> 97.6%)
    for one frame fewer in 2,000 of MNIST digits."""
    q = np.array(p, dtype=np.float32)
    q[SEVEN] *= NARROW_SEVEN_WEIGHT
    return q / q.sum()


def assemble(accepted: list[Digit], rejected: list[Digit], detect_ms: float = 0.0, classify_ms: float = 0.0,
             angle: float | None = None) -> Reading:
    """Put accepted digits in reading order (lines top to bottom, left to right) and build the text;
    ``angle``: the lines' slope (radians) if known, else found from the digits (see skew)."""
    lines = group_lines([d.box for d in accepted], angle)
    reading = Reading(rejected=rejected, detect_ms=detect_ms, classify_ms=classify_ms)
    for line in lines:
        start = len(reading.digits)
        reading.digits.extend(accepted[i] for i in line)
        reading.lines.append(list(range(start, len(reading.digits))))
    reading.text = " ".join("".join(str(reading.digits[i].label) for i in ln) for ln in reading.lines)
    return reading

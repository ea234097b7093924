"""Frame sources for ``run``: a camera, a video file, a folder of images, or synthetic frames."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from . import contract
from .idx import DataError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm"}
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mjpg", ".mjpeg"}


class SourceError(RuntimeError):
    """The frame source cannot be opened, or stopped delivering frames."""


_PNG = b"\x89PNG\r\n\x1a\n"
_PNG_ALPHA = (4, 6)  # IHDR colour types with an alpha channel: grey + alpha, RGB + alpha


def _has_alpha(data: np.ndarray) -> bool:
    """Whether encoded bytes are a PNG with an alpha channel (its IHDR colour type, byte 25)."""
    return data.size > 25 and data[:8].tobytes() == _PNG and int(data[25]) in _PNG_ALPHA


_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # JPEG frame headers (not DHT, JPG, DAC)
_REDUCED = ((8, cv2.IMREAD_REDUCED_COLOR_8), (4, cv2.IMREAD_REDUCED_COLOR_4), (2, cv2.IMREAD_REDUCED_COLOR_2))


def jpeg_size(data: bytes | np.ndarray) -> tuple[int, int] | None:
    """(width, height) from a JPEG's frame header, or None when ``data`` is no JPEG or shows none."""
    b = memoryview(data).cast("B")
    n = len(b)
    if n < 4 or b[0] != 0xFF or b[1] != 0xD8:
        return None
    i = 2
    while i + 4 <= n:
        if b[i] != 0xFF:
            return None
        marker = b[i + 1]
        if marker == 0xFF:  # a fill byte
            i += 1
        elif marker == 0x01 or 0xD0 <= marker <= 0xD9:  # markers without a length
            i += 2
        elif marker == 0xDA:  # the scan starts: no frame header came before it
            return None
        elif marker in _SOF:
            return ((b[i + 7] << 8) | b[i + 8], (b[i + 5] << 8) | b[i + 6]) if i + 9 <= n else None
        else:
            i += 2 + ((b[i + 2] << 8) | b[i + 3])
    return None


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as BGR, applying its EXIF orientation. Raises SourceError naming the file.

    A PNG with an alpha channel (a drawing app's black ink on a transparent ground) is laid on
    white paper: read as plain colour, its transparent pixels are whatever colour they store,
    often black, and the ink vanishes into them."""
    return read_image_at(path, 0)[0]


def read_image_at(path: str | os.PathLike, longest: int) -> tuple[np.ndarray, int]:
    """``read_image``, but a JPEG whose longer side is two or more times ``longest`` is decoded at
    1/2, 1/4 or 1/8 of its size, no smaller than ``longest``: libjpeg scales it in the DCT, 12 ms
    for a 12 MP phone photo at half size against 165 ms whole (and a quarter of the memory),
    and the detector would shrink it to its working size anyway. Returns (image, factor): one
    pixel of the image is ``factor`` x ``factor`` of the file's. ``longest`` 0: never shrunk."""
    p = Path(path)
    if not p.is_file():
        raise SourceError(f"{p}: no such file")
    data = np.fromfile(str(p), dtype=np.uint8)
    size = jpeg_size(data) if longest > 0 else None
    if size is not None:
        for factor, flag in _REDUCED:
            if max(size) >= factor * longest:
                try:
                    img = cv2.imdecode(data, flag)  # (applies the EXIF orientation too)
                except cv2.error:
                    img = None
                if img is not None:
                    return img, factor
                break  # undecodable: the plain path below says why
    return _decode(p, data), 1


def _decode(p: Path, data: np.ndarray) -> np.ndarray:
    """Encoded bytes ``data`` of file ``p`` -> BGR, as ``read_image`` describes."""
    try:
        if _has_alpha(data):
            img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
            if img is not None and img.dtype == np.uint16:
                img = (img >> 8).astype(np.uint8)
            if img is not None and img.ndim == 3 and img.shape[2] == 4:
                return contract.on_white(img)
        # IMREAD_COLOR applies the EXIF orientation, so a phone photo comes out upright.
        img = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    except cv2.error as e:
        if "CV_IO_MAX_IMAGE_PIXELS" in str(e):
            raise SourceError(f"{p}: more pixels than OpenCV decodes by default (2^30); to read it anyway, set the "
                              "environment variable OPENCV_IO_MAX_IMAGE_PIXELS to its width x height") from None
        raise SourceError(f"{p}: OpenCV cannot decode it ({str(e).strip().splitlines()[-1]})") from None
    if img is None:
        raise SourceError(f"{p}: not a readable image (corrupt, truncated or not an image format OpenCV reads)")
    return img


def list_images(path: str | os.PathLike) -> list[Path]:
    """A file as itself (whatever it is: reading it says if it is no image); a folder as its image files, sorted.

    In a folder, files without an image suffix (notes, JSON) are passed over; a
    file with an image suffix that cannot be decoded is an error when read.
    """
    p = Path(path)
    if p.is_dir():
        return sorted(q for q in p.iterdir() if q.is_file() and not q.name.startswith(".")
                      and q.suffix.lower() in IMAGE_SUFFIXES)
    return [p]


class Source:
    """Iterates frames. ``retries`` failed reads in a row end a live source with a message."""

    def __init__(self, spec: str, *, retries: int = 5, seed: int = 0, size: tuple[int, int] = (640, 480),
                 digits_per_frame: int | None = None):
        self.spec = spec
        self.retries = retries
        self.kind = "synthetic"
        self._cap = None
        self._files: list[Path] = []
        self.current: Path | None = None  # in a folder: the file of the frame last yielded
        self.stop_reason = ""
        if spec == "synthetic":
            from .synthetic import FrameMaker

            try:
                self._maker = FrameMaker(seed=seed, size=size)
            except DataError as e:  # $MNIST_DIR points at a damaged copy
                raise SourceError(f"synthetic frames need MNIST's test digits: {e}") from None
            self._n = digits_per_frame
            self.truth = None
            return
        p = Path(spec)
        if p.is_dir():
            self.kind = "dir"
            self._files = list_images(p)
            if not self._files:
                raise SourceError(f"{p}: no images in this folder ({', '.join(sorted(IMAGE_SUFFIXES))})")
            return
        if p.is_file():
            self.kind = "video"
            self._cap = cv2.VideoCapture(str(p))
            if not self._cap.isOpened():
                raise SourceError(f"{p}: OpenCV cannot open this video (unknown format or damaged file)")
            return
        self.kind = "camera"
        tried = []
        candidates: list[int | str] = []
        if spec.isdigit():
            candidates = [int(spec)]
            tried_path = f"/dev/video{spec}"
        elif spec.startswith("/dev/"):
            candidates = [spec]
            tried_path = spec
        elif os.sep in spec or "/" in spec or p.suffix:
            raise SourceError(f"{p}: no such file or folder")
        else:
            raise SourceError(f"{spec}: not a camera index, /dev/videoN, video file, image folder or 'synthetic'")
        if hasattr(cv2, "utils") and hasattr(cv2.utils, "logging"):
            cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)  # our message says it better
        for c in candidates:
            cap = cv2.VideoCapture(c)
            if cap.isOpened():
                self._cap = cap
                return
            cap.release()
            tried.append(f"OpenCV device {c!r} ({tried_path}: {'exists' if Path(tried_path).exists() else 'absent'})")
        devices = sorted(str(d) for d in Path("/dev").glob("video*"))
        raise SourceError(
            f"camera {spec} not found; tried: {'; '.join(tried)}. Video devices present: "
            f"{', '.join(devices) if devices else 'none'}. Check the cable/ribbon, `ls /dev/video*`, the user's "
            "'video' group, or use --source FILE.mp4 / DIR / synthetic"
        )

    def __iter__(self) -> Iterator[np.ndarray]:
        if self.kind == "synthetic":
            while True:
                frame = self._maker.make(self._n)
                self.truth = frame
                yield frame.image
        if self.kind == "dir":
            for f in self._files:
                try:
                    img = read_image(f)
                except SourceError as e:
                    print(f"warning: {e}; skipped", file=sys.stderr, flush=True)
                    continue
                self.current = f
                yield img
            self.stop_reason = "end of folder"
            return
        failures = 0
        while True:
            ok, frame = self._cap.read()
            if ok and frame is not None:
                failures = 0
                yield frame
                continue
            if self.kind == "video":
                self.stop_reason = "end of video"
                return
            failures += 1
            time.sleep(0.1)  # a USB camera hiccup often clears within a frame or two
            if failures > self.retries:
                self.stop_reason = f"camera {self.spec} stopped delivering frames ({self.retries} retries failed)"
                return

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()

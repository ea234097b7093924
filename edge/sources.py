"""Frame sources for ``run``: a camera, a video file, a folder of images, or synthetic frames."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm"}
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mjpg", ".mjpeg"}


class SourceError(RuntimeError):
    """The frame source cannot be opened, or stopped delivering frames."""


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as BGR, applying its EXIF orientation. Raises SourceError naming the file."""
    p = Path(path)
    if not p.is_file():
        raise SourceError(f"{p}: no such file")
    data = np.fromfile(str(p), dtype=np.uint8)
    # IMREAD_COLOR applies the EXIF orientation, so a phone photo comes out upright.
    img = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
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
        self.stop_reason = ""
        if spec == "synthetic":
            from .synthetic import FrameMaker

            self._maker = FrameMaker(seed=seed, size=size)
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
                    yield read_image(f)
                except SourceError:
                    continue
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

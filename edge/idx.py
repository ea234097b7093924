"""Reading MNIST's original IDX files, checked (numpy only: the edge runner uses it too)."""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import numpy as np

IMAGE_MAGIC = 0x00000803
LABEL_MAGIC = 0x00000801


class DataError(RuntimeError):
    """A data file is missing, corrupt or not what it claims to be."""


def parse_idx(path: str | os.PathLike, *, kind: str, count: int | None = None) -> np.ndarray:
    """Parse one IDX file (``.gz`` or raw) into a uint8 array, checking everything.

    ``kind`` is "images" (magic 0x803, N x 28 x 28) or "labels" (magic 0x801,
    N, values 0..9). ``count`` is the expected N, if known. Raises DataError
    naming the file, what was expected and what was found.
    """
    path = Path(path)
    want_magic, want_ndim = (IMAGE_MAGIC, 3) if kind == "images" else (LABEL_MAGIC, 1)
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                raw = f.read()
        else:
            raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise DataError(f"{path}: cannot read ({e}); the file is corrupt or truncated, download it again") from None
    header_len = 4 + 4 * want_ndim
    if len(raw) < header_len:
        raise DataError(f"{path}: truncated: {len(raw)} bytes, an IDX {kind} header alone is {header_len}")
    magic = struct.unpack(">I", raw[:4])[0]
    if magic != want_magic:
        raise DataError(
            f"{path}: wrong magic number: expected 0x{want_magic:08x} ({kind}), found 0x{magic:08x}"
        )
    dims = struct.unpack(f">{want_ndim}I", raw[4:header_len])
    if kind == "images" and dims[1:] != (28, 28):
        raise DataError(f"{path}: expected 28x28 images, found {dims[1]}x{dims[2]}")
    if count is not None and dims[0] != count:
        raise DataError(f"{path}: expected {count} {kind}, header says {dims[0]}")
    n_bytes = int(np.prod(dims))
    body = len(raw) - header_len
    if body != n_bytes:
        what = "truncated" if body < n_bytes else "has trailing bytes"
        raise DataError(f"{path}: {what}: header promises {n_bytes} data bytes, found {body}")
    arr = np.frombuffer(raw, dtype=np.uint8, offset=header_len).reshape(dims).copy()
    if kind == "labels" and arr.size and arr.max() > 9:
        raise DataError(f"{path}: labels must be 0..9, found {int(arr.max())}")
    return arr

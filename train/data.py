"""MNIST loading: the original IDX files, checked, or a Keras copy.

Sources, first match wins:

1. ``directory`` (or ``$MNIST_DIR``) holding the four original IDX files,
   gzipped or not. Gzipped files must match the official checksums.
2. A Keras ``mnist.npz`` file (``directory/mnist.npz`` or a path given as
   ``npz``).
3. The Keras cache (``~/.keras/datasets/mnist.npz``).
4. ``keras.datasets.mnist.load_data()``, which downloads (only when
   ``allow_download`` is true; tests never set it).

Every source is validated the same way (shapes, dtype, label range), so a
partial or corrupt copy stops with an error naming the file instead of
training on half the data.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.idx import IMAGE_MAGIC, LABEL_MAGIC, DataError, parse_idx  # noqa: F401 (re-exported)

log = logging.getLogger(__name__)

# name -> (kind, count, sha256 of the .gz, md5 of the .gz) for the official files.
FILES = {
    "train_images": ("train-images-idx3-ubyte", "images", 60000),
    "train_labels": ("train-labels-idx1-ubyte", "labels", 60000),
    "test_images": ("t10k-images-idx3-ubyte", "images", 10000),
    "test_labels": ("t10k-labels-idx1-ubyte", "labels", 10000),
}
GZ_SHA256 = {
    "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}
GZ_MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}

# sha256 of each official file's content (decompressed): a copy gunzipped and gzipped again is
# other bytes with the same content.
CONTENT_SHA256 = {
    "train-images-idx3-ubyte.gz": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte.gz": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte.gz": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte.gz": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}


@dataclass(frozen=True)
class Split:
    """Train/validation/test arrays; the test set is for final evaluation only."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def _digest(path: Path, algo: str, opener=open) -> str:
    h = hashlib.new(algo)
    with opener(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _content_sha256(path: Path) -> str | None:
    """sha256 of a .gz file's decompressed content, or None when it does not decompress."""
    try:
        return _digest(path, "sha256", opener=gzip.open)
    except (OSError, EOFError):
        return None


def _find(directory: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem, stem.replace("-idx", ".idx")):
        p = directory / name
        if p.is_file():
            return p
    return None


def _load_idx_dir(directory: Path, *, verify: bool) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    arrays = {}
    for key, (stem, kind, count) in FILES.items():
        p = _find(directory, stem)
        if p is None:
            raise DataError(f"{directory}: missing {stem}.gz (or {stem}); it needs all four MNIST IDX files")
        if verify and p.name in GZ_SHA256:
            sha = _digest(p, "sha256")
            if (sha != GZ_SHA256[p.name] and _digest(p, "md5") != GZ_MD5[p.name]
                    and _content_sha256(p) != CONTENT_SHA256[p.name]):
                raise DataError(
                    f"{p}: checksum mismatch: expected sha256 {GZ_SHA256[p.name]}, found {sha}; "
                    "the file is corrupt or not the original, download it again"
                )
        arrays[key] = parse_idx(p, kind=kind, count=count)
    return (arrays["train_images"], arrays["train_labels"]), (arrays["test_images"], arrays["test_labels"])


def _load_npz(path: Path):
    try:
        with np.load(path, allow_pickle=False) as f:
            out = (f["x_train"], f["y_train"]), (f["x_test"], f["y_test"])
    except (OSError, ValueError, KeyError, EOFError) as e:
        raise DataError(f"{path}: not a readable Keras mnist.npz ({e}); delete it or download it again") from None
    _validate(out, str(path))
    return out


def _validate(data, source: str) -> None:
    (xtr, ytr), (xte, yte) = data
    for name, x, y, n in (("train", xtr, ytr, 60000), ("test", xte, yte, 10000)):
        if x.shape != (n, 28, 28) or y.shape != (n,):
            raise DataError(f"{source}: {name} set has shapes {x.shape}, {y.shape}; expected ({n}, 28, 28), ({n},)")
        if x.dtype != np.uint8:
            raise DataError(f"{source}: {name} images are {x.dtype}, expected uint8")
        if y.min() < 0 or y.max() > 9:
            raise DataError(f"{source}: {name} labels outside 0..9")


def load_mnist(
    directory: str | os.PathLike | None = None,
    *,
    npz: str | os.PathLike | None = None,
    allow_download: bool = False,
    verify: bool = True,
):
    """Return uint8 ``(x_train, y_train), (x_test, y_test)``, shapes (60000,28,28), (60000,), (10000,28,28), (10000,).

    See the module docstring for the search order. Raises DataError when a
    source exists but is broken (never falls through to a later source: a
    corrupt local copy is a problem to fix, not to hide), or when nothing is
    found and downloading is not allowed.
    """
    tried = []
    directory = directory if directory is not None else os.environ.get("MNIST_DIR") or None
    if directory is not None:
        d = Path(directory).expanduser()
        if not d.is_dir():
            what = "is a file, not a folder" if d.exists() else "does not exist"
            raise DataError(f"{d}: MNIST directory {what} (set MNIST_DIR or pass --data to a folder with the four IDX files)")
        if any(_find(d, stem) for stem, _, _ in FILES.values()):
            data = _load_idx_dir(d, verify=verify)
            _validate(data, str(d))
            log.info("MNIST: IDX files from %s", d)
            return data
        if (d / "mnist.npz").is_file():
            log.info("MNIST: %s", d / "mnist.npz")
            return _load_npz(d / "mnist.npz")
        tried.append(f"{d} (no IDX files, no mnist.npz)")
    if npz is not None:
        return _load_npz(Path(npz))
    cache = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "datasets" / "mnist.npz"
    if cache.is_file():
        log.info("MNIST: Keras cache %s", cache)
        return _load_npz(cache)
    tried.append(f"Keras cache {cache}")
    if not allow_download:
        raise DataError(
            "MNIST not found; tried: " + "; ".join(tried) + ". Set MNIST_DIR to a folder with the four "
            "IDX files, or let `python -m train --download` fetch it with Keras once (into the Keras cache, "
            "where every stage finds it)."
        )
    log.info("MNIST: downloading with keras.datasets.mnist.load_data()")
    import keras  # noqa: PLC0415  (only the download path needs Keras)

    data = keras.datasets.mnist.load_data()
    _validate(data, "keras.datasets.mnist")
    return data


def data_fingerprint(data) -> dict:
    """sha256 of each array, recorded in train_config.json so a run names its data."""
    (xtr, ytr), (xte, yte) = data
    return {
        name: hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()
        for name, a in (("x_train", xtr), ("y_train", ytr), ("x_test", xte), ("y_test", yte))
    }


def split(data, *, val_size: int = 5000, seed: int = 0) -> Split:
    """Carve a seeded, class-stratified validation set out of the training set."""
    (xtr, ytr), (xte, yte) = data
    rng = np.random.default_rng(seed)
    per_class = val_size // 10
    val_idx = np.concatenate(
        [rng.permutation(np.flatnonzero(ytr == c))[:per_class] for c in range(10)]
    )
    mask = np.ones(len(ytr), bool)
    mask[val_idx] = False
    val_idx = rng.permutation(val_idx)
    return Split(xtr[mask], ytr[mask], xtr[val_idx], ytr[val_idx], xte, yte)


def stratified_sample(y: np.ndarray, n: int, *, seed: int) -> np.ndarray:
    """Indices of ``n`` items with (as near as possible) equal counts per class, seeded."""
    rng = np.random.default_rng(seed)
    classes = np.unique(y)
    base, extra = divmod(n, len(classes))
    idx = []
    for i, c in enumerate(classes):
        k = base + (1 if i < extra else 0)
        idx.append(rng.permutation(np.flatnonzero(y == c))[:k])
    return np.sort(np.concatenate(idx))

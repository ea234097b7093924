"""IDX parsing and MNIST loading, including every corrupt case the loader must refuse."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

from train import data
from train.data import DataError, load_mnist, parse_idx


def idx_images(n: int, rows: int = 28, cols: int = 28, magic: int = 0x803, count: int | None = None) -> bytes:
    body = (np.arange(n * rows * cols) % 256).astype(np.uint8).tobytes()
    return struct.pack(">IIII", magic, n if count is None else count, rows, cols) + body


def idx_labels(labels, magic: int = 0x801, count: int | None = None) -> bytes:
    labels = np.asarray(labels, np.uint8)
    return struct.pack(">II", magic, len(labels) if count is None else count) + labels.tobytes()


def test_parse_images_raw_and_gz(tmp_path):
    raw = idx_images(3)
    (tmp_path / "a").write_bytes(raw)
    (tmp_path / "a.gz").write_bytes(gzip.compress(raw))
    for name in ("a", "a.gz"):
        arr = parse_idx(tmp_path / name, kind="images", count=3)
        assert arr.shape == (3, 28, 28) and arr.dtype == np.uint8
        assert arr.reshape(-1)[:300].tolist() == [i % 256 for i in range(300)]


def test_parse_labels(tmp_path):
    (tmp_path / "l").write_bytes(idx_labels([0, 9, 3]))
    assert parse_idx(tmp_path / "l", kind="labels").tolist() == [0, 9, 3]


@pytest.mark.parametrize(
    "payload, kind, count, message",
    [
        (idx_images(2)[:-1], "images", 2, "truncated"),
        (idx_images(2) + b"\0", "images", 2, "trailing bytes"),
        (idx_images(2)[:10], "images", None, "truncated"),
        (idx_images(2, magic=0x801), "images", 2, "wrong magic"),
        (idx_labels([1, 2], magic=0x803), "labels", 2, "wrong magic"),
        (idx_images(2, rows=27), "images", 2, "28x28"),
        (idx_labels([1, 2, 3]), "labels", 2, "expected 2 labels"),
        (idx_images(2, count=3), "images", 3, "truncated"),
        (idx_labels([1, 12]), "labels", 2, "0..9"),
    ],
    ids=["short", "long", "header", "magic-img", "magic-lbl", "dims", "count", "lying-count", "label-range"],
)
def test_corrupt_idx_is_refused(tmp_path, payload, kind, count, message):
    p = tmp_path / "bad-idx"
    p.write_bytes(payload)
    with pytest.raises(DataError) as e:
        parse_idx(p, kind=kind, count=count)
    assert str(p) in str(e.value) and message in str(e.value)


def test_corrupt_gzip_is_refused(tmp_path):
    good = gzip.compress(idx_images(2))
    p = tmp_path / "x.gz"
    p.write_bytes(good[: len(good) // 2])
    with pytest.raises(DataError, match="corrupt or truncated"):
        parse_idx(p, kind="images")
    flipped = bytearray(good)
    flipped[-6] ^= 0xFF  # CRC32 mismatch
    p.write_bytes(bytes(flipped))
    with pytest.raises(DataError, match=str(p)):
        parse_idx(p, kind="images")


def _write_set(d, n_train=60000, n_test=10000, gz=False):
    files = {
        "train-images-idx3-ubyte": idx_images(n_train),
        "train-labels-idx1-ubyte": idx_labels(np.arange(n_train) % 10),
        "t10k-images-idx3-ubyte": idx_images(n_test),
        "t10k-labels-idx1-ubyte": idx_labels(np.arange(n_test) % 10),
    }
    for name, raw in files.items():
        if gz:
            (d / (name + ".gz")).write_bytes(gzip.compress(raw, compresslevel=1))
        else:
            (d / name).write_bytes(raw)


def test_load_uncompressed_dir(tmp_path):
    _write_set(tmp_path)
    (xtr, ytr), (xte, yte) = load_mnist(tmp_path)
    assert xtr.shape == (60000, 28, 28) and ytr.shape == (60000,)
    assert xte.shape == (10000, 28, 28) and yte.shape == (10000,)


def test_gz_with_wrong_checksum_is_refused(tmp_path):
    _write_set(tmp_path, gz=True)  # valid IDX, but not the official bytes
    with pytest.raises(DataError, match="checksum mismatch"):
        load_mnist(tmp_path)


def test_the_official_files_gunzipped_and_gzipped_again_are_accepted(mnist_dir, tmp_path):
    from train.data import FILES

    for stem, _, _ in FILES.values():
        (tmp_path / f"{stem}.gz").write_bytes(gzip.compress(gzip.decompress((mnist_dir / f"{stem}.gz").read_bytes()), 1))
    assert (tmp_path / "t10k-labels-idx1-ubyte.gz").read_bytes() != (mnist_dir / "t10k-labels-idx1-ubyte.gz").read_bytes()
    (_, _), (_, yte) = load_mnist(tmp_path)  # other bytes, the same content
    assert yte.shape == (10000,)


def test_partial_set_is_refused(tmp_path):
    _write_set(tmp_path, n_train=100)
    with pytest.raises(DataError, match="expected 60000"):
        load_mnist(tmp_path)
    full = tmp_path / "full"
    full.mkdir()
    _write_set(full)
    (full / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DataError, match="missing t10k-labels"):
        load_mnist(full)


def test_npz_source_and_missing_everything(tmp_path, monkeypatch):
    monkeypatch.delenv("MNIST_DIR", raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    with pytest.raises(DataError, match="MNIST not found"):
        load_mnist()
    npz = tmp_path / "keras_home" / "datasets" / "mnist.npz"
    npz.parent.mkdir(parents=True)
    x = np.zeros((60000, 28, 28), np.uint8)
    np.savez(npz, x_train=x, y_train=np.zeros(60000, np.uint8), x_test=x[:10000], y_test=np.ones(10000, np.uint8))
    (_, _), (_, yte) = load_mnist()
    assert yte.shape == (10000,) and yte[0] == 1
    npz.write_bytes(b"not a zip")
    with pytest.raises(DataError, match=str(npz)):
        load_mnist()


def test_missing_dir_names_it(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_mnist(tmp_path / "nope")


def test_real_mnist(mnist, mnist_dir):
    (xtr, ytr), (xte, yte) = mnist
    assert xtr.shape == (60000, 28, 28) and xte.shape == (10000, 28, 28)
    assert xtr.dtype == np.uint8 and ytr.dtype == np.uint8
    assert np.bincount(yte).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_split_is_seeded_stratified_and_disjoint(mnist):
    a = data.split(mnist, seed=1)
    b = data.split(mnist, seed=1)
    c = data.split(mnist, seed=2)
    assert len(a.x_train) == 55000 and len(a.x_val) == 5000
    assert np.array_equal(a.y_val, b.y_val) and np.array_equal(a.x_val, b.x_val)
    assert not np.array_equal(a.x_val, c.x_val)
    assert np.bincount(a.y_val).tolist() == [500] * 10
    assert a.x_test is mnist[1][0]  # the test set is passed through untouched


def test_stratified_sample():
    y = np.repeat(np.arange(10), 100)
    idx = data.stratified_sample(y, 55, seed=0)
    assert len(idx) == 55 and len(set(idx.tolist())) == 55
    counts = np.bincount(y[idx], minlength=10)
    assert counts.max() - counts.min() <= 1
    assert np.array_equal(idx, data.stratified_sample(y, 55, seed=0))

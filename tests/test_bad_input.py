"""Bad input to the edge runner and its tools: each a clear error that names the file or the flag and
says what to do, never a traceback, and nothing left half-written."""

from __future__ import annotations

import json
import shutil
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.__main__ import main as edge_main

GOLDEN = Path(__file__).resolve().parent / "golden"
LOOSE = ["--min-confidence", "0"]


def _png(width: int, height: int, idat: bytes) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1-bit grey: 40000^2 px in a few bytes
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def test_an_image_over_opencvs_pixel_limit_is_an_error_and_the_others_are_still_read(exported, tmp_path, capsys):
    big = tmp_path / "a_bomb.png"
    big.write_bytes(_png(40000, 40000, zlib.compress(b"\0" * 64)))
    shutil.copy(GOLDEN / "3_0.png", tmp_path / "b_three.png")
    code = edge_main(["classify", str(tmp_path), "--json", "--artifacts", str(exported), *LOOSE])
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert code == 1 and len(rows) == 2
    assert rows[0]["path"] == str(big) and "OPENCV_IO_MAX_IMAGE_PIXELS" in rows[0]["error"]
    assert "text" in rows[1]


def test_ink_on_a_transparent_png_is_read_as_ink_on_white(exported, tmp_path, capsys):
    from edge.sources import read_image

    dark = 255 - cv2.imread(str(GOLDEN / "3_0.png"), cv2.IMREAD_GRAYSCALE).astype(np.float32)
    ink = np.clip((dark - np.median(dark)) * 2, 0, 255).astype(np.uint8)  # how much ink each pixel holds
    bgra = np.zeros((*ink.shape, 4), np.uint8)  # black ink, and transparent pixels that store black too
    bgra[..., 3] = ink
    p = tmp_path / "drawn.png"
    cv2.imwrite(str(p), bgra)
    assert cv2.imread(str(p), cv2.IMREAD_COLOR).max() == 0  # read as plain colour: black ink on black
    img = read_image(p)
    assert img.shape == (*ink.shape, 3) and img[ink == 0].min() == 255  # the transparent ground is white paper
    assert edge_main(["classify", str(p), "--json", "--artifacts", str(exported), *LOOSE]) == 0
    assert len(json.loads(capsys.readouterr().out)["digits"]) == 1


def test_run_refuses_to_save_over_a_folder_before_it_starts(exported, tmp_path, capsys):
    out = tmp_path / "videos"
    out.mkdir()
    assert edge_main(["run", "--source", str(GOLDEN), "--headless", "--save", str(out), "--artifacts",
                      str(exported)]) == 2
    err = capsys.readouterr().err
    assert f"--save {out}: is a folder" in err and str(out / "run.mp4") in err
    assert not list(tmp_path.glob(".*tmp*")) and not list(out.iterdir())


def test_run_over_a_folder_names_each_frames_file_and_each_unreadable_one(exported, tmp_path, capsys):
    shutil.copy(GOLDEN / "3_0.png", tmp_path / "a.png")
    (tmp_path / "b.png").write_bytes(b"not a png")
    shutil.copy(GOLDEN / "7_0.png", tmp_path / "c.png")
    assert edge_main(["run", "--source", str(tmp_path), "--headless", "--artifacts", str(exported), *LOOSE]) == 0
    out = capsys.readouterr()
    rows = [json.loads(line) for line in out.out.splitlines()]
    assert [r["path"] for r in rows] == [str(tmp_path / "a.png"), str(tmp_path / "c.png")]
    assert [r["frame"] for r in rows] == [0, 1]
    assert f"warning: {tmp_path / 'b.png'}: not a readable image" in out.err and "skipped" in out.err


def test_a_source_path_that_does_not_exist_says_so(exported, capsys):
    assert edge_main(["run", "--source", "/no/such/clip.mp4", "--headless", "--artifacts", str(exported)]) == 2
    assert "/no/such/clip.mp4: no such file or folder" in capsys.readouterr().err


@pytest.mark.parametrize("argv, says", [
    (["run", "--max-frames", "-1"], "not a frame count"),
    (["run", "--smooth", "-3"], "not a frame count (0 or 1: off)"),
    (["run", "--seed", "-1"], "not a seed"),
    (["run", "--threads", "0"], "not a thread count"),
    (["run", "--save-fps", "0"], "not a number over 0"),
    (["classify", "x.png", "--threads", "-2"], "not a thread count"),
    (["classify", "x.png", "--min-confidence", "1.5"], "not a confidence from 0 to 1"),
])
def test_out_of_range_flags_are_usage_errors_naming_the_flag(argv, says, capsys):
    with pytest.raises(SystemExit) as e:
        edge_main(argv)
    assert e.value.code == 2 and says in capsys.readouterr().err


def test_evaluate_rejects_bad_sizes_counts_and_a_damaged_mnist(exported, mnist_dir, tmp_path, capsys):
    from edge.evaluate import main as evaluate_main

    for size in ("0x0", "20x20"):
        assert evaluate_main(["--size", size, "--artifacts", str(exported)]) == 2
        assert "each side needs 32 px or more" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        evaluate_main(["--frames", "0"])
    assert evaluate_main(["--data", str(tmp_path / "none"), "--artifacts", str(exported)]) == 2
    err = capsys.readouterr().err
    assert f"not found in {tmp_path / 'none'}" in err and "t10k-images-idx3-ubyte.gz" in err
    damaged = tmp_path / "mnist"
    damaged.mkdir()
    name = "t10k-images-idx3-ubyte.gz"
    (damaged / name).write_bytes((mnist_dir / name).read_bytes()[:5000])
    shutil.copy(mnist_dir / "t10k-labels-idx1-ubyte.gz", damaged)
    assert evaluate_main(["--data", str(damaged), "--frames", "1", "--artifacts", str(exported)]) == 2
    assert str(damaged / name) in capsys.readouterr().err


def test_synthetic_frames_from_a_damaged_mnist_are_an_error_naming_the_file(exported, mnist_dir, tmp_path, capsys,
                                                                            monkeypatch):
    name = "t10k-images-idx3-ubyte.gz"
    (tmp_path / name).write_bytes((mnist_dir / name).read_bytes()[:5000])
    shutil.copy(mnist_dir / "t10k-labels-idx1-ubyte.gz", tmp_path)
    monkeypatch.setenv("MNIST_DIR", str(tmp_path))
    assert edge_main(["run", "--source", "synthetic", "--headless", "--max-frames", "1", "--artifacts",
                      str(exported)]) == 2
    err = capsys.readouterr().err
    assert "synthetic frames need MNIST's test digits" in err and str(tmp_path / name) in err


def test_selftest_finds_the_golden_crops_from_the_source_tree_and_checks_the_runtime(exported, capsys, monkeypatch):
    from edge import selftest

    monkeypatch.chdir(GOLDEN.parent.parent)  # the repository's root: tests/golden, not golden
    assert selftest.main(["--model", str(exported / "model_int8.tflite")]) in (0, 1)
    assert "crops read correctly" in capsys.readouterr().out
    assert selftest.main(["--model", str(exported / "model_int8.tflite"), "--runtime", "onnxruntime"]) == 2
    err = capsys.readouterr().err
    assert "'onnxruntime' cannot run a .tflite model" in err and "ai_edge_litert" in err


def test_a_manifest_without_artifacts_or_a_folder_without_one_says_what_to_do(exported, tmp_path, capsys):
    d = tmp_path / "art"
    d.mkdir()
    assert edge_main(["classify", str(GOLDEN / "3_0.png"), "--artifacts", str(d)]) == 2
    err = capsys.readouterr().err
    assert "no manifest; run `make export` first, or pass --model FILE" in err
    mf = json.loads((exported / "manifest.json").read_text())
    mf["artifacts"] = []
    (d / "manifest.json").write_text(json.dumps(mf))
    assert edge_main(["classify", str(GOLDEN / "3_0.png"), "--artifacts", str(d)]) == 2
    assert "no artifact 'tflite_int8' (it lists none); re-run `make export`" in capsys.readouterr().err


def test_parity_with_a_damaged_keras_model_is_an_error_not_a_traceback(exported, mnist_dir, tmp_path, capsys):
    from export import parity

    bad = tmp_path / "cut.keras"
    bad.write_bytes((exported / "model.keras").read_bytes()[:5000])
    code = parity.main(["--artifacts", str(exported), "--data", str(mnist_dir), "--keras", str(bad)])
    assert code == 2 and f"{bad}: not a Keras model" in capsys.readouterr().err


@pytest.mark.parametrize("module, argv, says", [
    ("train", ["--epochs", "0"], "not an epoch count"),
    ("train", ["--batch-size", "-5"], "not a batch size"),
    ("train", ["--seed", "-1"], "not a seed"),
    ("train", ["--threads", "-1"], "not a thread count"),
    ("train", ["--out", "{file}"], "is a file; it must be a folder"),
    ("export", ["--seed", "-1"], "not a seed"),
    ("export", ["--calib", "0"], "not an image count"),
    ("export", ["--out", "{file}"], "is a file; it must be a folder"),
    ("benchmarks", ["--test-images", "0"], "not an image count"),
    ("benchmarks", ["--out", "{file}"], "is a file; it must be a folder"),
    ("edge.bundle", ["--out", "{file}"], "is a file; it must be a folder"),
])
def test_pipeline_flags_out_of_range_are_usage_errors_before_any_work(module, argv, says, tmp_path, capsys):
    import importlib

    f = tmp_path / "a_file"
    f.write_text("")
    main = importlib.import_module(module if module == "edge.bundle" else f"{module}.__main__").main
    with pytest.raises(SystemExit) as e:
        main([a.format(file=f) for a in argv])
    assert e.value.code == 2 and says in capsys.readouterr().err


def test_parity_fails_a_manifest_with_nothing_to_gate(exported, mnist_dir, tmp_path, capsys):
    from export import parity

    d = tmp_path / "art"
    shutil.copytree(exported, d)
    mf = json.loads((d / "manifest.json").read_text())
    mf["artifacts"] = []
    (d / "manifest.json").write_text(json.dumps(mf))
    assert parity.main(["--artifacts", str(d), "--data", str(mnist_dir)]) == 1
    assert "lists no artifacts, so nothing was gated" in capsys.readouterr().err


def test_benchmarks_on_a_damaged_mnist_is_an_error_naming_the_file(exported, mnist_dir, tmp_path, capsys):
    from benchmarks.__main__ import main as bench_main

    name = "t10k-labels-idx1-ubyte.gz"
    shutil.copy(mnist_dir / "t10k-images-idx3-ubyte.gz", tmp_path)
    (tmp_path / name).write_bytes(b"not gzip")
    assert bench_main(["--quick", "--artifacts", str(exported), "--data", str(tmp_path),
                       "--out", str(tmp_path / "bench")]) == 2
    assert str(tmp_path / name) in capsys.readouterr().err
    assert not (tmp_path / "bench" / "bench.json").exists()


def test_benchmarks_find_mnist_in_the_keras_cache_as_the_other_stages_do(mnist, tmp_path, monkeypatch):
    from benchmarks.run import mnist_test_set

    (x_train, y_train), (x_test, y_test) = mnist
    (tmp_path / "datasets").mkdir()
    np.savez(tmp_path / "datasets" / "mnist.npz", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    monkeypatch.delenv("MNIST_DIR", raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    x, y = mnist_test_set(None)
    assert np.array_equal(x, x_test) and np.array_equal(y, y_test)


def test_export_says_what_a_folder_or_a_non_keras_file_is(tmp_path, capsys):
    from export.__main__ import main as export_main

    assert export_main(["--model", str(tmp_path)]) == 2
    assert f"{tmp_path}: is a folder; pass the model file in it, e.g. {tmp_path / 'model.keras'}" in capsys.readouterr().err
    fake = tmp_path / "model.keras"
    fake.write_text("not a model")
    assert export_main(["--model", str(fake)]) == 2
    assert f"{fake}: not a Keras model" in capsys.readouterr().err

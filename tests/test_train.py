"""`python -m train` end to end on real MNIST, and its repeatability."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from train.__main__ import main  # noqa: E402

EXPECTED = ["model.keras", "train_config.json", "history.json", "metrics.json", "training_curves.png",
            "confusion_matrix.png"]


def test_fast_run_writes_every_artifact(fast_run):
    for name in EXPECTED:
        assert (fast_run / name).stat().st_size > 0, name
    assert not [p for p in fast_run.iterdir() if ".tmp" in p.name], "temporary files left behind"
    metrics = json.loads((fast_run / "metrics.json").read_text())
    assert metrics["test_accuracy"] > 0.90
    cfg = json.loads((fast_run / "train_config.json").read_text())
    assert cfg["model"] == "edge" and cfg["fast"] is True and cfg["seed"] == 3
    assert len(cfg["data_sha256"]["x_train"]) == 64 and cfg["contract_version"] >= 1
    assert cfg["flagged_ones"] == 0 and cfg["train_size"] == 6000  # --fast: 6,000 images, nothing added
    assert (fast_run / "training_curves.png").read_bytes()[:4] == b"\x89PNG"
    hist = json.loads((fast_run / "history.json").read_text())
    assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(hist)


def test_same_seed_same_result(fast_run, tmp_path, mnist_dir):
    assert main(["--fast", "--seed", "3", "--out", str(tmp_path), "--data", str(mnist_dir)]) == 0
    a = json.loads((fast_run / "metrics.json").read_text())
    b = json.loads((tmp_path / "metrics.json").read_text())
    assert a["test_accuracy"] == b["test_accuracy"]
    assert a["confusion_matrix"] == b["confusion_matrix"]
    assert json.loads((fast_run / "history.json").read_text()) == json.loads((tmp_path / "history.json").read_text())


def test_bad_data_dir_is_a_clear_error(tmp_path, capsys):
    assert main(["--fast", "--out", str(tmp_path / "o"), "--data", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert "missing" in err and "does not exist" in err
    assert not (tmp_path / "o" / "model.keras").exists()


def test_help_shows_defaults(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "default: edge" in out and "--fast" in out


def test_detector_crops_are_labelled_contract_images_and_seeded(mnist):
    from train.crops import detector_crops

    (x, y), _ = mnist
    x, y = x[:2000], y[:2000]
    cx, cy = detector_crops(x, y, 40, seed=5, workers=1)
    assert cx.shape == (40, 28, 28) and cx.dtype == np.uint8 and cy.shape == (40,)
    assert set(cy.tolist()) <= set(range(10)) and len(set(cy.tolist())) >= 5
    for c in cx:  # each crop went through the preprocessing contract: a 20-px box
        ys, xs = np.nonzero(c)
        assert max(np.ptp(ys), np.ptp(xs)) + 1 == 20
    again_x, again_y = detector_crops(x, y, 40, seed=5, workers=1)
    assert np.array_equal(cx, again_x) and np.array_equal(cy, again_y)


def test_negative_detector_crops_is_refused(capsys):
    with pytest.raises(SystemExit):
        main(["--detector-crops", "-1"])
    assert "argument --detector-crops: '-1' is not an image count (0 or more)" in capsys.readouterr().err


def test_flagged_ones_are_added_to_training(tmp_path, mnist_dir):
    """--flagged-ones adds flagged copies of that fraction of the ones (train.flags), and only to training."""
    assert main(["--fast", "--seed", "3", "--flagged-ones", "0.5", "--out", str(tmp_path), "--data", str(mnist_dir)]) == 0
    cfg = json.loads((tmp_path / "train_config.json").read_text())
    assert cfg["flagged_ones"] == 0.5
    assert cfg["train_size"] == 6000 + 300  # --fast's 6,000 are stratified: 600 ones, half of them again
    assert cfg["val_size"] == 1000


@pytest.mark.parametrize("frac", ["-0.1", "1.5"])
def test_flagged_ones_out_of_range_is_refused(frac, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["--fast", "--flagged-ones", frac, "--out", str(tmp_path)])
    assert e.value.code == 2 and "between 0 and 1" in capsys.readouterr().err


def test_help_needs_no_tensorflow():
    """--help lists the zoo without importing Keras (TensorFlow's start-up is ~10 s on a small machine)."""
    import subprocess
    import sys

    from train import models
    from train.__main__ import MODELS

    assert list(MODELS) == list(models.BUILDERS)
    code = ("import sys; from train.__main__ import main\n"
            "try: main(['--help'])\nexcept SystemExit: pass\n"
            "sys.exit(3 if 'tensorflow' in sys.modules or 'keras' in sys.modules else 0)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "--model {mlp,cnn_baseline,cnn_large,edge}" in r.stdout


def test_motion_blur_streaks_a_dot_into_a_short_line():
    """A dot comes out a line MOTION_MIN-MOTION_MAX px long in some direction, peak 1, seeded."""
    import tensorflow as tf

    from train.augment import MOTION_MAX, motion_blur

    x = np.zeros((16, 28, 28, 1), np.float32)
    x[:, 14, 14, 0] = 1.0
    seed = tf.constant([4, 2], tf.int64)
    out = motion_blur(tf.constant(x), seed).numpy()
    assert out.shape == x.shape and out.min() >= 0.0
    assert np.allclose(out.max(axis=(1, 2, 3)), 1.0)
    for img in out[..., 0]:
        ys, xs = np.nonzero(img > 0)
        pts = np.stack([ys, xs], 1).astype(np.float32)
        spread = np.linalg.svd(pts - pts.mean(0), compute_uv=False) / np.sqrt(len(pts))
        assert 1.5 <= max(np.ptp(ys), np.ptp(xs)) + 1 <= MOTION_MAX + 2  # a streak, not a dot or a blot
        assert spread[0] > 1.5 * spread[1]  # longer than it is wide
    assert np.array_equal(out, motion_blur(tf.constant(x), seed).numpy())
    dirs = {tuple(np.round(np.linalg.svd(np.stack(np.nonzero(i > 0.5), 1) - np.stack(np.nonzero(i > 0.5), 1).mean(0))[2][0], 1))
            for i in out[..., 0] if np.count_nonzero(i > 0.5) > 1}
    assert len(dirs) > 3  # each image its own direction


def test_motion_blur_share_of_the_batch(mnist):
    """augment_batch(motion=0) is the augmentation without streaks, draw for draw; motion=1 streaks
    every image, which stays a digit image (values in [0, 1], ink left)."""
    import tensorflow as tf

    from train.augment import augment_batch

    (x, _), _ = mnist
    xb = tf.constant(x[:64, ..., None].astype(np.float32) / 255.0)
    seed = tf.constant([1, 7], tf.int64)
    plain = augment_batch(xb, seed).numpy()
    assert np.array_equal(plain, augment_batch(xb, seed, motion=0.0).numpy())
    streaked = augment_batch(xb, seed, motion=1.0).numpy()
    assert not np.isclose(streaked, plain).all(axis=(1, 2, 3)).any()
    assert streaked.min() >= 0.0 and streaked.max() <= 1.0 and (streaked.max(axis=(1, 2, 3)) > 0.8).all()
    half = augment_batch(xb, seed, motion=0.5).numpy()
    same = np.isclose(half, plain).all(axis=(1, 2, 3))
    assert 10 < same.sum() < 54  # about half left as they were


@pytest.mark.parametrize("frac", ["-0.1", "1.5"])
def test_motion_blur_out_of_range_is_refused(frac, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["--fast", "--motion-blur", frac, "--out", str(tmp_path)])
    assert e.value.code == 2 and "between 0 and 1" in capsys.readouterr().err


@pytest.mark.parametrize("size", [2, 3])
def test_max_pool_with_the_batch_as_channels_is_tf_max_pool(size):
    import tensorflow as tf

    from train.augment import _max_pool

    x = tf.random.stateless_uniform((5, 28, 28, 1), seed=[3, size])
    assert np.array_equal(_max_pool(x, size).numpy(), tf.nn.max_pool2d(x, size, 1, "SAME").numpy())
    assert np.array_equal(-_max_pool(-x, size).numpy(), -tf.nn.max_pool2d(-x, size, 1, "SAME").numpy())


def test_make_train_passes_train_flags_on():
    """`make all TRAIN_FLAGS="--motion-blur 0.3"` trains with them; without, the command is as before."""
    import shutil
    import subprocess
    from pathlib import Path

    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    root = Path(__file__).resolve().parents[1]

    def train_line(*args):
        out = subprocess.run(["make", "-n", "train", *args], cwd=root, capture_output=True, text=True, check=True).stdout
        return [ln for ln in out.splitlines() if "-m train " in ln][-1].split()

    assert train_line("TRAIN_FLAGS=--motion-blur 0.3", "ARTIFACTS=elsewhere")[-4:] == ["--out", "elsewhere", "--motion-blur", "0.3"]
    assert train_line()[-2:] == ["--out", "artifacts"]

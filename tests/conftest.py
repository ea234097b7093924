"""Shared fixtures: real MNIST from $MNIST_DIR, and one small model trained once per session."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parent.parent


def _mnist_dir() -> Path | None:
    d = os.environ.get("MNIST_DIR")
    return Path(d).resolve() if d else None


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """The real MNIST folder. In CI (CI set) a missing MNIST_DIR is a failure, not a skip."""
    d = _mnist_dir()
    if d is None or not d.is_dir():
        msg = f"MNIST_DIR is not set to a folder with the MNIST IDX files (got {d})"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return d


@pytest.fixture(scope="session")
def mnist(mnist_dir):
    from train.data import load_mnist

    return load_mnist(mnist_dir)


@pytest.fixture(scope="session")
def fast_run(tmp_path_factory, mnist_dir):
    """One `python -m train --fast` run of the default model, shared by every test that needs a model."""
    from train.__main__ import main

    out = tmp_path_factory.mktemp("fast_run")
    assert main(["--fast", "--seed", "3", "--out", str(out), "--data", str(mnist_dir)]) == 0
    return out


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def exported(fast_run, mnist_dir):
    """The fast model exported to every format (manifest.json beside model.keras)."""
    from export.__main__ import main

    assert main(["--model", str(fast_run / "model.keras"), "--calib", "200", "--data", str(mnist_dir)]) == 0
    return fast_run


# -- Raspberry Pi bundle fixtures (tests/test_pi_*.py, tests/test_deploy.py) ---------------------
@pytest.fixture(scope="session")
def pi_artifacts(exported, tmp_path_factory):
    """The fast model's TFLite artifacts with a passing parity.json (the gate itself is tested elsewhere)."""
    from pi_helpers import pi_artifacts as copy_tflite, write_parity

    d = copy_tflite(exported, tmp_path_factory.mktemp("pi_artifacts"))
    write_parity(d, passed=True)
    return d


@pytest.fixture(scope="session")
def pi_crops(pi_artifacts, mnist, tmp_path_factory):
    """Golden crops made from MNIST test digits that both bundled models read correctly."""
    from pi_helpers import make_crops

    (_, _), (x, y) = mnist
    models = [pi_artifacts / "model_int8.tflite", pi_artifacts / "model_float32.tflite"]
    return make_crops(tmp_path_factory.mktemp("pi_crops"), x[:400], y[:400], models)


@pytest.fixture(scope="session")
def pi_bundle(pi_artifacts, pi_crops, tmp_path_factory):
    """One built bundle (.tar.gz) shared by the Pi tests."""
    from edge.bundle import build

    return build(pi_artifacts, tmp_path_factory.mktemp("dist"), pi_crops, log=lambda *a: None)

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

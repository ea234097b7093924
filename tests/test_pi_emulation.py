"""The Pi bundle on emulated Raspberry Pi OS bookworm arm64 (qemu-user): self-test + int8 outputs vs x86.

Cold (no cache) this builds an arm64 rootfs and fetches aarch64 wheels (~1 min, ~600 MB under
~/.cache/mnist-edge-pi or $MNIST_EDGE_PI_CACHE); warm it takes ~30 s. Skipped, with the reason,
when qemu-user/debootstrap are missing and cannot be installed (not root).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EMULATE = ROOT / "edge" / "pi" / "emulate.py"


def _tools_or_skip():
    missing = [t for t in ("qemu-aarch64-static", "debootstrap", "dpkg-deb") if shutil.which(t) is None]
    if missing and (os.geteuid() != 0 or shutil.which("apt-get") is None):
        pytest.skip(f"needs {', '.join(missing)} (apt-get install qemu-user-static debootstrap) and cannot install "
                    "them without root")


def test_bundle_runs_on_emulated_pi_with_both_interpreters(pi_bundle, tmp_path):
    _tools_or_skip()
    report_file = tmp_path / "emulation.json"
    r = subprocess.run([sys.executable, str(EMULATE), "--bundle", str(pi_bundle), "--json", str(report_file)],
                       capture_output=True, text=True, timeout=900)
    print(r.stdout[-3000:], r.stderr[-3000:])
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    report = json.loads(report_file.read_text())
    assert report["passed"] and report["qemu_cpu"] == "cortex-a72"
    assert set(report["variants"]) == {"litert", "tflite-runtime"}
    for name, v in report["variants"].items():
        assert all(v["selftest"].values()) and len(v["selftest"]) == 2, name
        assert v["reference_bit_identical"] is True, name
        assert v["default_max_lsb_vs_x86_default"] <= 8 or v["default_max_lsb_vs_x86_reference"] <= 8, name

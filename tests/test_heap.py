"""edge.heap: the runner's process keeps freed frame buffers for the next frame."""

import os
import platform
import subprocess
import sys

import pytest

from edge import heap

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"

# A frame's worth of temporaries the size the detector makes (a grey frame, int32 labels, a colour
# frame), freed and made again; prints the page faults of 20 such frames after a first one.
FRAMES = """
import resource, sys
import numpy as np
if sys.argv[1] == "keep":
    from edge import heap
    assert heap.keep_freed_memory() == "set"
def frame():
    a = np.full((480, 640), 7, np.uint8)
    b = a.astype(np.int32)
    c = np.full((480, 640, 3), 1, np.uint8)
    d = b + 1
    del a, b
    e = np.ones((480, 640), np.uint8)
    return int(c.sum() + d.sum() + e.sum())
frame()
r0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    frame()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - r0)
"""


def _faults(mode: str) -> int:
    env = {k: v for k, v in os.environ.items() if k not in heap.USER_SETTINGS}
    r = subprocess.run([sys.executable, "-c", FRAMES, mode], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    return int(r.stdout.split()[-1])


@pytest.mark.skipif(not GLIBC, reason="edge.heap tunes glibc's malloc only; this C library is not glibc")
def test_frame_buffers_are_reused_instead_of_faulted_in_again():
    kept, default = _faults("keep"), _faults("default")
    # glibc's defaults hand each frame's buffers back to the kernel: hundreds of faults a frame.
    assert default > 20 * 100, default
    assert kept < 100, (kept, default)


def test_the_users_own_malloc_settings_stand(monkeypatch):
    monkeypatch.setattr(heap, "_state", None)
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "1000000")
    assert heap.keep_freed_memory() == "user settings: MALLOC_TRIM_THRESHOLD_"
    monkeypatch.setattr(heap, "_state", None)
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_")
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.pthread.rseq=0")  # tunables, but none of malloc's
    assert heap.keep_freed_memory() in ("set", "not glibc")


def test_other_c_libraries_are_left_alone(monkeypatch):
    for name in heap.USER_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(heap, "_state", None)
    monkeypatch.setattr(heap.platform, "libc_ver", lambda: ("", ""))
    assert heap.keep_freed_memory() == "not glibc"
    monkeypatch.setattr(heap, "_state", None)
    monkeypatch.setattr(heap.platform, "system", lambda: "Darwin")
    assert heap.keep_freed_memory() == "not glibc"


def test_the_cli_keeps_freed_memory(monkeypatch, capsys):
    from edge.__main__ import main

    calls = []
    monkeypatch.setattr(heap, "keep_freed_memory", lambda: calls.append(1) or "set")
    with pytest.raises(SystemExit):
        main(["run", "--help"])  # argparse exits before any work: no call
    assert calls == []
    assert main(["classify", "/nonexistent/image.png", "--model", "/nonexistent/model.tflite"]) != 0
    assert calls == [1]

"""Keep the frame-sized buffers the pipeline frees, instead of handing them back to the OS each frame.

Reading a 640x480 frame makes dozens of temporary arrays of 0.3-1.2 MB (the grey frame, the ink
map, thresholds, component labels). glibc's malloc returns such blocks to the kernel when they are
freed (as unmapped blocks, or by trimming the top of its heap), so the next frame's arrays start on
fresh pages, and every first touch of a page is a fault: 575 minor faults a frame here (2.3 MB of
pages), 1.2-2 ms of a 10-digit frame's 8-10 under KVM (``benchmarks``' frames through
``Reader.read``, one core). With a fixed mmap threshold of ``MMAP_THRESHOLD`` and a trim threshold
of ``TRIM_THRESHOLD`` the freed blocks stay in the heap and are reused: one fault a frame, and
peak memory 1-2 MB more (the next frame needs the same buffers again).

:func:`keep_freed_memory` sets both, once per process: ``python -m edge`` calls it, and so does
``benchmarks`` before it times the pipeline (it measures what the runner does). A program that
uses ``edge.detect.Reader`` itself can call it too. It does nothing on a C library other than
glibc (macOS, Windows, musl) or when the user has set malloc's own environment variables (their
choice stands).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform

MMAP_THRESHOLD = 32 << 20  # blocks under this come from the heap (glibc's own dynamic ceiling)
TRIM_THRESHOLD = 128 << 20  # free memory at the heap's top is given back to the OS only past this
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt's parameter numbers (malloc.h)
USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "GLIBC_TUNABLES")

_state: str | None = None


def keep_freed_memory() -> str:
    """Set glibc malloc's thresholds (see the module's doc) once per process. Returns what was done:
    ``"set"`` (now or by an earlier call), or why not (``"not glibc"``, ``"user settings: ..."``,
    ``"mallopt failed"``)."""
    global _state
    if _state is None:
        _state = _apply()
    return _state


def _apply() -> str:
    user = [k for k in USER_SETTINGS if k in os.environ and (k != "GLIBC_TUNABLES" or "malloc" in os.environ[k])]
    if user:
        return "user settings: " + ", ".join(user)
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return "not glibc"
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return "not glibc"
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    # The mmap threshold first: setting either one stops glibc adjusting both by itself.
    if mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) != 1 or mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) != 1:
        return "mallopt failed"
    return "set"

"""What the numbers were measured on: CPU, cores, OS, Python and package versions."""

from __future__ import annotations

import os
import platform
import sys
from importlib.metadata import PackageNotFoundError, version

PACKAGES = ("numpy", "ai-edge-litert", "tflite-runtime", "onnxruntime", "tensorflow", "tensorflow-cpu", "keras",
            "opencv-python", "opencv-python-headless", "matplotlib")


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Model", "Hardware", "cpu model"):
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


# Integer dot-product instructions: with them XNNPACK's (and onnxruntime's) int8 kernels take their
# fast path and an int8 model runs about 3x faster than float (measured on a Zen 4: README); without
# them int8 can be no faster than float, or slower (measured on an AVX2-only Zen 3). A Cortex-A72, the
# Raspberry Pi 4's, has none; a Cortex-A76, the Pi 5's, has the Arm dot product.
INT8_DOT = {
    "avx512_vnni": "AVX-512 VNNI",
    "avx_vnni": "AVX-VNNI",
    "amx_int8": "AMX-INT8",
    "asimddp": "Arm dot product",
    "i8mm": "Arm int8 matrix multiply",
}
# The vector instructions float and int8 kernels are built on, reported beside them.
SIMD = ("sse4_2", "avx2", "avx512f", "asimd")


def cpu_flags(path: str = "/proc/cpuinfo") -> set[str]:
    """The CPU's feature flags (x86 ``flags``, Arm ``Features``) from the first processor listed in
    ``path``; empty when there is no such file (not Linux) or no such line."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("flags", "Features"):
                    return set(value.split())
    except OSError:
        pass
    return set()


def int8_dot(flags: set[str]) -> list[str]:
    """The integer dot-product instruction sets among ``flags``, by name (see ``INT8_DOT``)."""
    return [name for flag, name in INT8_DOT.items() if flag in flags]


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def os_name() -> str:
    try:
        with open("/etc/os-release", encoding="utf-8") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return f"{platform.system()} {platform.release()}"


def package_versions() -> dict[str, str]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out


def host_info() -> dict:
    flags = cpu_flags()
    return {
        "cpu": cpu_model(),
        # None: the flags could not be read (not Linux), so nothing is known either way.
        "simd": [f for f in SIMD if f in flags] if flags else None,
        "int8_dot": int8_dot(flags) if flags else None,
        "cores": usable_cores(),
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "os": os_name(),
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "packages": package_versions(),
        "loadavg_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }

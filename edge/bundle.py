"""Build the Raspberry Pi bundle: ``dist/mnist-edge-pi-<version>.tar.gz``.

``python -m edge.bundle [--artifacts DIR] [--out dist] [--crops DIR]``

The bundle is one folder, ``mnist-edge-pi-<version>/``, holding

* ``edge/``: the runtime package (``.py`` files only; TensorFlow-free),
* ``artifacts/``: ``model_int8.tflite``, ``model_float32.tflite``, the export
  ``manifest.json`` and the ``parity.json`` that let them through the gate,
* ``golden/``: PNG digit crops and ``expected.json`` for the self-test,
* ``install.sh``, ``mnist-edge.service``, ``README-pi.md``,
  ``requirements-pi.txt`` and ``requirements-pi-tflite-runtime.txt``
  (templates from ``edge/pi/``),
* ``manifest.json``: bytes and sha256 of every other file in the bundle;
  ``install.sh`` checks them all before it installs anything.

It refuses to build when the parity gate has not passed (``DIR/parity.json``
missing or ``"passed"`` not true), when a model's sha256 differs from the
export manifest, or when the golden crops are missing or misread here.
The archive is deterministic (sorted entries, fixed owner and mtime) and is
written under a temporary name and renamed, so ``dist/`` never holds half a
bundle.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import sys
import tarfile
import time
from pathlib import Path

from . import contract
from .clihelp import Help, out_folder
from .fsutil import atomic_path, read_json
from .manifest import MANIFEST, load_manifest
from .runtime import ModelError

NAME = "mnist-edge-pi"
EDGE_DIR = Path(__file__).resolve().parent
TEMPLATES = EDGE_DIR / "pi"
# (template in edge/pi/, name in the bundle, executable)
TEMPLATE_FILES = (
    ("install.sh", "install.sh", True),
    ("mnist-edge.service", "mnist-edge.service", False),
    ("README-pi.md", "README-pi.md", False),
    ("requirements-pi.txt", "requirements-pi.txt", False),
    ("requirements-pi-tflite-runtime.txt", "requirements-pi-tflite-runtime.txt", False),
)
MODEL_KEYS = ("tflite_int8", "tflite_float32")
DEFAULT_CROPS = "tests/golden"
BUNDLE_SCHEMA = 1


class BundleError(RuntimeError):
    """The inputs are not fit to ship; the message says which file and what to do."""


def project_version() -> str:
    """The project's version: installed metadata, else pyproject.toml beside edge/, else 0.1.0."""
    try:
        from importlib.metadata import version

        return version("mnist-edge")
    except Exception:  # noqa: BLE001
        pass
    try:
        import tomllib

        with open(EDGE_DIR.parent / "pyproject.toml", "rb") as f:
            return str(tomllib.load(f)["project"]["version"])
    except Exception:  # noqa: BLE001
        return "0.1.0"


def check_parity(artifacts: Path) -> dict:
    path = artifacts / "parity.json"
    if not path.is_file():
        raise BundleError(f"{path}: missing; run the accuracy gate first (`make parity`), then bundle")
    report = read_json(path, BundleError, "re-run `make parity`")
    if not isinstance(report, dict) or report.get("passed") is not True:
        raise BundleError(
            f"{path}: the parity gate did not pass (\"passed\": {json.dumps(report.get('passed') if isinstance(report, dict) else None)}); "
            "fix the model and re-run `make parity` before bundling"
        )
    return report


def check_artifacts(artifacts: Path, parity: dict):
    """Verify every file the export manifest lists; return (manifest, the two TFLite artifacts)."""
    try:
        manifest = load_manifest(artifacts)
        for a in manifest.artifacts:
            a.verify()
        models = [manifest.get(k) for k in MODEL_KEYS]
    except ModelError as e:
        raise BundleError(str(e)) from None
    gated = {a.get("key"): a for a in parity.get("artifacts", []) if isinstance(a, dict)}
    for a in models:
        g = gated.get(a.key)
        if g is None:
            raise BundleError(f"{artifacts / 'parity.json'}: does not cover {a.file}; re-run `make parity`")
        # The file's sha256 where the report has it: a model trained again is another file of
        # the same size, and a gate report from before it must not let it through.
        if g.get("sha256") and g["sha256"] != a.entry.get("sha256"):
            raise BundleError(
                f"{artifacts / 'parity.json'}: gated another {a.file} (sha256 {str(g['sha256'])[:12]}…, the manifest "
                f"lists {str(a.entry.get('sha256'))[:12]}…): it is from before the last export; re-run `make parity`"
            )
        if "bytes" in g and g["bytes"] != a.entry["bytes"]:
            raise BundleError(
                f"{artifacts / 'parity.json'}: gated a {g['bytes']}-byte {a.file}, the manifest lists "
                f"{a.entry['bytes']} bytes; re-run `make parity` on the current export"
            )
    return manifest, models


def collect_crops(crops: Path) -> dict[str, bytes]:
    if not crops.is_dir():
        raise BundleError(f"{crops}: no golden crops folder; pass --crops DIR (PNG files + expected.json)")
    exp = crops / "expected.json"
    if not exp.is_file():
        raise BundleError(f"{exp}: missing; it maps each crop's file name to its label, e.g. {{\"a.png\": \"7\"}}")
    pngs = sorted(p for p in crops.iterdir() if p.suffix.lower() == ".png" and p.is_file())
    if not pngs:
        raise BundleError(f"{crops}: no PNG crops; the Pi self-test needs at least one")
    files = {f"golden/{p.name}": p.read_bytes() for p in pngs}
    files["golden/expected.json"] = exp.read_bytes()
    return files


def edge_sources() -> dict[str, bytes]:
    """The edge package's .py files (edge/pi/ holds host-side templates and tools, not runtime code)."""
    files = {}
    for p in sorted(EDGE_DIR.rglob("*.py")):
        rel = p.relative_to(EDGE_DIR)
        if rel.parts[0] in ("pi", "__pycache__") or "__pycache__" in rel.parts:
            continue
        files[f"edge/{rel.as_posix()}"] = p.read_bytes()
    if "edge/__init__.py" not in files:
        raise BundleError(f"{EDGE_DIR}/__init__.py: missing; the edge package is incomplete")
    return files


def templates() -> dict[str, tuple[bytes, bool]]:
    out = {}
    for src, dst, exe in TEMPLATE_FILES:
        p = TEMPLATES / src
        if not p.is_file():
            raise BundleError(f"{p}: missing template; restore it from git")
        out[dst] = (p.read_bytes(), exe)
    return out


def selftest_here(model: Path, crops: Path) -> str:
    """Run the self-test on this machine before shipping; '' if no interpreter is installed here."""
    from . import runtime, selftest

    if not runtime.available_runtimes("tflite"):
        return ""
    buf = io.StringIO()
    try:
        report = selftest.run(model, crops, out=buf)
    except (selftest.SelftestError, ModelError) as e:
        raise BundleError(str(e)) from None
    if not report["passed"]:
        first = buf.getvalue().strip().splitlines()[0]
        raise BundleError(f"{crops}: the golden crops fail the self-test on this machine ({first}); fix the crops or the model")
    return buf.getvalue().strip().splitlines()[-1]


def build(artifacts: str | os.PathLike, out: str | os.PathLike, crops: str | os.PathLike, *,
          selftest: bool = True, log=print) -> Path:
    artifacts, out, crops = Path(artifacts), Path(out), Path(crops)
    if not artifacts.is_dir():
        raise BundleError(f"{artifacts}: no such artifacts folder; run `make all` or pass --artifacts DIR")
    parity = check_parity(artifacts)
    manifest, models = check_artifacts(artifacts, parity)
    version = project_version()
    top = f"{NAME}-{version}"

    files: dict[str, tuple[bytes, bool]] = {}
    for rel, data in edge_sources().items():
        files[rel] = (data, False)
    for a in models:
        files[f"artifacts/{a.file}"] = (a.path.read_bytes(), False)
    files[f"artifacts/{MANIFEST}"] = (manifest.path.read_bytes(), False)
    files["artifacts/parity.json"] = ((artifacts / "parity.json").read_bytes(), False)
    for rel, data in collect_crops(crops).items():
        files[rel] = (data, False)
    files.update(templates())
    if selftest:
        line = selftest_here(models[0].path, crops)
        log(f"bundle: {line}" if line else "bundle: no TFLite interpreter here; the self-test runs on the Pi only")

    epoch = int(os.environ.get("SOURCE_DATE_EPOCH", time.time()))
    bundle_manifest = {
        "schema": BUNDLE_SCHEMA,
        "name": NAME,
        "version": version,
        "contract_version": contract.CONTRACT_VERSION,
        "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch)),
        "default_model": f"artifacts/{models[0].file}",
        "export_manifest": f"artifacts/{MANIFEST}",
        "files": {
            rel: {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()} for rel, (data, _) in sorted(files.items())
        },
    }
    files[MANIFEST] = ((json.dumps(bundle_manifest, indent=2) + "\n").encode(), False)

    dest = out / f"{top}.tar.gz"
    with atomic_path(dest) as tmp:
        _write_tar(tmp, top, files, epoch)
    return dest


def _write_tar(path: Path, top: str, files: dict[str, tuple[bytes, bool]], mtime: int) -> None:
    def info(name: str, *, size: int = 0, mode: int = 0o644, kind=tarfile.REGTYPE) -> tarfile.TarInfo:
        ti = tarfile.TarInfo(name)
        ti.size, ti.mode, ti.type, ti.mtime = size, mode, kind, mtime
        ti.uid = ti.gid = 0
        ti.uname = ti.gname = ""
        return ti

    dirs = {top}
    for rel in files:
        parts = rel.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            dirs.add(f"{top}/{'/'.join(parts[:i])}")
    with open(path, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=mtime) as gz, \
            tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for d in sorted(dirs):
            tar.addfile(info(d, mode=0o755, kind=tarfile.DIRTYPE))
        for rel, (data, exe) in sorted(files.items()):
            tar.addfile(info(f"{top}/{rel}", size=len(data), mode=0o755 if exe else 0o644), io.BytesIO(data))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m edge.bundle",
        description="Build dist/mnist-edge-pi-<version>.tar.gz for a Raspberry Pi (refuses unless the parity gate passed).",
        formatter_class=Help,
    )
    p.add_argument("--artifacts", default="artifacts", metavar="DIR", help="export folder with manifest.json and parity.json")
    p.add_argument("--out", type=out_folder("folder the .tar.gz goes into"), default="dist", metavar="DIR", help="where the .tar.gz goes")
    p.add_argument("--crops", default=DEFAULT_CROPS, metavar="DIR", help="golden crops for the self-test (PNG files + expected.json)")
    p.add_argument("--no-selftest", action="store_true", help="do not run the self-test on this machine before bundling")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        dest = build(args.artifacts, args.out, args.crops, selftest=not args.no_selftest)
    except BundleError as e:
        print(f"bundle: error: {e}", file=sys.stderr)
        return 1
    print(f"bundle: wrote {dest} ({dest.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

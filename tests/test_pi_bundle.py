"""The Raspberry Pi bundle: gated on parity, complete, checksummed; install.sh rejects a tampered bundle."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from edge.bundle import main as bundle_main

ROOT = Path(__file__).resolve().parent.parent


def _copy(src: Path, tmp_path: Path) -> Path:
    d = tmp_path / "art"
    shutil.copytree(src, d)
    return d


def _bundle(art, crops, out, capsys):
    rc = bundle_main(["--artifacts", str(art), "--out", str(out), "--crops", str(crops)])
    return rc, capsys.readouterr()


def test_help_shows_defaults(capsys):
    with pytest.raises(SystemExit) as e:
        bundle_main(["--help"])
    assert e.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "(default: artifacts)" in out and "(default: dist)" in out and "--crops" in out


@pytest.mark.parametrize("parity", [None, {"passed": False}, {"passed": "true"}])
def test_bundle_refuses_without_passing_parity(pi_artifacts, pi_crops, tmp_path, capsys, parity):
    art = _copy(pi_artifacts, tmp_path)
    if parity is None:
        (art / "parity.json").unlink()
    else:
        (art / "parity.json").write_text(json.dumps(parity))
    rc, cap = _bundle(art, pi_crops, tmp_path / "dist", capsys)
    assert rc != 0
    err = cap.err.strip()
    assert len(err.splitlines()) == 1 and "parity.json" in err and "make parity" in err, err
    assert not (tmp_path / "dist").exists() or not any((tmp_path / "dist").iterdir())


def test_bundle_refuses_a_model_that_changed_since_export(pi_artifacts, pi_crops, tmp_path, capsys):
    art = _copy(pi_artifacts, tmp_path)
    p = art / "model_int8.tflite"
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, different sha256
    p.write_bytes(bytes(data))
    rc, cap = _bundle(art, pi_crops, tmp_path / "dist", capsys)
    err = cap.err.strip()
    assert rc != 0 and len(err.splitlines()) == 1
    assert "model_int8.tflite" in err and "sha256" in err and "make export" in err, err


def test_bundle_refuses_a_gate_report_from_before_the_last_export(pi_artifacts, pi_crops, tmp_path, capsys):
    art = _copy(pi_artifacts, tmp_path)
    # Trained and exported again: a model of the same size, listed in the manifest with its own
    # sha256, and the parity.json of the model before it still beside it.
    p = art / "model_int8.tflite"
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0xFF
    p.write_bytes(bytes(data))
    m = json.loads((art / "manifest.json").read_text())
    for a in m["artifacts"]:
        if a["file"] == p.name:
            a["sha256"] = hashlib.sha256(data).hexdigest()
    (art / "manifest.json").write_text(json.dumps(m))
    rc, cap = _bundle(art, pi_crops, tmp_path / "dist", capsys)
    err = cap.err.strip()
    assert rc != 0 and len(err.splitlines()) == 1
    assert "parity.json" in err and "model_int8.tflite" in err and "re-run `make parity`" in err, err


def test_bundle_refuses_missing_crops(pi_artifacts, tmp_path, capsys):
    rc, cap = _bundle(pi_artifacts, tmp_path / "nope", tmp_path / "dist", capsys)
    assert rc != 0 and "--crops" in cap.err and str(tmp_path / "nope") in cap.err


def test_bundle_contents_and_checksums(pi_bundle, pi_artifacts, pi_crops):
    assert pi_bundle.name.startswith("mnist-edge-pi-") and pi_bundle.name.endswith(".tar.gz")
    assert not [p for p in pi_bundle.parent.iterdir() if p != pi_bundle], "temporary files left in dist/"
    with tarfile.open(pi_bundle) as tar:
        members = {m.name: m for m in tar.getmembers()}
        top = pi_bundle.name[: -len(".tar.gz")]
        files = {n[len(top) + 1 :]: tar.extractfile(m).read() for n, m in members.items() if m.isfile()}
        assert all(n == top or n.startswith(top + "/") for n in members)
        assert members[f"{top}/install.sh"].mode & 0o111
    manifest = json.loads(files.pop("manifest.json"))
    # every other file is listed with its sha256 and size, and nothing else is
    assert set(manifest["files"]) == set(files)
    for rel, data in files.items():
        assert manifest["files"][rel] == {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}, rel
    # edge/: .py only, no caches, no host-side templates, never TensorFlow
    edge = [f for f in files if f.startswith("edge/")]
    assert "edge/runtime.py" in edge and "edge/selftest.py" in edge and "edge/contract.py" in edge
    assert all(f.endswith(".py") and "__pycache__" not in f and not f.startswith("edge/pi/") for f in edge)
    for f in edge:
        text = files[f].decode()
        assert "import tensorflow" not in text and "from tensorflow" not in text, f
    # the models are the exported ones, and the export manifest comes along
    for name in ("model_int8.tflite", "model_float32.tflite", "manifest.json", "parity.json"):
        assert files[f"artifacts/{name}"] == (pi_artifacts / name).read_bytes(), name
    assert json.loads(files["golden/expected.json"]) == json.loads((pi_crops / "expected.json").read_text())
    for name in ("install.sh", "mnist-edge.service", "README-pi.md", "requirements-pi.txt",
                 "requirements-pi-tflite-runtime.txt"):
        assert name in files, name
    reqs = files["requirements-pi.txt"].decode()
    assert "ai-edge-litert==" in reqs and "numpy==" in reqs and "opencv-python-headless==" in reqs
    tfl = files["requirements-pi-tflite-runtime.txt"].decode()
    assert "tflite-runtime==2.14.0" in tfl and "numpy==1." in tfl
    assert "python -m edge run --source 0 --headless" in files["mnist-edge.service"].decode()
    assert "python -m edge run --source 0 --headless" in files["README-pi.md"].decode()


def test_bundle_is_reproducible(pi_artifacts, pi_crops, tmp_path, monkeypatch):
    from edge.bundle import build

    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    a = build(pi_artifacts, tmp_path / "a", pi_crops, selftest=False, log=lambda *x: None)
    b = build(pi_artifacts, tmp_path / "b", pi_crops, selftest=False, log=lambda *x: None)
    assert a.read_bytes() == b.read_bytes()


def _unpack(bundle: Path, dest: Path) -> Path:
    with tarfile.open(bundle) as tar:
        tar.extractall(dest, filter="data")
    (top,) = dest.iterdir()
    return top


@pytest.mark.parametrize("victim", ["artifacts/model_int8.tflite", "edge/runtime.py", "golden/expected.json"])
def test_install_rejects_a_tampered_file_and_keeps_current(pi_bundle, tmp_path, victim):
    top = _unpack(pi_bundle, tmp_path / "unpacked")
    with open(top / victim, "ab") as f:
        f.write(b"\n# tampered\n")
    prefix = tmp_path / "prefix"
    (prefix / "releases" / "previous").mkdir(parents=True)
    os.symlink("releases/previous", prefix / "current")
    env = {**os.environ, "PREFIX": str(prefix), "WHEELS": str(tmp_path / "no-wheels-needed")}
    r = subprocess.run(["bash", str(top / "install.sh")], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    assert f"checksum FAILED {victim}:" in r.stderr, r.stderr
    assert os.readlink(prefix / "current") == "releases/previous"
    assert [p.name for p in (prefix / "releases").iterdir()] == ["previous"]


def test_install_rejects_unlisted_code(pi_bundle, tmp_path):
    top = _unpack(pi_bundle, tmp_path / "unpacked")
    (top / "edge" / "evil.py").write_text("import os\n")
    r = subprocess.run(["bash", str(top / "install.sh"), "--prefix", str(tmp_path / "p")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "edge/evil.py: not listed in manifest.json" in r.stderr, r.stderr

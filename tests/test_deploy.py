"""`python -m edge.deploy` against a real sshd on 127.0.0.1 (throwaway keys), installing offline from x86 wheels.

Skipped, with the reason, when not root (sshd must log in as a user other than the test's) or when
openssh-server is missing and cannot be installed. The x86 wheels of requirements-pi.txt are
downloaded once into ~/.cache/mnist-edge-pi/wheels-x86_64 (or $MNIST_EDGE_PI_CACHE); install.sh
itself then runs with --no-index (no network).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("MNIST_EDGE_PI_CACHE", Path.home() / ".cache" / "mnist-edge-pi"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _need_sshd() -> str:
    if os.geteuid() != 0:
        pytest.skip("the deploy test starts sshd and logs in as root: run as root (CI does)")
    if not (shutil.which("sshd") or Path("/usr/sbin/sshd").exists()) or not shutil.which("ssh"):
        if not shutil.which("apt-get"):
            pytest.skip("openssh-server/openssh-client missing and no apt-get to install them")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        r = subprocess.run(["apt-get", "install", "-y", "-q", "openssh-server", "openssh-client"], env=env,
                           capture_output=True, text=True, timeout=600)
        if r.returncode != 0:
            subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, timeout=600)
            r = subprocess.run(["apt-get", "install", "-y", "-q", "openssh-server", "openssh-client"], env=env,
                               capture_output=True, text=True, timeout=600)
        if r.returncode != 0:
            pytest.skip(f"could not apt-get install openssh-server: {r.stderr.strip().splitlines()[-1:]}")
    return shutil.which("sshd") or "/usr/sbin/sshd"


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    """A real sshd on 127.0.0.1:<free port>, key-only, and an ssh config file with the alias `pitest`."""
    sshd_bin = _need_sshd()
    d = tmp_path_factory.mktemp("sshd")
    for name in ("host_key", "id"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / name)], check=True)
    shutil.copy(d / "id.pub", d / "authorized_keys")
    port = _free_port()
    (d / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\nAuthorizedKeysFile {d}/authorized_keys\n"
        f"PidFile {d}/sshd.pid\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        "PubkeyAuthentication yes\nPermitRootLogin prohibit-password\nStrictModes no\nUsePAM no\n"
        "AcceptEnv none\nSubsystem sftp /usr/lib/openssh/sftp-server\n"
    )
    host_pub = (d / "host_key.pub").read_text().split()
    (d / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_pub[0]} {host_pub[1]}\n")
    (d / "ssh_config").write_text(
        f"Host pitest\n  HostName 127.0.0.1\n  Port {port}\n  User root\n  IdentityFile {d}/id\n"
        f"  IdentitiesOnly yes\n  UserKnownHostsFile {d}/known_hosts\n  StrictHostKeyChecking yes\n"
    )
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege-separation directory
    proc = subprocess.Popen([sshd_bin, "-D", "-e", "-f", str(d / "sshd_config")], stdout=subprocess.DEVNULL,
                            stderr=open(d / "sshd.log", "w"))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if proc.poll() is not None:
                pytest.fail(f"sshd exited: {(d / 'sshd.log').read_text()[-500:]}")
            time.sleep(0.1)
    yield d
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(scope="module")
def x86_wheels():
    """This machine's wheels of requirements-pi.txt (install.sh installs from them with --no-index)."""
    d = CACHE / "wheels-x86_64"
    req = ROOT / "edge" / "pi" / "requirements-pi.txt"
    stamp = d / (".complete-" + hashlib.sha256(req.read_bytes()).hexdigest()[:16])
    if not stamp.is_file():
        r = subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:", "-d", str(d),
                            "-r", str(req)], capture_output=True, text=True, timeout=600)
        if r.returncode != 0:
            pytest.skip(f"cannot fetch the x86 wheels of {req.name} from the package index: "
                        f"{r.stderr.strip().splitlines()[-1:]}")
        stamp.write_text("ok\n")
    return d


def _deploy(sshd, bundle, prefix, wheels, *extra):
    cmd = [sys.executable, "-m", "edge.deploy", "--host", "pitest", "--ssh-config", str(sshd / "ssh_config"),
           "--bundle", str(bundle), "--prefix", str(prefix), "--wheels", str(wheels),
           "--remote-dir", str(sshd / "remote"), *extra]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)


@pytest.fixture(scope="module")
def installed(sshd, pi_bundle, x86_wheels, tmp_path_factory):
    prefix = tmp_path_factory.mktemp("pi_home") / "mnist-edge"
    r = _deploy(sshd, pi_bundle, prefix, x86_wheels)
    return prefix, r


def test_deploy_installs_over_ssh_and_reports_the_selftest(installed):
    prefix, r = installed
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert "[pitest] install.sh: checksums OK" in r.stdout
    assert "[pitest] selftest: PASS" in r.stdout
    assert "deploy: pitest: installed, self-test PASS" in r.stdout
    current = prefix / "current"
    assert current.is_symlink() and os.readlink(current).startswith("releases/")
    assert (current / "venv" / "bin" / "python").exists() and (current / "edge" / "selftest.py").is_file()


def _rebuild(bundle: Path, dest: Path, edit) -> Path:
    """Unpack, let ``edit(top, manifest)`` change files (and optionally the manifest), repack."""
    work = dest / "work"
    with tarfile.open(bundle) as tar:
        tar.extractall(work, filter="data")
    (top,) = work.iterdir()
    manifest = json.loads((top / "manifest.json").read_text())
    edit(top, manifest)
    (top / "manifest.json").write_text(json.dumps(manifest, indent=2))
    out = dest / bundle.name
    with tarfile.open(out, "w:gz") as tar:
        tar.add(top, arcname=top.name)
    return out


def test_tampered_bundle_fails_naming_the_file_and_keeps_current(installed, sshd, pi_bundle, x86_wheels, tmp_path):
    prefix, first = installed
    assert first.returncode == 0
    before = os.readlink(prefix / "current")

    def tamper(top, manifest):
        with open(top / "edge" / "contract.py", "a") as f:
            f.write("\nBOX = 19\n")

    r = _deploy(sshd, _rebuild(pi_bundle, tmp_path, tamper), prefix, x86_wheels)
    assert r.returncode not in (0, 255), r.stdout[-2000:]
    assert "checksum FAILED edge/contract.py" in r.stdout, r.stdout[-2000:]
    assert "install FAILED" in r.stderr
    assert os.readlink(prefix / "current") == before


def test_misread_selftest_fails_install_and_keeps_current(installed, sshd, pi_bundle, x86_wheels, tmp_path):
    prefix, first = installed
    assert first.returncode == 0
    before = os.readlink(prefix / "current")
    releases = sorted(p.name for p in (prefix / "releases").iterdir())

    def mislabel(top, manifest):  # checksums stay valid, the crops' labels are wrong
        exp = top / "golden" / "expected.json"
        labels = json.loads(exp.read_text())
        name = sorted(labels)[0]
        labels[name] = str((int(labels[name]) + 1) % 10)
        exp.write_text(json.dumps(labels))
        data = exp.read_bytes()
        manifest["files"]["golden/expected.json"] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}

    r = _deploy(sshd, _rebuild(pi_bundle, tmp_path, mislabel), prefix, x86_wheels)
    assert r.returncode not in (0, 255), r.stdout[-2000:]
    assert "selftest: MISREAD" in r.stdout and "self-test FAILED" in r.stdout, r.stdout[-2000:]
    assert "the previous release stays current" in r.stderr
    assert os.readlink(prefix / "current") == before
    assert sorted(p.name for p in (prefix / "releases").iterdir()) == releases  # the failed one was removed


def test_unreachable_host_fails_with_sshs_reason(pi_bundle, tmp_path):
    if not shutil.which("ssh"):
        pytest.skip("no ssh client (apt-get install openssh-client)")
    port = _free_port()  # nothing listens there
    r = subprocess.run([sys.executable, "-m", "edge.deploy", "--host", "nobody@127.0.0.1", "--port", str(port),
                        "--bundle", str(pi_bundle), "-o", f"UserKnownHostsFile={tmp_path}/kh"],
                       capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert r.returncode == 255
    err = r.stderr.strip()
    assert len(err.splitlines()) == 1 and "cannot reach nobody@127.0.0.1 over SSH" in err
    assert "Connection refused" in err, err

"""Deploy a Pi bundle over SSH: copy it, run its install.sh there, report the self-test.

``python -m edge.deploy --host user@host [--bundle FILE] [--enable-service]`` (``make deploy PI=user@host``)

SSH runs with your own ssh config and keys and ``BatchMode=yes``: it never asks for a password,
so a host that needs one fails at once with SSH's reason. The bundle goes to
``~/.cache/mnist-edge/deploy/`` on the host, is unpacked there and its ``install.sh`` runs (checksums,
new venv, pip, self-test, atomic switch of ``~/mnist-edge/current``). Its output is streamed back
prefixed with the host; the exit status is install.sh's (255: SSH failed).
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import tarfile
from pathlib import Path

from .clihelp import Help

REMOTE_DIR = ".cache/mnist-edge/deploy"


class DeployError(RuntimeError):
    pass


def ssh_options(args) -> list[str]:
    opts = ["-o", "BatchMode=yes", "-o", f"ConnectTimeout={args.connect_timeout}"]
    if args.ssh_config:
        opts += ["-F", args.ssh_config]
    if args.identity:
        opts += ["-i", args.identity, "-o", "IdentitiesOnly=yes"]
    for o in args.ssh_option or []:
        opts += ["-o", o]
    return opts


def _reason(r: subprocess.CompletedProcess) -> str:
    lines = [ln for ln in (r.stderr or "").strip().splitlines() if ln.strip()]
    return lines[-1] if lines else f"ssh exited with {r.returncode}"


def bundle_top(bundle: Path) -> str:
    try:
        with tarfile.open(bundle) as tar:
            first = tar.next()
    except (OSError, tarfile.TarError) as e:
        raise DeployError(f"{bundle}: not a readable .tar.gz ({e}); rebuild it with `make bundle`") from None
    if first is None:
        raise DeployError(f"{bundle}: empty archive; rebuild it with `make bundle`")
    return first.name.split("/")[0]


def deploy(args) -> int:
    bundle = Path(args.bundle)
    if not bundle.is_file():
        raise DeployError(f"{bundle}: no such bundle; build it with `make bundle`")
    top = bundle_top(bundle)
    host = args.host
    port = ["-p", str(args.port)] if args.port else []
    ssh = ["ssh", *ssh_options(args), *port]
    scp = ["scp", "-q", *ssh_options(args), *(["-P", str(args.port)] if args.port else [])]

    r = subprocess.run([*ssh, host, f"mkdir -p {args.remote_dir}"], capture_output=True, text=True, timeout=args.connect_timeout + 30)
    if r.returncode != 0:
        raise DeployError(f"cannot reach {host} over SSH: {_reason(r)} "
                          "(check PI=user@host and that your ssh key logs in without a password)")
    print(f"deploy: copying {bundle.name} ({bundle.stat().st_size / 1e6:.1f} MB) to {host}:{args.remote_dir}/", flush=True)
    r = subprocess.run([*scp, str(bundle), f"{host}:{args.remote_dir}/{bundle.name}"], capture_output=True, text=True)
    if r.returncode != 0:
        raise DeployError(f"copying {bundle} to {host} failed: {_reason(r)}")

    env = []
    for name, value in (("PREFIX", args.prefix), ("WHEELS", args.wheels), ("REQUIREMENTS", args.requirements),
                        ("PYTHON", args.python), ("ENABLE_SERVICE", "1" if args.enable_service else None)):
        if value:
            env.append(f"{name}={shlex.quote(value)}")
    d, b, t = args.remote_dir, shlex.quote(bundle.name), shlex.quote(top)
    remote = (f"set -e; cd {d}; rm -rf {t}; tar xzf {b}; "
              f"{'env ' + ' '.join(env) + ' ' if env else ''}bash {t}/install.sh")
    print(f"deploy: running install.sh on {host}", flush=True)
    proc = subprocess.Popen([*ssh, host, remote], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    selftest, last = [], ""
    assert proc.stdout is not None
    for line in proc.stdout:
        line = line.rstrip("\n")
        print(f"[{host}] {line}", flush=True)
        if line.startswith("selftest:"):
            selftest.append(line)
        if line.strip():
            last = line
    rc = proc.wait()
    summary = "; ".join(s.removeprefix("selftest: ") for s in selftest if " PASS " in s or " FAIL " in s)
    if rc == 0:
        print(f"deploy: {host}: installed, self-test {summary or 'PASS'}")
    elif rc == 255:
        print(f"deploy: {host}: SSH failed during install: {last}", file=sys.stderr)
    else:
        print(f"deploy: {host}: install FAILED (exit {rc}){': self-test ' + summary if summary else ''}; "
              f"the previous release stays current. Last line: {last}", file=sys.stderr)
    return rc


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m edge.deploy", description=__doc__.split("\n\n")[0],
                                formatter_class=Help)
    p.add_argument("--host", required=True, help="user@host (or a Host alias from your ssh config)")
    p.add_argument("--bundle", default=None, help="the .tar.gz (default: the newest dist/mnist-edge-pi-*.tar.gz)")
    p.add_argument("--port", type=int, default=None, help="SSH port (default: your ssh config's)")
    p.add_argument("--identity", default=None, metavar="FILE", help="SSH private key (default: your ssh config's)")
    p.add_argument("--ssh-config", default=None, metavar="FILE", help="ssh config file (default: ~/.ssh/config)")
    p.add_argument("-o", "--ssh-option", action="append", metavar="OPT", help="extra ssh -o option (repeatable)")
    p.add_argument("--connect-timeout", type=int, default=10, help="seconds")
    p.add_argument("--enable-service", action="store_true", help="install, enable and start mnist-edge.service")
    p.add_argument("--prefix", default=None, help="install folder on the host (install.sh's default: ~/mnist-edge)")
    p.add_argument("--wheels", default=None, metavar="DIR", help="wheel folder ON THE HOST: install offline from it")
    p.add_argument("--requirements", default=None, help="requirements file in the bundle (default: requirements-pi.txt)")
    p.add_argument("--remote-dir", default=REMOTE_DIR, help="where the bundle is unpacked on the host (relative: to ~)")
    p.add_argument("--python", default=None, help="python on the host for the venv (default: python3)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.bundle is None:
        found = sorted(Path("dist").glob("mnist-edge-pi-*.tar.gz"), key=lambda p: p.stat().st_mtime)
        if not found:
            print("deploy: error: no dist/mnist-edge-pi-*.tar.gz; run `make bundle` or pass --bundle FILE", file=sys.stderr)
            return 2
        args.bundle = str(found[-1])
    try:
        return deploy(args)
    except DeployError as e:
        print(f"deploy: error: {e}", file=sys.stderr)
        return 255 if "over SSH" in str(e) else 1
    except subprocess.TimeoutExpired as e:
        print(f"deploy: error: {args.host}: timed out after {e.timeout:.0f} s ({' '.join(e.cmd[:1])})", file=sys.stderr)
        return 255


if __name__ == "__main__":
    sys.exit(main())

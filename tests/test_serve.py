"""``edge run --serve``: the browser live view, its endpoints, bad clients, clean shutdown, a real browser."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.__main__ import main as edge_main
from edge.fsutil import sha256_file
from edge.serve import BOUNDARY, ServeError, parse_address

ROOT = Path(__file__).resolve().parent.parent
LOOSE = ["--min-confidence", "0"]
HEADLESS_KEYS = {"frame", "text", "digits", "rejected", "ms", "fps"}


class Runner:
    """``python -m edge run --serve 127.0.0.1:0`` in a subprocess; stdout and stderr drained by threads."""

    def __init__(self, exported: Path, mnist_dir: Path, *extra: str):
        env = {**os.environ, "MNIST_DIR": str(mnist_dir), "PYTHONPATH": str(ROOT)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "edge", "run", "--source", "synthetic", "--headless", "--serve", "127.0.0.1:0",
             "--artifacts", str(exported), *LOOSE, *extra],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.out: list[str] = []
        self.err: list[str] = []
        self._ready = threading.Event()
        self.port = 0
        threading.Thread(target=self._drain, args=(self.proc.stdout, self.out), daemon=True).start()
        threading.Thread(target=self._drain, args=(self.proc.stderr, self.err), daemon=True).start()
        if not self._ready.wait(60) or not self.port:
            self.proc.kill()
            raise AssertionError(f"the runner did not start serving: {''.join(self.err)}")

    def _drain(self, stream, lines):
        for line in stream:
            lines.append(line)
            if line.startswith("serving http://"):
                self.port = int(line.split()[1].rstrip("/").rsplit(":", 1)[1])
                self._ready.set()
        self._ready.set()

    def get(self, path: str, method: str = "GET", timeout: float = 10) -> tuple[int, dict, bytes]:
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            c.request(method, path)
            r = c.getresponse()
            return r.status, dict(r.getheaders()), r.read()
        finally:
            c.close()

    def latest(self) -> dict:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            status, _, body = self.get("/latest.json")
            if status == 200:
                return json.loads(body)
            assert status == 503  # no frame yet
            time.sleep(0.1)
        raise AssertionError("no frame in 30 s")

    def stop(self, sig=signal.SIGINT) -> tuple[int, str, str]:
        self.proc.send_signal(sig)
        code = self.proc.wait(20)
        time.sleep(0.1)  # let the drain threads take the last lines
        return code, "".join(self.out), "".join(self.err)


def read_mjpeg_parts(port: int, n: int) -> list[bytes]:
    """The first ``n`` JPEGs of /stream.mjpg, parsed from the multipart body."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        s.sendall(b"GET /stream.mjpg HTTP/1.0\r\n\r\n")
        f = s.makefile("rb")
        status = f.readline()
        assert b" 200 " in status, status
        headers = {}
        while (line := f.readline().strip()):
            k, _, v = line.decode().partition(":")
            headers[k.lower()] = v.strip()
        assert headers["content-type"] == f"multipart/x-mixed-replace; boundary={BOUNDARY}"
        parts = []
        while len(parts) < n:
            assert f.readline().strip() == f"--{BOUNDARY}".encode()
            part = {}
            while (line := f.readline().strip()):
                k, _, v = line.decode().partition(":")
                part[k.lower()] = v.strip()
            assert part["content-type"] == "image/jpeg"
            parts.append(f.read(int(part["content-length"])))
            assert f.readline() == b"\r\n"
        return parts
    finally:
        s.close()


@pytest.fixture(scope="module")
def runner(exported, mnist_dir):
    r = Runner(exported, mnist_dir)
    yield r
    if r.proc.poll() is None:
        r.proc.kill()
        r.proc.wait(10)


def test_parse_address():
    assert parse_address("8080") == ("127.0.0.1", 8080)
    assert parse_address("0.0.0.0:8080") == ("0.0.0.0", 8080)
    assert parse_address(":9000") == ("127.0.0.1", 9000)
    assert parse_address("[::1]:8080") == ("::1", 8080)
    for bad in ("", "http", "host:", "1.2.3.4:70000", "::1:80", "[::1]8080"):
        with pytest.raises(ServeError, match="--serve"):
            parse_address(bad)


def test_endpoints_stream_and_health(runner, exported):
    first = runner.latest()
    assert set(first) == HEADLESS_KEYS
    parts = read_mjpeg_parts(runner.port, 3)
    for jpeg in parts:
        img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        assert img is not None and img.shape == (480, 640, 3) and img.std() > 5
    status, headers, body = runner.get("/healthz")
    health = json.loads(body)
    assert status == 200 and headers["Content-Type"] == "application/json"
    assert health["ok"] is True and health["frames"] > first["frame"] and health["mean_fps"] > 0
    assert health["uptime_s"] > 0 and health["model_sha256"] == sha256_file(exported / "model_int8.tflite")
    status, headers, body = runner.get("/")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    page = body.decode()
    # One self-contained page: no external scripts, styles, fonts or images.
    assert "/stream.mjpg" in page and "/latest.json" in page and "http" not in page.replace("http-equiv", "")


def test_bad_requests_do_not_stop_or_stall_the_runner(runner):
    assert runner.get("/nope")[0] == 404
    status, headers, body = runner.get("/latest.json", method="HEAD")
    assert status == 200 and body == b"" and int(headers["Content-Length"]) > 0
    assert runner.get("/stream.mjpg", method="HEAD")[0] == 200
    assert runner.get("/", method="POST")[0] == 501
    with socket.create_connection(("127.0.0.1", runner.port), timeout=10) as s:
        s.sendall(b"\x16\x03\x01 GARBAGE \xff\xfe\r\n\r\n")  # a TLS-ish, non-HTTP request line
        reply = b"".join(iter(lambda: s.recv(4096), b""))
        assert b"Error code: 400" in reply
    # A viewer that connects to the stream and never reads, plus one that sends nothing at all.
    stalled = socket.socket()
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.connect(("127.0.0.1", runner.port))
    stalled.sendall(b"GET /stream.mjpg HTTP/1.0\r\n\r\n")
    silent = socket.create_connection(("127.0.0.1", runner.port))
    try:
        a = runner.latest()["frame"]
        time.sleep(1.5)
        b = runner.latest()["frame"]
        assert b >= a + 5, f"frames stalled while a viewer does not read: {a} -> {b}"
        assert len(read_mjpeg_parts(runner.port, 2)) == 2  # other viewers still get frames
        # Viewers that disconnect mid-stream: no traceback, the runner goes on.
        for _ in range(3):
            with socket.create_connection(("127.0.0.1", runner.port), timeout=10) as s:
                s.sendall(b"GET /stream.mjpg HTTP/1.0\r\n\r\n")
                s.recv(2000)
        assert runner.latest()["frame"] > b
    finally:
        stalled.close()
        silent.close()
    assert "Traceback" not in "".join(runner.err)


def test_sigint_stops_cleanly_with_summary(runner):
    # A viewer still connected when the runner stops is disconnected, not an error.
    viewer = socket.create_connection(("127.0.0.1", runner.port), timeout=10)
    viewer.sendall(b"GET /stream.mjpg HTTP/1.0\r\n\r\n")
    viewer.recv(1000)
    code, out, err = runner.stop(signal.SIGINT)
    viewer.close()
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 0, err
    assert rows and set(rows[0]) == HEADLESS_KEYS  # --headless lines still printed
    assert "Traceback" not in err and "stopped: interrupted" in err and f"{len(rows)} frames" in err


def test_sigterm_stops_cleanly(exported, mnist_dir):
    r = Runner(exported, mnist_dir)
    r.latest()
    code, _, err = r.stop(signal.SIGTERM)
    assert code == 0 and "stopped: interrupted" in err and "Traceback" not in err
    # The port is free again at once: a restarted service can bind it.
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", r.port))


def test_serve_without_gui_and_max_frames(exported, mnist_dir, monkeypatch, capsys):
    """Without --headless and without a GUI, --serve is the view: no error; --max-frames still ends it."""
    monkeypatch.setenv("MNIST_DIR", str(mnist_dir))
    monkeypatch.setattr("edge.__main__.gui_available", lambda: False)
    code = edge_main(["run", "--source", "synthetic", "--serve", "127.0.0.1:0", "--max-frames", "3",
                      "--artifacts", str(exported), *LOOSE])
    cap = capsys.readouterr()
    assert code == 0 and cap.out == ""  # no --headless: no JSON lines
    assert "serving http://127.0.0.1:" in cap.err and "3 frames" in cap.err and "--max-frames 3" in cap.err


def test_port_in_use_and_bad_address_are_one_line_errors(exported, capsys):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert edge_main(["run", "--source", "synthetic", "--headless", "--serve", f"127.0.0.1:{port}",
                          "--artifacts", str(exported)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"port {port}" in err and "already in use" in err
    for bad, says in (("localhost:http", "[HOST:]PORT"), ("no-such-host.invalid:8080", "cannot resolve"),
                      ("203.0.113.9:8080", "not an address of this machine")):
        assert edge_main(["run", "--source", "synthetic", "--headless", "--serve", bad,
                          "--artifacts", str(exported)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and err.startswith("error: --serve") and says in err, err


# -- a real browser ----------------------------------------------------------------------------
CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's headless Chromium; installed with apt-get when missing and we are root, else a skip."""
    if Path(CHROMIUM).exists():
        return CHROMIUM
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.skip(f"{CHROMIUM} is missing and we are not root with apt-get: `apt-get install chromium`")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "chromium"]  # with recommends: fonts for the screenshot
    r = subprocess.run(install, capture_output=True, text=True, env=env, timeout=900)
    if r.returncode != 0:  # a fresh machine has no package lists yet
        subprocess.run(["apt-get", "update", "-q"], capture_output=True, env=env, timeout=600)
        r = subprocess.run(install, capture_output=True, text=True, env=env, timeout=900)
    if r.returncode != 0 or not Path(CHROMIUM).exists():
        pytest.skip(f"cannot install chromium with apt-get: {(r.stderr or r.stdout).strip().splitlines()[-1:]}")
    return CHROMIUM


def _chromium(binary: str, profile: Path, url: str, *args: str) -> subprocess.CompletedProcess:
    cmd = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--window-size=1000,800",
           "--virtual-time-budget=4000", *args, url]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


def test_page_in_headless_chromium(chromium, exported, mnist_dir, tmp_path, tmp_path_factory):
    r = Runner(exported, mnist_dir)
    try:
        r.latest()
        url = f"http://127.0.0.1:{r.port}/"
        shot = tmp_path / "live-view.png"
        res = _chromium(chromium, tmp_path / "profile1", url, f"--screenshot={shot}")
        assert shot.is_file(), res.stderr[-2000:]
        dom = _chromium(chromium, tmp_path / "profile2", url, "--dump-dom")
        assert dom.returncode == 0, dom.stderr[-2000:]
    finally:
        code, _, err = r.stop(signal.SIGTERM)
    assert code == 0 and "Traceback" not in err
    artifacts = Path(os.environ.get("TEST_ARTIFACTS") or tmp_path_factory.getbasetemp() / "test-artifacts")
    artifacts.mkdir(parents=True, exist_ok=True)
    kept = shutil.copy2(shot, artifacts / shot.name)
    print(f"browser screenshot: {kept}")
    img = cv2.imread(str(shot), cv2.IMREAD_COLOR)
    assert img is not None and img.shape[:2] == (800, 1000)
    assert img.std() > 20, "the screenshot is blank"
    # The live frame (light paper) is drawn where the stream image sits on the dark page.
    assert img[100:500, 30:640].mean() > 120, "the stream image is not shown"
    # The page text shows a reading: status live, a frame number, and a text read or the dash.
    import re

    assert re.search(r'id="status">live<', dom.stdout), dom.stdout[-2000:]
    assert re.search(r'id="meta">frame \d+ · [\d.]+ FPS', dom.stdout), dom.stdout[-2000:]
    text = re.search(r'id="text">([^<]*)<', dom.stdout).group(1)
    assert text and all(c.isdigit() or c in " –" for c in text)

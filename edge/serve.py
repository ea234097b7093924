"""``run --serve [HOST:]PORT``: the live view in a browser, on the standard library only.

    /             one page: the annotated stream, the text read now, the last few readings
    /stream.mjpg  MJPEG (multipart/x-mixed-replace) of the annotated frames, at the camera's rate
    /latest.json  the latest frame's result (the same fields as a ``--headless`` JSON line)
    /healthz      ok, uptime, frames processed, mean FPS, model sha256

The capture/classify loop stays in the main thread and calls :meth:`LiveServer.publish`
once per frame; the HTTP server runs in a daemon thread (one thread per connection).
A frame is annotated and JPEG-encoded once, and only while at least one viewer is
connected; every viewer sends the same bytes. A viewer waits on a condition for the
newest frame and sends only that one, so a slow viewer skips frames instead of queueing
them, and a socket timeout drops a client that stops reading. Nothing a viewer does can
block the loop: the lock is held only to swap references, never while sending.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np

DEFAULT_HOST = "127.0.0.1"
BOUNDARY = "mnistedgeframe"
SEND_TIMEOUT_S = 5.0  # a client that reads nothing for this long is dropped
MAX_VIEWERS = 32  # stream connections at once; more get 503 (each one is a thread)


class ServeError(RuntimeError):
    """--serve cannot start: a bad HOST:PORT, or the address cannot be bound."""


def parse_address(spec: str) -> tuple[str, int]:
    """``PORT``, ``HOST:PORT`` or ``[IPv6]:PORT`` -> (host, port). Raises ServeError naming the problem."""
    s = spec.strip()
    host, port_s = DEFAULT_HOST, s
    if s.startswith("["):
        end = s.find("]")
        if end < 0 or not s[end + 1:].startswith(":"):
            raise ServeError(f"--serve {spec!r}: an IPv6 address is written [ADDR]:PORT, e.g. [::1]:8080")
        host, port_s = s[1:end], s[end + 2:]
    elif ":" in s:
        host, _, port_s = s.rpartition(":")
        if ":" in host:
            raise ServeError(f"--serve {spec!r}: write an IPv6 address in brackets, e.g. [::1]:8080")
        host = host or DEFAULT_HOST
    if not port_s.isdigit() or not 0 <= int(port_s) <= 65535:
        raise ServeError(f"--serve {spec!r}: expected [HOST:]PORT with PORT 0-65535, e.g. 8080 or 0.0.0.0:8080")
    return host, int(port_s)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True  # restart right away after a stop (TIME_WAIT), as systemd does
    live: LiveServer


class LiveServer:
    """Shares the newest frame and result with HTTP viewers. ``publish`` is called from the loop."""

    def __init__(self, address: str, *, jpeg_quality: int = 80, model_sha256: str = "", model_name: str = "",
                 recent: int = 8):
        host, port = parse_address(address)
        self.jpeg_quality = int(jpeg_quality)
        self.model_sha256 = model_sha256
        self.model_name = model_name
        self._cond = threading.Condition()
        self._jpeg: bytes | None = None
        self._jpeg_seq = 0
        self._latest: bytes | None = None  # the latest result, as JSON bytes
        self._frames = 0
        self._first_frame_t: float | None = None
        self._last_frame_t: float | None = None
        self._viewers = 0
        self._open: set[socket.socket] = set()
        self._closing = False
        self.started = time.monotonic()
        self.encoded = 0  # frames JPEG-encoded (only while someone watches)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        cls = type("_Server", (_Server,), {"address_family": family})
        try:
            self._httpd = cls((host, port), _Handler)
        except socket.gaierror:
            raise ServeError(f"--serve {address}: cannot resolve host {host!r}; use an IP address such as "
                             "127.0.0.1 or 0.0.0.0") from None
        except OSError as e:
            if e.errno in (98, 48, 10048):  # EADDRINUSE on Linux, macOS, Windows
                raise ServeError(f"--serve {address}: port {port} on {host} is already in use; pick another port "
                                 f"or stop what listens there (ss -ltnp 'sport = :{port}')") from None
            if e.errno in (13, 1):
                raise ServeError(f"--serve {address}: no permission to listen on port {port}; ports below 1024 need "
                                 "root, use e.g. 8080") from None
            if e.errno in (99, 49, 10049):
                raise ServeError(f"--serve {address}: {host} is not an address of this machine; use 127.0.0.1 "
                                 "(this machine) or 0.0.0.0 (every interface)") from None
            raise ServeError(f"--serve {address}: cannot listen there ({e.strerror or e})") from None
        self._httpd.live = self
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="mnist-edge-http", daemon=True)

    # -- the loop's side -----------------------------------------------------------------------
    @property
    def host(self) -> str:
        return self._httpd.server_address[0]

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        host = self.host
        shown = "127.0.0.1" if host == "0.0.0.0" else ("::1" if host == "::" else host)
        return f"http://[{shown}]:{self.port}/" if ":" in shown else f"http://{shown}:{self.port}/"

    @property
    def viewers(self) -> int:
        return self._viewers

    def start(self) -> LiveServer:
        self._thread.start()
        return self

    def publish(self, result: dict, frame: Callable[[], np.ndarray] | None = None) -> None:
        """The latest result (a ``--headless`` line as a dict); ``frame()`` gives the annotated frame.

        ``frame`` is called (and its output JPEG-encoded) only while a viewer is connected.
        """
        import cv2

        now = time.monotonic()
        body = json.dumps(result).encode()
        jpeg = None
        if frame is not None and self._viewers > 0:
            ok, buf = cv2.imencode(".jpg", frame(), [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])
            if ok:
                jpeg = buf.tobytes()
                self.encoded += 1
        with self._cond:
            self._latest = body
            self._frames += 1
            self._last_frame_t = now
            if self._first_frame_t is None:
                self._first_frame_t = now
            if jpeg is not None:
                self._jpeg = jpeg
                self._jpeg_seq += 1
            elif self._viewers == 0:
                self._jpeg = None  # nobody watched this frame: the next viewer must not start on a stale one
            self._cond.notify_all()

    def close(self) -> None:
        """Stop serving: wake every viewer, stop the accept loop, close every socket."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
            open_socks = list(self._open)
        for s in open_socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread.is_alive():
            self._httpd.shutdown()
        self._httpd.server_close()

    # -- the viewers' side ---------------------------------------------------------------------
    def health(self) -> dict:
        with self._cond:
            frames, t0, t1 = self._frames, self._first_frame_t, self._last_frame_t
        span = (t1 - t0) if t0 is not None and t1 is not None else 0.0
        return {
            "ok": True,
            "uptime_s": round(time.monotonic() - self.started, 1),
            "frames": frames,
            "mean_fps": round((frames - 1) / span, 2) if frames > 1 and span > 0 else 0.0,
            "viewers": self._viewers,
            "model": self.model_name,
            "model_sha256": self.model_sha256,
        }

    def latest(self) -> bytes | None:
        with self._cond:
            return self._latest

    def _join(self, sock: socket.socket) -> bool:
        with self._cond:
            if self._closing or self._viewers >= MAX_VIEWERS:
                return False
            self._viewers += 1
            self._open.add(sock)
            return True

    def _leave(self, sock: socket.socket) -> None:
        with self._cond:
            self._viewers -= 1
            self._open.discard(sock)

    def _next_jpeg(self, seen: int) -> tuple[bytes | None, int]:
        """Wait for a frame newer than ``seen``: (jpeg, seq), or (None, seen) when closing."""
        with self._cond:
            while not self._closing and (self._jpeg is None or self._jpeg_seq == seen):
                self._cond.wait(1.0)
            if self._closing:
                return None, seen
            return self._jpeg, self._jpeg_seq


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    timeout = SEND_TIMEOUT_S  # applies to reading the request and to every send
    server_version = "mnist-edge"
    protocol_version = "HTTP/1.0"

    def log_message(self, format, *args):  # noqa: A002  (stdout carries JSON lines; keep stderr for errors)
        pass

    def do_GET(self):
        self._route(body=True)

    def do_HEAD(self):
        self._route(body=False)

    def _route(self, body: bool) -> None:
        path = self.path.split("?", 1)[0]
        live = self.server.live
        try:
            if path in ("/", "/index.html"):
                self._send(HTTPStatus.OK, "text/html; charset=utf-8", PAGE.encode(), body)
            elif path == "/latest.json":
                data = live.latest()
                if data is None:
                    self._send(HTTPStatus.SERVICE_UNAVAILABLE, "application/json",
                               b'{"error": "no frame processed yet"}', body)
                else:
                    self._send(HTTPStatus.OK, "application/json", data, body)
            elif path == "/healthz":
                self._send(HTTPStatus.OK, "application/json", json.dumps(live.health()).encode(), body)
            elif path == "/stream.mjpg":
                self._stream(live, body)
            else:
                self._send(HTTPStatus.NOT_FOUND, "text/plain; charset=utf-8",
                           b"not found: try / /stream.mjpg /latest.json /healthz\n", body)
        except (ConnectionError, TimeoutError, OSError):
            self.close_connection = True  # the viewer went away or stopped reading: not an error

    def _send(self, status: HTTPStatus, ctype: str, data: bytes, body: bool) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if body:
            self.wfile.write(data)

    def _stream(self, live: LiveServer, body: bool) -> None:
        if not body:
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            return
        if not live._join(self.connection):
            self._send(HTTPStatus.SERVICE_UNAVAILABLE, "text/plain; charset=utf-8",
                       f"too many viewers (at most {MAX_VIEWERS})\n".encode(), body)
            return
        try:
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
            self.send_header("Cache-Control", "no-store")
            self.send_header("Pragma", "no-cache")
            self.end_headers()
            self.wfile.flush()
            seen = 0
            while True:
                jpeg, seen = live._next_jpeg(seen)
                if jpeg is None:
                    return
                head = (f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n").encode()
                self.wfile.write(head + jpeg + b"\r\n")
                self.wfile.flush()
        finally:
            live._leave(self.connection)
            self.close_connection = True


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>mnist-edge live</title>
<style>
body{margin:0;font:16px/1.4 system-ui,sans-serif;background:#111;color:#eee}
header{padding:8px 16px;background:#222;display:flex;gap:16px;align-items:baseline;flex-wrap:wrap}
h1{font-size:18px;margin:0}
#status{color:#9a9}
main{display:flex;gap:16px;padding:16px;flex-wrap:wrap}
#view{flex:1 1 480px;max-width:960px}
#view img{width:100%;background:#000;display:block;min-height:240px}
aside{flex:0 1 300px}
#text{font:bold 56px/1.1 ui-monospace,monospace;color:#6f6;word-break:break-all;min-height:62px}
.small{color:#aaa;font-size:14px}
ol{padding-left:20px;margin:4px 0}
li{font-family:ui-monospace,monospace}
td{padding:0 8px 0 0;font-family:ui-monospace,monospace}
</style></head>
<body>
<header><h1>mnist-edge live</h1><span id="status">connecting&hellip;</span></header>
<main>
<div id="view"><img id="stream" alt="live annotated camera stream"></div>
<aside>
<div class="small">text read now</div>
<div id="text">&ndash;</div>
<div class="small" id="meta"></div>
<table id="digits"></table>
<div class="small" style="margin-top:12px">last readings</div>
<ol id="recent"></ol>
</aside>
</main>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
const recent = [];
let last = null;
function show(r) {
  $("text").textContent = r.text || "\\u2013";
  $("meta").textContent = "frame " + r.frame + " \\u00b7 " + r.fps + " FPS \\u00b7 " + r.ms + " ms \\u00b7 "
    + r.rejected.length + " rejected";
  const rows = r.digits.map((d) => "<tr><td>" + d.label + "</td><td>" + d.confidence.toFixed(2)
    + "</td><td>[" + d.box.join(", ") + "]</td></tr>");
  $("digits").innerHTML = rows.join("");
  if (r.text && r.text !== last) {
    recent.unshift(new Date().toLocaleTimeString() + "  " + r.text);
    recent.length = Math.min(recent.length, 8);
    $("recent").innerHTML = recent.map((t) => "<li>" + t + "</li>").join("");
  }
  last = r.text;
}
async function poll() {
  try {
    const res = await fetch("/latest.json", {cache: "no-store"});
    if (res.ok) { show(await res.json()); $("status").textContent = "live"; }
    else { $("status").textContent = "waiting for the first frame"; }
  } catch (e) { $("status").textContent = "disconnected, retrying"; }
  setTimeout(poll, 300);
}
function stream() {  // started after load: an endless image must not hold the page's load event
  const img = $("stream");
  img.onerror = () => { $("status").textContent = "stream lost, retrying"; setTimeout(stream, 2000); };
  img.src = "/stream.mjpg?t=" + Date.now();
}
window.addEventListener("load", () => { poll(); stream(); });
</script>
</body></html>
"""

"""Does watching slow the reader? The runner's FPS with 0 and with N browser viewers of ``--serve``.

    python -m benchmarks.serve_viewers [--viewers 10] [--rounds 3] [--phase-seconds 4] [--out FILE.json]

Starts ``python -m edge run --serve 127.0.0.1:0`` once and alternates phases without
viewers and with N viewers reading /stream.mjpg, so both rates come from one run under the
same machine load (other jobs on the CPU drift; interleaving cancels most of it). The runner's
rate is read from its /healthz frame counter; a warm-up phase is discarded; each condition
reports the median (and min/max) over rounds. Viewers run as threads here, on the same
CPU, so the figure is pessimistic for viewers on other machines. Writes JSON (default
ARTIFACTS/serve_viewers.json) and prints a markdown table. Exit 1 if the ratio is below
--min-ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

from edge.clihelp import Help

ROOT = Path(__file__).resolve().parent.parent


class Viewer(threading.Thread):
    """Reads /stream.mjpg as fast as it comes and counts the JPEG parts."""

    def __init__(self, port: int):
        super().__init__(daemon=True)
        self.port = port
        self.parts = 0
        self.bytes = 0
        self.error = ""
        self._done = threading.Event()

    def run(self) -> None:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=10) as s:
                s.sendall(b"GET /stream.mjpg HTTP/1.0\r\n\r\n")
                f = s.makefile("rb")
                while f.readline().strip():  # status line and headers
                    pass
                while not self._done.is_set():
                    if not f.readline():  # boundary ("" at EOF)
                        return
                    length = 0
                    while (line := f.readline().strip()):
                        if line.lower().startswith(b"content-length:"):
                            length = int(line.split(b":")[1])
                    self.bytes += len(f.read(length))
                    f.readline()
                    self.parts += 1
        except OSError as e:
            if not self._done.is_set():
                self.error = str(e)

    def stop(self) -> None:
        self._done.set()


def health(port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as r:
        return json.loads(r.read())


def measure(port: int, seconds: float) -> float:
    """The runner's frames per second over ``seconds``, from its own frame counter."""
    a, t0 = health(port)["frames"], time.monotonic()
    time.sleep(seconds)
    b, t1 = health(port)["frames"], time.monotonic()
    return (b - a) / (t1 - t0)


def start_runner(args) -> tuple[subprocess.Popen, int]:
    cmd = [sys.executable, "-m", "edge", "run", "--source", args.source, "--serve", "127.0.0.1:0",
           "--artifacts", args.artifacts, "--jpeg-quality", str(args.jpeg_quality), "--min-confidence", "0"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    for line in proc.stderr:
        if line.startswith("serving http://"):
            port = int(line.split()[1].rstrip("/").rsplit(":", 1)[1])
            threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()  # keep draining
            return proc, port
    proc.wait()
    raise SystemExit(f"error: the runner exited ({proc.returncode}) before serving: {' '.join(cmd)}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.serve_viewers", description=__doc__.split("\n\n")[0],
                                formatter_class=Help)
    p.add_argument("--viewers", type=int, default=10, help="parallel /stream.mjpg viewers in the loaded phases")
    p.add_argument("--rounds", type=int, default=3, help="pairs of (no viewers, N viewers) phases")
    p.add_argument("--phase-seconds", type=float, default=4.0, help="length of each measured phase")
    p.add_argument("--warmup", type=float, default=3.0, help="seconds run and discarded before measuring")
    p.add_argument("--source", default="synthetic", help="--source of the runner (synthetic needs MNIST_DIR)")
    p.add_argument("--artifacts", default="artifacts", help="where manifest.json is")
    p.add_argument("--jpeg-quality", type=int, default=80, help="JPEG quality of the runner's --serve stream (1-100)")
    p.add_argument("--min-ratio", type=float, default=0.8, help="exit 1 if FPS with viewers / without is below")
    p.add_argument("--out", default=None, help="JSON result (default: ARTIFACTS/serve_viewers.json)")
    args = p.parse_args(argv)
    if not (Path(args.artifacts) / "manifest.json").is_file():
        print(f"error: {args.artifacts}/manifest.json not found; run `make all` or pass --artifacts DIR",
              file=sys.stderr)
        return 2

    proc, port = start_runner(args)
    without, with_viewers, received, errors = [], [], [], []
    try:
        # Warm up with viewers connected too: the first encodes and thread starts are not the steady state.
        warm = [Viewer(port) for _ in range(args.viewers)]
        for v in warm:
            v.start()
        time.sleep(args.warmup)
        for v in warm:
            v.stop()
        time.sleep(0.5)
        for _ in range(args.rounds):
            time.sleep(0.3)
            without.append(measure(port, args.phase_seconds))
            viewers = [Viewer(port) for _ in range(args.viewers)]
            for v in viewers:
                v.start()
            time.sleep(0.5)  # all connected
            before = [v.parts for v in viewers]
            t0 = time.monotonic()
            with_viewers.append(measure(port, args.phase_seconds))
            dt = time.monotonic() - t0
            received.append(statistics.median((v.parts - b) / dt for v, b in zip(viewers, before)))
            for v in viewers:
                v.stop()
            errors += [v.error for v in viewers if v.error]
        final = health(port)
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()

    med0, med1 = statistics.median(without), statistics.median(with_viewers)
    ratio = med1 / med0 if med0 else 0.0
    result = {
        "viewers": args.viewers,
        "rounds": args.rounds,
        "phase_seconds": args.phase_seconds,
        "source": args.source,
        "jpeg_quality": args.jpeg_quality,
        "fps_without_viewers": {"median": round(med0, 2), "min": round(min(without), 2),
                                "max": round(max(without), 2), "all": [round(v, 2) for v in without]},
        "fps_with_viewers": {"median": round(med1, 2), "min": round(min(with_viewers), 2),
                             "max": round(max(with_viewers), 2), "all": [round(v, 2) for v in with_viewers]},
        "fps_each_viewer_received_median": round(statistics.median(received), 2),
        "ratio": round(ratio, 3),
        "min_ratio": args.min_ratio,
        "passed": ratio >= args.min_ratio,
        "viewer_errors": errors,
        "model_sha256": final.get("model_sha256"),
        "host": {"machine": platform.machine(), "system": platform.platform(), "python": platform.python_version(),
                 "cpus": os.cpu_count(), "loadavg": [round(v, 2) for v in os.getloadavg()]},
    }
    out = Path(args.out) if args.out else Path(args.artifacts) / "serve_viewers.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print("| viewers | runner FPS (median of rounds) | min–max | each viewer receives |")
    print("|--------:|------------------------------:|--------:|---------------------:|")
    print(f"| 0 | {med0:.1f} | {min(without):.1f}–{max(without):.1f} | – |")
    print(f"| {args.viewers} | {med1:.1f} | {min(with_viewers):.1f}–{max(with_viewers):.1f} | "
          f"{result['fps_each_viewer_received_median']:.1f} FPS |")
    verdict = "ok" if result["passed"] else "TOO SLOW"
    print(f"ratio {ratio:.2f} (needs >= {args.min_ratio}): {verdict}; {out}")
    if errors:
        print(f"viewer errors: {errors[:3]}", file=sys.stderr)
    return 0 if result["passed"] and not errors else 1


if __name__ == "__main__":
    sys.exit(main())

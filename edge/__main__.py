"""``python -m edge``: read handwritten digits from images, videos and live cameras.

    python -m edge classify PATH... [--model FILE] [--json]
    python -m edge run --source 0|/dev/videoN|FILE.mp4|DIR|synthetic [--headless] [--save OUT.mp4]

Imports only numpy, OpenCV and one interpreter (ai-edge-litert, tflite-runtime
or onnxruntime): never TensorFlow.
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import sys
import time
from collections import deque
from pathlib import Path

from . import heap
from .clihelp import Help, count, positive, seed
from .detect import INK_KINDS, DetectConfig, Reader
from .manifest import NoManifest, load_manifest
from .runtime import Model, ModelError
from .serve import ServeError
from .sources import IMAGE_SUFFIXES, Source, SourceError, list_images, read_image_at

DEFAULT_ARTIFACTS = "artifacts"


def load_model(model: str | None, artifacts: str, threads: int | None = None, runtime: str | None = None) -> Model:
    """The model to run: ``--model FILE``, else the int8 TFLite named in ``artifacts/manifest.json``.

    A file the manifest lists is checked against its sha256 before loading.
    """
    if model is None:
        try:
            manifest = load_manifest(artifacts)
        except NoManifest as e:
            raise ModelError(f"{e}, or pass --model FILE (a .tflite or .onnx model)") from None
        art = manifest.default()
        art.verify()
        return Model(art.path, threads=threads, runtime=runtime)
    path = Path(model)
    manifest_path = path.parent / "manifest.json"
    if manifest_path.is_file():
        try:
            listed = load_manifest(manifest_path).find_file(path)
        except ModelError:
            listed = None  # a foreign or older manifest beside the file: nothing to check against
        if listed is not None:
            listed.verify()
    return Model(path, threads=threads, runtime=runtime)


def _detect_config(args) -> DetectConfig:
    return DetectConfig(min_confidence=args.min_confidence, recheck_below=args.recheck_below, ink=args.ink,
                        narrow_seven=args.narrow_seven)


def unit_interval(what: str, below_one: bool = False):
    """An argparse type: a float from 0 to 1 (or to below 1), called ``what`` in its error."""

    def parse(v: str) -> float:
        try:
            r = float(v)
        except ValueError:
            r = -1.0
        if not (0.0 <= r < 1.0 if below_one else 0.0 <= r <= 1.0):
            raise argparse.ArgumentTypeError(f"{v!r} is not {what}")
        return r

    return parse


narrow_ratio = unit_interval("a width-to-height ratio from 0 (never) to below 1", below_one=True)  # --narrow-seven
share = unit_interval("a share from 0 to 1")  # --dark-surround
confidence = unit_interval("a confidence from 0 to 1")  # --min-confidence
edge_ratio = unit_interval("an edge-direction ratio from 0 (never) to 1")  # edge.evaluate --streak


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None, metavar="FILE",
                   help="a .tflite or .onnx model (default: the int8 TFLite in ARTIFACTS/manifest.json)")
    p.add_argument("--artifacts", default=DEFAULT_ARTIFACTS, metavar="DIR", help="where manifest.json is")
    p.add_argument("--min-confidence", type=confidence, default=DetectConfig.min_confidence,
                   help="candidates the model is less sure of are reported as rejected, not as digits")
    p.add_argument("--recheck-below", type=float, default=DetectConfig.recheck_below, metavar="CONF",
                   help="a candidate read with less confidence is cut again at four other stroke widths and "
                        "the five readings averaged (0: never)")
    p.add_argument("--ink", choices=INK_KINDS, default=DetectConfig.ink,
                   help="dark ink on paper, light ink on a dark ground (chalk, white-on-black images), or auto: "
                        "light only when the frame is a dark, even ground with thin light strokes")
    p.add_argument("--narrow-seven", type=narrow_ratio, default=DetectConfig.narrow_seven, metavar="RATIO",
                   help="a digit read as 7 and narrower than RATIO of its height is most likely a 1 written with "
                        "a flag: its 7 is weighed down tenfold (0: never)")
    p.add_argument("--threads", type=count("a thread count (1 or more)", 1), default=1, help="interpreter threads")


def cmd_classify(args) -> int:
    model = load_model(args.model, args.artifacts, args.threads)
    reader = Reader(model, _detect_config(args))
    failed = 0
    for arg in args.paths:
        paths = list_images(arg)
        if not paths:
            msg = f"no images in this folder ({', '.join(sorted(IMAGE_SUFFIXES))})"
            print(json.dumps({"path": arg, "error": msg}) if args.json else f"{arg}: {msg}")
            failed += 1
            continue
        for p in paths:
            t0 = time.perf_counter()
            try:
                img, factor = read_image_at(p, reader.cfg.work_size)
                reading = reader.read(img)
                if factor > 1:
                    reading = reading.scaled(factor)
            except SourceError as e:
                failed += 1
                msg = str(e)
                print(json.dumps({"path": str(p), "error": msg}) if args.json else f"error: {msg}",
                      flush=True)
                continue
            ms = (time.perf_counter() - t0) * 1e3
            if args.json:
                d = reading.to_dict()
                print(json.dumps({"path": str(p), "text": d["text"], "digits": d["digits"],
                                  "rejected": d["rejected"], "ms": round(ms, 2)}), flush=True)
            else:
                extra = f"  ({len(reading.rejected)} rejected)" if reading.rejected else ""
                print(f"{p}: {reading.text or '(no digits)'}{extra}", flush=True)
    return 1 if failed else 0


def gui_available() -> bool:
    import cv2

    try:
        cv2.namedWindow("mnist-edge")
        cv2.destroyWindow("mnist-edge")
        return True
    except cv2.error:
        return False


class _Stop(Exception):
    pass


def cmd_run(args) -> int:
    import cv2

    from .draw import annotate
    from .track import Smoother

    if args.save and Path(args.save).is_dir():
        print(f"error: --save {args.save}: is a folder; give the video's file name, e.g. "
              f"{Path(args.save) / 'run.mp4'}", file=sys.stderr)
        return 2
    window = not args.headless
    if window and not gui_available():
        if not (args.serve or args.save):
            print("error: this OpenCV has no GUI (opencv-python-headless). Use --headless (JSON lines), --serve PORT "
                  "(a browser), --save OUT.mp4 (a video file), or `pip uninstall opencv-python-headless && pip "
                  "install opencv-python` (needs libGL) for a window.", file=sys.stderr)
            return 2
        window = False  # --serve or --save is the view: no window needed
    server = None
    if args.serve:  # bind before loading the model: a busy port fails at once
        from .serve import LiveServer

        server = LiveServer(args.serve, jpeg_quality=args.jpeg_quality)
    try:
        model = load_model(args.model, args.artifacts, args.threads)
    except BaseException:
        if server is not None:
            server.close()
        raise
    if server is not None:
        from .fsutil import sha256_file

        server.model_name, server.model_sha256 = model.path.name, sha256_file(model.path)
        server.start()
        print(f"serving {server.url} (live view; /stream.mjpg /latest.json /healthz)", file=sys.stderr, flush=True)
    cfg = _detect_config(args)
    reader = Reader(model, cfg)
    smoother = Smoother(window=args.smooth, min_confidence=cfg.min_confidence) if args.smooth > 1 else None
    try:
        source = Source(args.source, seed=args.seed)
    except BaseException:
        if server is not None:
            server.close()
        raise
    writer = None
    save_tmp = None

    def on_term(signum, frame):  # systemd stops with SIGTERM: end like Ctrl-C
        raise _Stop()

    signal.signal(signal.SIGTERM, on_term)
    # Also SIGINT: a shell starts background jobs with SIGINT ignored, and `kill -INT` should still stop us.
    signal.signal(signal.SIGINT, on_term)
    frames, t_start, stop = 0, time.perf_counter(), ""
    # The reader's own time per frame (detect + classify), apart from the source's and the view's:
    # a synthetic frame takes longer to draw than to read.
    read_ms: deque[float] = deque(maxlen=1000)
    fps = 0.0
    try:
        last = time.perf_counter()
        for frame in source:
            reading = reader.read(frame)
            read_ms.append(reading.detect_ms + reading.classify_ms)
            if smoother is not None:
                reading = smoother.update(reading)
            now = time.perf_counter()
            dt = now - last
            last = now
            fps = 0.9 * fps + 0.1 * (1.0 / dt) if fps and dt > 0 else (1.0 / dt if dt > 0 else 0.0)
            if args.headless or server is not None:
                d = reading.to_dict()
                line = {"frame": frames, **({"path": str(source.current)} if source.kind == "dir" else {}),
                        "text": d["text"], "digits": d["digits"], "rejected": d["rejected"],
                        "ms": round(reading.detect_ms + reading.classify_ms, 3), "fps": round(fps, 1)}
                if args.headless:
                    print(json.dumps(line), flush=True)
            shown = None
            if args.save or window:
                shown = annotate(frame, reading, fps)
            if server is not None:  # annotated and encoded only while a viewer watches
                server.publish(line, (lambda: shown) if shown is not None
                               else (lambda: annotate(frame, reading, fps)))
            if shown is not None:
                if args.save:
                    if writer is None:
                        out = Path(args.save)
                        out.parent.mkdir(parents=True, exist_ok=True)
                        save_tmp = out.with_name(f".{out.stem}.tmp{out.suffix or '.mp4'}")
                        h, w = shown.shape[:2]
                        writer = cv2.VideoWriter(str(save_tmp), cv2.VideoWriter_fourcc(*"mp4v"), args.save_fps, (w, h))
                        if not writer.isOpened():
                            raise SourceError(f"{out}: cannot write video here (codec or folder)")
                    if shown.shape[:2] != (h, w):  # a folder of images of many sizes: one video size
                        shown = cv2.resize(shown, (w, h), interpolation=cv2.INTER_AREA)
                    writer.write(shown)
                if window:
                    cv2.imshow("mnist-edge", shown)
                    if cv2.waitKey(1) & 0xFF in (ord("q"), 27):
                        stop = "quit"
                        break
            frames += 1
            if args.max_frames and frames >= args.max_frames:
                stop = f"--max-frames {args.max_frames}"
                break
        else:
            stop = source.stop_reason or "source ended"
    except (KeyboardInterrupt, _Stop):
        stop = "interrupted"
    finally:
        source.close()
        if writer is not None:
            writer.release()
        if save_tmp is not None and save_tmp.exists():
            try:
                save_tmp.replace(args.save)
            except OSError as e:
                save_tmp.unlink(missing_ok=True)
                raise SourceError(f"{args.save}: cannot write the video there ({e.strerror})") from None
        if server is not None:
            server.close()
        if window:
            cv2.destroyAllWindows()
    elapsed = time.perf_counter() - t_start
    reader_ms = f" (reading: median {statistics.median(read_ms):.1f} ms a frame)" if read_ms else ""
    print(f"run: {frames} frames in {elapsed:.1f}s, mean {frames / elapsed if elapsed > 0 else 0:.1f} FPS{reader_ms}; "
          f"stopped: {stop}", file=sys.stderr)
    failed_source = source.kind == "camera" and stop.startswith("camera")
    return 1 if failed_source else 0


def _jpeg_quality(v: str) -> int:
    if not v.isdigit() or not 1 <= int(v) <= 100:
        raise argparse.ArgumentTypeError(f"{v!r} is not a JPEG quality from 1 to 100")
    return int(v)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m edge",
        description="Read handwritten digits from images, videos and cameras with an int8 model (no TensorFlow).",
        formatter_class=Help,
    )
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("classify", help="read digits in image files or folders",
                       formatter_class=Help,
                       description="One line per image with the text read; --json gives one JSON object per line: "
                       '{"path", "text", "digits": [{"label", "confidence", "box": [x, y, w, h]}], "rejected", "ms"} '
                       'or {"path", "error"}. Exit code 1 if any file could not be read.')
    c.add_argument("paths", nargs="+", metavar="PATH", help="image files or folders of images")
    c.add_argument("--json", action="store_true", help="JSON lines instead of text")
    _add_common(c)
    c.set_defaults(func=cmd_classify)
    r = sub.add_parser("run", help="live loop over a camera, video, image folder or synthetic frames",
                       formatter_class=Help,
                       description="Shows a window with boxes, digits, confidence and FPS (q or Esc quits), or with "
                       "--headless prints one JSON line per frame. Ctrl-C ends with a summary.")
    r.add_argument("--source", default="0", help="camera index, /dev/videoN, video file, image folder, or synthetic")
    r.add_argument("--headless", action="store_true", help="no window: one JSON line per frame on stdout (from a folder, with the image's path)")
    r.add_argument("--save", default=None, metavar="OUT.mp4", help="also write the annotated frames to a video (on an OpenCV without a GUI: instead of the window)")
    r.add_argument("--save-fps", type=positive, default=15.0, help="frame rate written into --save")
    r.add_argument("--max-frames", type=count("a frame count (0: never stop)"), default=0, help="stop after N frames (0: never)")
    r.add_argument("--smooth", type=count("a frame count (0 or 1: off)"), default=5,
                   help="average each box over the last N frames (0 or 1: off)")
    r.add_argument("--seed", type=seed, default=0, help="seed of the synthetic source")
    r.add_argument("--serve", default=None, metavar="[HOST:]PORT",
                   help="live view in a browser at http://HOST:PORT/ (HOST defaults to 127.0.0.1, this machine "
                   "only; 0.0.0.0 exposes the camera to the network). Works with or without --headless")
    r.add_argument("--jpeg-quality", type=_jpeg_quality, default=80, help="JPEG quality of the --serve stream (1-100)")
    _add_common(r)
    r.set_defaults(func=cmd_run)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    heap.keep_freed_memory()  # reuse each frame's buffers (edge.heap): ~15% of a frame's time under KVM
    try:
        return args.func(args)
    except (ModelError, SourceError, ServeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

"""Work the benchmark does in a fresh process (``python -m benchmarks.child ...``).

* ``cold``: the cold start. A new interpreter process imports the runtime,
  loads the model and runs one prediction, then prints the wall-clock time of
  that first result; the parent subtracts the moment it started the process.
  Nothing else is imported first, so this is what a user's program pays.
* ``keras``: the Keras float model as the reference. TensorFlow fixes its
  thread pools when it starts, so each thread count needs its own process.
  Timed through a compiled call (``tf.function`` with a fixed input
  signature), not ``model.predict``, which adds milliseconds of per-call
  overhead; ``--predict-ref`` also times ``model.predict`` on one image, which
  is what the tutorials do.

Each prints one line ``BENCH_RESULT {json}`` on stdout (TensorFlow writes its
own chatter around it).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

MARK = "BENCH_RESULT "
B64 = 64


def _emit(obj: dict) -> None:
    sys.stdout.write(MARK + json.dumps(obj) + "\n")
    sys.stdout.flush()


def _keras_setup(path: str, threads: int | None):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    if threads:
        tf.config.threading.set_intra_op_parallelism_threads(int(threads))
        tf.config.threading.set_inter_op_parallelism_threads(1)
    import keras

    model = keras.models.load_model(path, compile=False)
    return tf, model


def _compiled(tf, model, batch: int | None):
    return tf.function(lambda x: model(x, training=False), reduce_retracing=False,
                       input_signature=[tf.TensorSpec((batch, 28, 28, 1), tf.float32)])


def cold(args) -> int:
    import numpy as np

    x = np.zeros((1, 28, 28, 1), np.float32)
    if args.runtime == "keras":
        tf, model = _keras_setup(args.file, args.threads)
        y = _compiled(tf, model, 1)(tf.constant(x)).numpy()
    else:
        from edge.runtime import Model

        y = Model(args.file, runtime=args.runtime, threads=args.threads).predict(x)
    t_first = time.time()
    if y.shape != (1, 10):
        raise SystemExit(f"{args.file}: first prediction has shape {y.shape}, expected (1, 10)")
    _emit({"t_first": t_first, "vm_hwm_kb": vm_hwm_kb()})
    return 0


def vm_hwm_kb() -> int | None:
    """This process's peak resident set (VmHWM), or None without /proc.

    Not ru_maxrss: Linux carries that across exec, so a child forked from a big
    parent would report the parent's size.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def keras_bench(args) -> int:
    import numpy as np

    from benchmarks.timing import time_calls
    from edge import contract
    from edge.synthetic import load_test_digits

    tf, model = _keras_setup(args.model, args.threads)
    loaded = load_test_digits(args.data)
    if loaded is None:
        raise SystemExit(f"no MNIST test set in {args.data or '$MNIST_DIR'}; set MNIST_DIR or pass --data")
    digits, labels = loaded
    xs, ys = contract.to_float(digits[: max(args.test_images, B64)]), labels[: args.test_images]
    out: dict = {"threads": args.threads}

    if args.test_images > 0:  # 0: the parent already has the accuracy from another thread count
        anyb = _compiled(tf, model, None)
        n = len(ys)
        preds = [anyb(tf.constant(xs[i : min(i + 500, n)])).numpy().argmax(1) for i in range(0, n, 500)]
        out["accuracy"] = float((np.concatenate(preds) == ys).mean())
        out["test_images"] = int(n)

    one = _compiled(tf, model, 1)
    x1 = tf.constant(xs[:1])
    out["latency"] = time_calls(lambda: one(x1).numpy(), budget_s=args.budget, warmup_s=args.warmup)

    b64 = _compiled(tf, model, B64)
    x64 = tf.constant(xs[:B64])
    out["batch64"] = time_calls(lambda: b64(x64).numpy(), budget_s=args.b64_budget, warmup_s=args.warmup,
                                min_runs=3, min_warmup=2)

    if args.predict_ref:
        xp = xs[:1]
        out["predict"] = time_calls(lambda: model.predict(xp, verbose=0), budget_s=0.0, warmup_s=0.0,
                                    min_runs=args.predict_runs, min_warmup=2)
    _emit(out)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.child", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("cold", help="new process -> first prediction")
    c.add_argument("--file", required=True)
    c.add_argument("--runtime", required=True, help="ai_edge_litert, tflite_runtime, onnxruntime or keras")
    c.add_argument("--threads", type=int, default=None)
    k = sub.add_parser("keras", help="accuracy, batch-1 latency and batch-64 throughput of the Keras model")
    k.add_argument("--model", required=True)
    k.add_argument("--threads", type=int, default=None)
    k.add_argument("--data", default=None)
    k.add_argument("--test-images", type=int, default=10000)
    k.add_argument("--budget", type=float, default=2.0)
    k.add_argument("--b64-budget", type=float, default=1.0)
    k.add_argument("--warmup", type=float, default=0.3)
    k.add_argument("--predict-ref", action="store_true")
    k.add_argument("--predict-runs", type=int, default=15)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return cold(args) if args.cmd == "cold" else keras_bench(args)


if __name__ == "__main__":
    sys.exit(main())

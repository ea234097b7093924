"""``python -m export.parity``: the accuracy-parity gate.

Runs every artifact listed in ``manifest.json`` exactly as it is on disk (it
never re-exports), through the same runtime code the edge runner uses, on the
full 10,000-image MNIST test set, against the Keras float model. Writes
``parity.json``, ``parity.md`` and ``parity_disagreements.png`` and exits
non-zero when any artifact fails a check.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge import contract
from edge.clihelp import Help
from edge.fsutil import atomic_path, sha256_file, write_json, write_text
from edge.manifest import load_manifest
from edge.runtime import Model, ModelError

log = logging.getLogger("parity")


@dataclass(frozen=True)
class Gate:
    max_int8_drop_pp: float = 0.1  # accuracy loss vs Keras, percentage points
    min_int8_agreement: float = 0.997  # top-1 agreement with Keras
    max_float_dprob: float = 1e-4  # max |probability difference| for float artifacts


def _per_class(pred: np.ndarray, y: np.ndarray) -> list[float]:
    return [float((pred[y == c] == c).mean()) for c in range(10)]


def evaluate(artifacts_dir: Path, gate: Gate, *, data_dir: str | None = None, keras_path: Path | None = None) -> dict:
    """Run every artifact; return the report (``report["passed"]`` is the gate's verdict)."""
    from train.data import load_mnist

    manifest = load_manifest(artifacts_dir)
    (_, _), (x_test, y_test) = load_mnist(data_dir)
    x = contract.to_float(x_test)
    failures: list[str] = []

    src = keras_path or (manifest.root / manifest.data["source_model"]["file"])
    if not Path(src).is_file():
        raise ModelError(f"{src}: the Keras reference model is missing; pass --keras PATH or re-run `make train`")
    if sha256_file(src) != manifest.data["source_model"]["sha256"]:
        failures.append(f"{src}: the Keras model changed since export (sha256 differs); re-run `make export`")
    t0 = time.perf_counter()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from .export import load_keras

    ref_model = load_keras(Path(src))
    ref = np.asarray(ref_model.predict(x, batch_size=1000, verbose=0), np.float32)
    ref_pred = ref.argmax(1)
    ref_acc = float((ref_pred == y_test).mean())
    report = {
        "reference": {"file": str(src), "accuracy": ref_acc, "per_class_accuracy": _per_class(ref_pred, y_test)},
        "test_images": int(len(y_test)),
        "gate": gate.__dict__,
        "artifacts": [],
    }
    log.info("keras      %5.1fs accuracy %.4f%%", time.perf_counter() - t0, 100 * ref_acc)

    preds = {}
    if not manifest.artifacts:
        failures.append(f"{manifest.path}: lists no artifacts, so nothing was gated; re-run `make export`")
    for art in manifest.artifacts:
        t = time.perf_counter()
        row = {"key": art.key, "file": art.file, "format": art.format, "precision": art.precision,
               "bytes": art.entry.get("bytes"), "sha256": art.entry.get("sha256"), "checks": {}, "failures": []}
        try:
            art.verify()
            m = Model(art.path)
            probs = m.predict(x)
        except ModelError as e:
            row["failures"].append(str(e))
            failures.append(f"{art.key}: {e}")
            report["artifacts"].append(row)
            continue
        pred = probs.argmax(1)
        preds[art.key] = pred
        acc = float((pred == y_test).mean())
        changed = np.flatnonzero(pred != ref_pred)
        row.update(
            runtime=m.runtime,
            accuracy=acc,
            delta_pp=100 * (acc - ref_acc),
            agreement=float(1 - len(changed) / len(pred)),
            max_abs_dprob=float(np.abs(probs - ref).max()),
            per_class_accuracy=_per_class(pred, y_test),
            changed_indices=changed.tolist(),
            seconds=round(time.perf_counter() - t, 2),
        )
        if art.precision == "float32":
            ok = row["max_abs_dprob"] <= gate.max_float_dprob
            row["checks"]["max_abs_dprob"] = ok
            if not ok:
                row["failures"].append(f"max |Δprob| {row['max_abs_dprob']:.2e} > {gate.max_float_dprob:g}")
        else:
            ok_drop = -row["delta_pp"] <= gate.max_int8_drop_pp + 1e-9  # 0.1 pp is exactly 10 images
            ok_agree = row["agreement"] >= gate.min_int8_agreement
            row["checks"].update(accuracy_drop=ok_drop, agreement=ok_agree)
            if not ok_drop:
                row["failures"].append(f"accuracy {100 * acc:.2f}% is {-row['delta_pp']:.2f} pp below Keras "
                                       f"(limit {gate.max_int8_drop_pp} pp)")
            if not ok_agree:
                row["failures"].append(f"agrees with Keras on {100 * row['agreement']:.2f}% of test images "
                                       f"(limit {100 * gate.min_int8_agreement:.2f}%)")
        failures.extend(f"{art.key} ({art.file}): {f}" for f in row["failures"])
        report["artifacts"].append(row)
        log.info("%-14s %5.1fs accuracy %.2f%% (%+.2f pp), agreement %.2f%%, max|Δp| %.1e%s",
                 art.key, row["seconds"], 100 * acc, row["delta_pp"], 100 * row["agreement"], row["max_abs_dprob"],
                 "" if not row["failures"] else "  FAIL")
    report["failures"] = failures
    report["passed"] = not failures
    report["_preds"] = preds
    report["_ref_pred"] = ref_pred
    report["_x"] = x_test
    report["_y"] = y_test
    return report


def markdown(report: dict) -> str:
    ref = report["reference"]
    lines = [
        f"# Parity: {'PASS' if report['passed'] else 'FAIL'}",
        "",
        f"Keras float reference: **{100 * ref['accuracy']:.2f}%** on {report['test_images']:,} MNIST test images.",
        "",
        "| artifact | precision | size | accuracy | Δ vs Keras | agreement | max \\|Δp\\| | result |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in report["artifacts"]:
        if "accuracy" not in r:
            lines.append(f"| {r['file']} | {r['precision']} | | | | | | FAIL: {'; '.join(r['failures'])} |")
            continue
        lines.append(
            f"| {r['file']} | {r['precision']} | {r['bytes'] / 1024:.1f} KB | {100 * r['accuracy']:.2f}% | "
            f"{r['delta_pp']:+.2f} pp | {100 * r['agreement']:.2f}% | {r['max_abs_dprob']:.1e} | "
            f"{'pass' if not r['failures'] else 'FAIL: ' + '; '.join(r['failures'])} |"
        )
    g = report["gate"]
    lines += ["", f"Gate: int8 loses at most {g['max_int8_drop_pp']} pp and agrees on at least "
              f"{100 * g['min_int8_agreement']:.1f}% of images; float max |Δp| ≤ {g['max_float_dprob']:g}.", ""]
    return "\n".join(lines)


def plot_disagreements(report: dict, path: Path, limit: int = 40) -> None:
    """Test images where an int8 artifact and its float counterpart disagree, with both predictions."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    preds, x, y = report["_preds"], report["_x"], report["_y"]
    cases = []
    for key, pred in preds.items():
        if not key.endswith("int8"):
            continue
        float_key = key.replace("int8", "float32")
        ref = preds.get(float_key, report["_ref_pred"])
        for i in np.flatnonzero(pred != ref):
            cases.append((key, int(i), int(ref[i]), int(pred[i])))
    cols = 10
    rows = max(1, -(-min(len(cases), limit) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.3, rows * 1.6 + 0.6), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (key, i, f, q) in zip(axes.flat, cases[:limit]):
        ax.imshow(x[i], cmap="gray")
        ax.set_title(f"#{i} true {y[i]}\nfloat {f} int8 {q}\n{key.split('_')[0]}", fontsize=7)
    fig.suptitle(f"int8 vs float disagreements: {len(cases)}" + (f" (first {limit})" if len(cases) > limit else "")
                 if cases else "int8 and float agree on every test image", fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)


def write_reports(report: dict, out: Path) -> None:
    public = {k: v for k, v in report.items() if not k.startswith("_")}
    write_json(out / "parity.json", public)
    write_text(out / "parity.md", markdown(report))
    plot_disagreements(report, out / "parity_disagreements.png")


def build_parser() -> argparse.ArgumentParser:
    g = Gate()
    p = argparse.ArgumentParser(
        prog="python -m export.parity",
        description="Accuracy-parity gate: every artifact in DIR/manifest.json, as it is on disk, on the full "
        "MNIST test set through the edge runtime, against the Keras model. Exits 1 if any check fails.",
        formatter_class=Help,
    )
    p.add_argument("--artifacts", default="artifacts", metavar="DIR", help="folder with manifest.json")
    p.add_argument("--keras", default=None, help="Keras reference model (default: the manifest's source model)")
    p.add_argument("--data", default=None, metavar="DIR", help="MNIST folder (default: $MNIST_DIR)")
    p.add_argument("--max-int8-drop", type=float, default=g.max_int8_drop_pp,
                   help="largest int8 accuracy loss vs Keras, in percentage points")
    p.add_argument("--min-agreement", type=float, default=g.min_int8_agreement,
                   help="smallest int8 top-1 agreement with Keras (fraction)")
    p.add_argument("--max-float-dprob", type=float, default=g.max_float_dprob,
                   help="largest |probability difference| for float artifacts")
    return p


def main(argv: list[str] | None = None) -> int:
    from train.data import DataError

    from .export import ExportError

    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    gate = Gate(args.max_int8_drop, args.min_agreement, args.max_float_dprob)
    out = Path(args.artifacts)
    try:
        report = evaluate(out, gate, data_dir=args.data, keras_path=Path(args.keras) if args.keras else None)
    except (ModelError, DataError, ExportError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    write_reports(report, out)
    print(markdown(report))
    if not report["passed"]:
        for f in report["failures"]:
            print(f"parity gate FAILED: {f}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

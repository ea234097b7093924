"""bench.md (the tables) and bench.png (batch-1 latency vs test accuracy)."""

from __future__ import annotations

from pathlib import Path

from edge.fsutil import atomic_path

DASH = "–"


def _f(v, fmt: str) -> str:
    return DASH if v is None else format(v, fmt)


def _threads(v) -> str:
    return DASH if v is None else str(v)


def model_table(rows: list[dict]) -> list[str]:
    out = [
        "| format | precision | runtime | threads | size KB | test acc % | b1 median ms | b1 p90 ms | b1 p99 ms | runs "
        "| b64 img/s | cold start ms | peak RSS MB | int8/float | status |",
        "|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|",
    ]
    notes: list[str] = []  # long reasons go under the table, numbered, each once
    for r in rows:
        rtv = r["runtime"] + (f" {r['runtime_version']}" if r.get("runtime_version") else "")
        status = r["status"]
        for what, value, note in (("b64", r.get("b64_images_per_s"), r.get("b64_note")),
                                  ("cold start", r.get("cold_start_ms"), r.get("cold_note"))):
            if r["status"] == "ok" and value is None and note:
                if note not in notes:
                    notes.append(note)
                status += f"; {what} [{notes.index(note) + 1}]"
        out.append(
            f"| {r['format']} | {r['precision']} | {rtv} | {_threads(r['threads'])} | "
            f"{_f(r['bytes'] / 1024 if r.get('bytes') else None, '.1f')} | "
            f"{_f(100 * r['accuracy'] if r.get('accuracy') is not None else None, '.2f')} | "
            f"{_f(r.get('latency_median_ms'), '.3f')} | {_f(r.get('latency_p90_ms'), '.3f')} | "
            f"{_f(r.get('latency_p99_ms'), '.3f')} | {_f(r.get('latency_runs'), 'd')} | "
            f"{_f(r.get('b64_images_per_s'), ',.0f')} | {_f(r.get('cold_start_ms'), '.0f')} | "
            f"{_f(r.get('peak_rss_mb'), '.0f')} | {_f(r.get('int8_float_latency_ratio'), '.2f')} | {status} |"
        )
    if notes:
        out += [""] + [f"[{i}] {n}  " for i, n in enumerate(notes, 1)]
    return out


def pipeline_table(rows: list[dict]) -> list[str]:
    out = ["| model | runtime | threads | digits/frame | detect ms | classify ms | total ms | total p90 ms | FPS "
           "| runs | exact text | status |",
           "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|"]
    for r in rows:
        out.append(
            f"| {r['key']} | {r.get('runtime', DASH)} | {r['threads']} | {r['digits']} | {_f(r.get('detect_ms'), '.2f')} | "
            f"{_f(r.get('classify_ms'), '.2f')} | {_f(r.get('total_ms'), '.2f')} | {_f(r.get('total_p90_ms'), '.2f')} | "
            f"{_f(r.get('fps'), '.1f')} | {_f(r.get('runs'), 'd')} | "
            f"{_f(100 * r['exact_text'], '.0f') + '%' if r.get('exact_text') is not None else DASH} | {r['status']} |"
        )
    return out


def _heap_line(rows: list[dict]) -> list[str]:
    """How the pipeline's process allocated its frame buffers (see edge.heap), when the rows say."""
    states = sorted({r["heap"] for r in rows if r.get("heap")})
    if not states:
        return []
    if states == ["set"]:
        return ["Freed frame buffers kept for reuse (`edge.heap`, as `python -m edge` runs).", ""]
    return [f"Heap left as it was ({'; '.join(states)}): each frame's buffers may start on fresh pages.", ""]


def _int8_line(host: dict) -> str:
    """What the CPU offers int8 kernels: the line that explains the int8/float column."""
    dot, simd = host.get("int8_dot"), host.get("simd")
    if dot is None:  # not read (not Linux, or a report written before this line existed)
        return "CPU features: not read; int8/float depends on whether the CPU has integer dot-product instructions."
    vector = f" (vector: {', '.join(simd)})" if simd else ""
    if dot:
        return f"Integer dot-product instructions: {', '.join(dot)}{vector}: int8 kernels take their fast path."
    return (f"Integer dot-product instructions: none{vector}: int8 kernels lack their fast path, and int8 may "
            "be no faster than float here, or slower (see the int8/float column).")


def markdown(report: dict) -> str:
    h = report["host"]
    s = report["settings"]
    lines = [
        "# Benchmarks",
        "",
        f"Host: {h['cpu']}, {h['cores']} usable core(s), {h['os']}, Python {h['python']}; "
        f"load average at start {', '.join(f'{v:.2f}' for v in h['loadavg_at_start'] or [])}.",
        _int8_line(h),
        f"Mode: {'--quick (tiny budgets, not for comparison)' if report.get('quick') else 'full'}; "
        f"{s['test_images']} test images, {s['budget_s']} s of timed batch-1 calls per row after {s['warmup_s']} s "
        f"warm-up, cold start = median of {s['cold_runs']} new processes (Keras: {s['keras_cold_runs']}).",
        "",
        "## Models",
        "",
        "b1 = one image through `Model.invoke` on an already-encoded batch (the interpreter only); Keras: a "
        "`tf.function` with a fixed (1, 28, 28, 1) signature. b64 = batch of 64 where the artifact allows it. "
        "int8/float = int8 median / float32 median for the same runtime and thread count (< 1: int8 is faster). "
        "Cold start = new process until the first prediction; peak RSS of that process.",
        "",
        *model_table(report["rows"]),
        "",
    ]
    if report.get("pipeline"):
        lines += ["## Edge pipeline (`Reader.read`, synthetic 640×480 frames, one thread)", "",
                  *pipeline_table(report["pipeline"]), "", *_heap_line(report["pipeline"])]
    kp = report.get("keras_predict")
    if kp:
        lines += ["## What the tutorials do", "",
                  f"Keras `model.predict` on one image ({kp['threads']} threads): median {kp['median_ms']:.2f} ms, "
                  f"p90 {kp['p90_ms']:.2f} ms over {kp['runs']} calls after {kp['warmup_runs']} warm-up calls.", ""]
    return "\n".join(lines)


def plot(report: dict, path: Path) -> None:
    """Batch-1 median latency (log x) vs test accuracy, one point per artifact x runtime x threads."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in report["rows"] if r["status"] == "ok" and r.get("latency_median_ms") and r.get("accuracy")]
    fig, ax = plt.subplots(figsize=(8, 5), dpi=110)
    colors = {}
    palette = plt.get_cmap("tab10")
    for r in rows:
        name = f"{r['format']} / {r['runtime']}"
        c = colors.setdefault(name, palette(len(colors) % 10))
        marker = "^" if r["precision"] == "int8" else "o"
        filled = r["threads"] == 1
        ax.scatter(r["latency_median_ms"], 100 * r["accuracy"], marker=marker, s=70,
                   facecolors=c if filled else "none", edgecolors=c, linewidths=1.5)
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], marker="s", linestyle="", color=c, label=n) for n, c in colors.items()]
    handles += [Line2D([], [], marker="o", linestyle="", color="grey", label="float32"),
                Line2D([], [], marker="^", linestyle="", color="grey", label="int8"),
                Line2D([], [], marker="o", linestyle="", markerfacecolor="none", color="grey",
                       label="filled: 1 thread, hollow: all cores")]
    ax.legend(handles=handles, fontsize=8, loc="best")
    ax.set_xscale("log")
    ax.set_xlabel("batch-1 median latency, ms (log scale)")
    ax.set_ylabel("MNIST test accuracy, %")
    ax.set_title(f"Latency vs accuracy ({report['host']['cpu']}, {report['host']['cores']} cores)", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)

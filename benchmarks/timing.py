"""Timing helpers: warm up, then time single calls until a time budget is spent.

The run count is sized by the budget, not fixed, so a slow model gets fewer
runs and a fast one many more in the same wall time; every result says how
many runs its median stands on. Standard library and numpy only (the Keras
child process uses these too).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np


def percentiles_ms(samples_ns: list[int] | np.ndarray) -> dict:
    a = np.asarray(samples_ns, dtype=np.float64) / 1e6
    return {
        "median_ms": float(np.median(a)),
        "p90_ms": float(np.percentile(a, 90)),
        "p99_ms": float(np.percentile(a, 99)),
        "mean_ms": float(a.mean()),
        "min_ms": float(a.min()),
        "runs": int(a.size),
    }


def time_calls(fn: Callable[[], object], *, budget_s: float, warmup_s: float, min_runs: int = 5,
               min_warmup: int = 3, max_runs: int = 200_000) -> dict:
    """Warm ``fn`` up for ``warmup_s`` (at least ``min_warmup`` calls), then time one call at a time.

    Stops once ``budget_s`` of timed calls have run and at least ``min_runs``
    have been made (or at ``max_runs``). Returns median/p90/p99/mean/min in ms,
    the run count and the warm-up count.
    """
    clock = time.perf_counter_ns
    warm, end = 0, clock() + int(warmup_s * 1e9)
    while warm < min_warmup or clock() < end:
        fn()
        warm += 1
    samples: list[int] = []
    spent, budget_ns = 0, int(budget_s * 1e9)
    while (spent < budget_ns or len(samples) < min_runs) and len(samples) < max_runs:
        t0 = clock()
        fn()
        dt = clock() - t0
        samples.append(dt)
        spent += dt
    out = percentiles_ms(samples)
    out["warmup_runs"] = warm
    return out

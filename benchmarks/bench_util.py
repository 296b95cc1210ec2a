"""Helpers shared by the benchmark modules: the selected mode, parameters, timing a contender."""
import os

import numpy as np
import pytest

from gradflow.bench.workloads import IMPLS, MODES, workloads

__all__ = ["MODE", "IMPLS", "by_key", "run_benchmark"]

MODE = os.environ.get("GRADFLOW_BENCH_MODE", "full").strip() or "full"
if MODE not in MODES:
    raise pytest.UsageError(f"GRADFLOW_BENCH_MODE={MODE!r}: expected one of {sorted(MODES)}")


def by_key(key):
    """The workloads of family `key` in the selected mode, as pytest params with size ids."""
    return [pytest.param(w, id=w.size.replace(" ", "").replace(",", "-"))
            for w in workloads(MODE) if w.key == key]


def run_benchmark(benchmark, workload, impl, device, fn):
    """Time `fn` in its workload's group (so contenders land side by side in the table) and
    return its last result as a host float array, for the caller's sanity checks."""
    benchmark.group = workload.group
    benchmark.extra_info.update(impl=impl, device=str(device), mode=MODE,
                                ops_per_iteration=workload.ops)
    return _host(benchmark(fn))


def _host(r):
    if hasattr(r, "detach"):  # torch
        r = r.detach().cpu().numpy()
    elif hasattr(r, "numpy"):  # gradflow
        r = r.numpy()
    elif hasattr(r, "get"):  # cupy
        r = r.get()
    return np.asarray(r, dtype=float)

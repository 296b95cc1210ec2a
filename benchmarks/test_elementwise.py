"""Elementwise chain (8 ops and a sum) forward and backward: 32x32 is overhead-bound (per-op
Python cost), 4096x4096 bandwidth-bound. Per-op figures: time / workload.ops."""
import numpy as np
import pytest
from bench_util import IMPLS, by_key, run_benchmark


@pytest.mark.parametrize("workload", by_key("chain"))
@pytest.mark.parametrize("impl", IMPLS)
def test_chain(benchmark, workload, impl, device, contender):
    loss = run_benchmark(benchmark, workload, impl, device, contender)
    n = int(workload.size.split("x")[0])
    # sigmoid's values lie in (0, 1): the summed loss must too, per element.
    assert np.isfinite(loss) and 0 < loss < n * n

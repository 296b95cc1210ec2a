"""Reductions forward and backward: sum, mean, max, logsumexp and var over an axis."""
import numpy as np
import pytest
from bench_util import IMPLS, by_key, run_benchmark


@pytest.mark.parametrize("workload", by_key("reductions"))
@pytest.mark.parametrize("impl", IMPLS)
def test_reductions(benchmark, workload, impl, device, contender):
    loss = run_benchmark(benchmark, workload, impl, device, contender)
    assert np.isfinite(loss)

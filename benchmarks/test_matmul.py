"""Matmul forward and backward (a @ b, then dy @ b.T and a.T @ dy): gradflow against NumPy's
(CuPy's) own matmuls for the same three products, and PyTorch."""
import numpy as np
import pytest
from bench_util import IMPLS, by_key, run_benchmark


@pytest.mark.parametrize("workload", by_key("matmul"))
@pytest.mark.parametrize("impl", IMPLS)
def test_matmul(benchmark, workload, impl, device, contender):
    y = run_benchmark(benchmark, workload, impl, device, contender)
    n = int(workload.size.split("x")[0])
    assert y.shape == (n, n) and np.isfinite(y).all()

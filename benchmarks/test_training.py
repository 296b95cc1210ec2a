"""Training: one MLP step (784-1000-1000-10, cross-entropy, Adam) at several batch sizes, and
one epoch over the embedded 4,000-digit MNIST training sample."""
import math

import numpy as np
import pytest
from bench_util import IMPLS, by_key, run_benchmark


@pytest.mark.parametrize("workload", by_key("mlp_step"))
@pytest.mark.parametrize("impl", IMPLS)
def test_mlp_step(benchmark, workload, impl, device, contender):
    loss = run_benchmark(benchmark, workload, impl, device, contender)
    # Random labels over 10 classes: the cross-entropy stays near log(10) for many steps.
    assert np.isfinite(loss) and 0 < loss < 3 * math.log(10)


@pytest.mark.parametrize("workload", by_key("mnist_epoch"))
@pytest.mark.parametrize("impl", IMPLS)
def test_mnist_epoch(benchmark, workload, impl, device, contender):
    loss = run_benchmark(benchmark, workload, impl, device, contender)
    assert np.isfinite(loss) and 0 < loss < math.log(10) + 0.5

"""Training: one MLP step (784-1000-1000-10, cross-entropy, Adam) at several batch sizes, one
epoch over the embedded 4,000-digit MNIST training sample, one step of the MNIST example's
CNN (two 3x3 convolutions, max-pool, two linear layers; cross-entropy, Adam) at batch 64, and a 3x3 convolution's forward and backward alone (batch 32, 64->64 channels, 56x56)."""
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


@pytest.mark.parametrize("workload", by_key("cnn_step"))
@pytest.mark.parametrize("impl", IMPLS)
def test_cnn_step(benchmark, workload, impl, device, contender):
    loss = run_benchmark(benchmark, workload, impl, device, contender)
    # Random labels over 10 classes: the cross-entropy stays near log(10) for many steps.
    assert np.isfinite(loss) and 0 < loss < 3 * math.log(10)


@pytest.mark.parametrize("workload", by_key("conv2d"))
@pytest.mark.parametrize("impl", IMPLS)
def test_conv2d(benchmark, workload, impl, device, contender):
    y = run_benchmark(benchmark, workload, impl, device, contender)
    assert y.ndim == 4 and np.isfinite(y).all()

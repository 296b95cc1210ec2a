"""Shared fixtures: the `device` fixture runs a test on every backend present."""
import os

import pytest
from hypothesis import HealthCheck, settings

import gradflow as gf

# Shared CI machines are noisy: no per-example deadline; a bounded number of examples.
settings.register_profile(
    "gradflow", deadline=None, max_examples=int(os.environ.get("GRADFLOW_HYPOTHESIS_EXAMPLES", 25)),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.load_profile("gradflow")

_CUDA_REASON = ("no CUDA device: CuPy is not installed or sees no GPU "
                "(install the cuda12/cuda13 extra on a machine with an NVIDIA GPU)")


@pytest.fixture(params=["cpu", "cuda"])
def device(request):
    """Each backend present: 'cpu' always, 'cuda' when CuPy sees a GPU (else skipped)."""
    if request.param == "cuda" and not gf.cuda_available():
        pytest.skip(_CUDA_REASON)
    return gf.device(request.param)


@pytest.fixture(autouse=True)
def _seed():
    gf.manual_seed(0)
    yield

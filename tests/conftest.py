"""Shared fixtures: the `device` fixture runs a test on every backend present."""
import os
import signal

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


# A per-test time limit, for machines without pytest-timeout (scripts/gpu-proof.sh): with
# GRADFLOW_TEST_TIMEOUT=SECONDS set, a test whose call runs longer fails (SIGALRM on the main
# thread, so a hung test cannot eat the whole run); unset, nothing is installed.
_TEST_TIMEOUT = os.environ.get("GRADFLOW_TEST_TIMEOUT", "").strip()
if _TEST_TIMEOUT:
    try:
        _TEST_TIMEOUT_S = float(_TEST_TIMEOUT)
    except ValueError:
        raise pytest.UsageError(
            f"GRADFLOW_TEST_TIMEOUT={_TEST_TIMEOUT!r}: expected a number of seconds") from None

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_call(item):
        def expired(signum, frame):
            # The traceback shows where the test was when time ran out.
            pytest.fail(f"ran longer than GRADFLOW_TEST_TIMEOUT={_TEST_TIMEOUT_S:g} s")
        previous = signal.signal(signal.SIGALRM, expired)
        signal.setitimer(signal.ITIMER_REAL, _TEST_TIMEOUT_S)
        try:
            yield
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)

"""The benchmark suite's fixtures and ordering: devices, contenders, a pause between libraries.

Run it with `python -m pytest benchmarks/ --benchmark-only` (timings) or
`python -m pytest benchmarks/ --benchmark-disable` (each benchmark once, as a test).
GRADFLOW_BENCH_MODE picks the problem sizes: full (default: the sizes the issue names), quick,
or tiny (seconds; what CI uses to keep the suite from rotting).
"""
import time

import pytest

import gradflow as gf
from bench_util import IMPLS, MODE
from gradflow.bench.report import format_table, targets
from gradflow.bench.workloads import Unavailable, workloads

# gradflow's figures with the opt-in its training scripts and the report make (see
# gradflow.backend.host_malloc); PyTorch runs in this process, so it gets the thresholds too.
gf.tune_host_malloc()

_CUDA_REASON = ("no CUDA device: CuPy is not installed or sees no GPU "
                "(install the cuda12/cuda13 extra on a machine with an NVIDIA GPU)")

# PyTorch's OpenMP threads and OpenBLAS's threads both spin for a while after each parallel
# region; on a machine with few cores, either library then runs several times slower while the
# other's threads spin. So the suite runs every gradflow benchmark first, then the hand-written
# ones, then PyTorch's, and pauses where the library changes (not in tiny mode: no timings).
_SETTLE_S = 0.0 if MODE == "tiny" else 1.5
_last_library = [None]


def pytest_collection_modifyitems(items):
    """Order the benchmarks by contender (gradflow, hand, torch); stable within each."""
    def rank(item):
        spec = getattr(item, "callspec", None)
        impl = spec.params.get("impl") if spec is not None else None
        return IMPLS.index(impl) if impl in IMPLS else len(IMPLS)
    items.sort(key=rank)


@pytest.fixture(params=["cpu", "cuda"])
def device(request):
    """Each device present: 'cpu' always, 'cuda' when CuPy sees a GPU (else skipped)."""
    if request.param == "cuda" and not gf.cuda_available():
        pytest.skip(_CUDA_REASON)
    return gf.device(request.param)


@pytest.fixture
def contender(request, device):
    """The timed callable of the test's (workload, impl) on `device`; skips with the reason
    when that contender cannot run here."""
    w = request.getfixturevalue("workload")
    impl = request.getfixturevalue("impl")
    library = "torch" if impl == "torch" else "numpy"
    if _last_library[0] not in (None, library):
        time.sleep(_SETTLE_S)
    try:
        fn = w.build(impl, device)
    except Unavailable as exc:
        pytest.skip(str(exc))
    _last_library[0] = library
    return fn


@pytest.hookimpl(trylast=True)  # after pytest-benchmark's own tables
def pytest_terminal_summary(terminalreporter, config):
    """After pytest-benchmark's own tables: gradflow's ratios to the other contenders and the
    GPU's speedup, per workload, as `python -m gradflow.bench` prints them."""
    session = getattr(config, "_benchmarksession", None)
    result = summary(getattr(session, "benchmarks", None) or [])
    if result is not None:
        terminalreporter.write_sep("-", "gradflow vs hand-written and PyTorch (best of rounds)")
        terminalreporter.write_line(format_table(result))


def summary(benchmarks):
    """The report's result dict built from pytest-benchmark's measurements, or None when
    nothing was timed (--benchmark-disable)."""
    rows, devices = {}, []
    for b in benchmarks:
        info = b.extra_info
        stats = getattr(b, "stats", None)
        if not info.get("impl") or stats is None or not getattr(stats, "rounds", 0):
            continue
        w = next((w for w in workloads(MODE) if w.group == b.group), None)
        if w is None:
            continue
        row = rows.setdefault(w.group, {"workload": w.key, "title": w.title, "size": w.size,
                                        "ops_per_iteration": w.ops, "timings": {},
                                        "missing": {}})
        row["timings"][f"{info['impl']}/{info['device']}"] = {"best_s": stats.min}
        if info["device"] not in devices:
            devices.append(info["device"])
    if not rows:
        return None
    devices.sort(key=lambda d: (d != "cpu", d))
    result = {"rows": list(rows.values()), "devices": devices, "memory": None,
              "unmeasured": [] if len(devices) > 1 else
              ["no GPU in this run: the GPU column is unmeasured"]}
    result["targets"] = targets(result)
    return result

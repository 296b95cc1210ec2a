"""gradflow.backend.host_malloc: freed buffers stay in the process instead of being faulted in
again each step (see its docstring); checked by counting page faults, never by timing."""
import os
import subprocess
import sys
import textwrap

import pytest

from gradflow.backend import host_malloc

_GLIBC_VARS = ("GRADFLOW_MALLOC", "MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_",
               "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_", "GLIBC_TUNABLES")

# Six 4 MiB buffers written and freed per iteration: more than twice the largest buffer is freed
# at the top of the heap at once, which glibc's default trim gives back to the kernel.
_FAULTS_PER_ITERATION = textwrap.dedent("""
    import resource
    import gradflow
    from gradflow.backend import host_malloc, numpy_backend
    np = numpy_backend.np

    def iteration():
        bufs = [np.ones(1 << 20, np.float32) for _ in range(6)]
        del bufs

    for _ in range(3):
        iteration()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(10):
        iteration()
    after = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    print(host_malloc.settings()["applied"], (after - before) / 10)
""")


def _faults(**env):
    clean = {k: v for k, v in os.environ.items() if k not in _GLIBC_VARS}
    out = subprocess.run([sys.executable, "-c", _FAULTS_PER_ITERATION], env={**clean, **env},
                         capture_output=True, text=True, check=True).stdout.split()
    return out[0] == "True", float(out[1])


def _is_glibc():
    return sys.platform.startswith("linux") and host_malloc._glibc_mallopt() is not None


@pytest.mark.skipif(not _is_glibc(), reason="the malloc thresholds are tuned on glibc only")
def test_freed_buffers_are_reused_without_page_faults():
    tuned, faults = _faults()
    untuned, system_faults = _faults(GRADFLOW_MALLOC="system")
    assert tuned and not untuned
    if system_faults < 1000:
        pytest.skip(f"this glibc keeps the freed buffers by itself ({system_faults:.0f} faults "
                    "per iteration with its defaults): nothing to compare")
    assert faults < system_faults / 100, (faults, system_faults)


@pytest.mark.parametrize("env, why", [
    ({"GRADFLOW_MALLOC": "system"}, "GRADFLOW_MALLOC=system"),
    ({"GRADFLOW_MALLOC": " System "}, "GRADFLOW_MALLOC=system"),
    ({"MALLOC_TRIM_THRESHOLD_": "0"}, "MALLOC_TRIM_THRESHOLD_ is set"),
    ({"MALLOC_MMAP_MAX_": "0"}, "MALLOC_MMAP_MAX_ is set"),
    ({"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=0"}, "GLIBC_TUNABLES sets glibc.malloc"),
])
def test_the_users_choice_wins(env, why):
    assert host_malloc._skip_reason(env) == why


def test_other_settings_do_not_opt_out():
    assert host_malloc._skip_reason({"GRADFLOW_MALLOC": "", "GLIBC_TUNABLES": "glibc.rtld.x=1"}) \
        == (None if sys.platform.startswith("linux") else f"not Linux ({sys.platform})")


def test_settings_report_what_was_done():
    s = host_malloc.settings()
    assert s == host_malloc.tune()  # tuned once, at import; later calls only report
    if s["applied"]:
        assert s["mmap_threshold"] == host_malloc.MMAP_THRESHOLD
        assert s["trim_threshold"] == host_malloc.TRIM_THRESHOLD
    else:
        assert s["why"]

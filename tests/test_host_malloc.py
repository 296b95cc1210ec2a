"""gradflow.backend.host_malloc: an opt-in (gradflow.tune_host_malloc() or GRADFLOW_MALLOC=tuned)
that keeps freed buffers in the process instead of faulting them in again each step (see its
docstring); importing gradflow alone leaves malloc alone. Checked by counting page faults, never by
timing."""
import json
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
    import sys
    import gradflow
    from gradflow.backend import host_malloc, numpy_backend
    np = numpy_backend.np
    if "call" in sys.argv:
        gradflow.tune_host_malloc()

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


def _run(code, *args, **env):
    clean = {k: v for k, v in os.environ.items() if k not in _GLIBC_VARS}
    return subprocess.run([sys.executable, "-c", code, *args], env={**clean, **env},
                          capture_output=True, text=True)


def _faults(*args, **env):
    """(tuned?, page faults per iteration) in a fresh process; args "call": call the opt-in."""
    proc = _run(_FAULTS_PER_ITERATION, *args, **env)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.split()
    return out[0] == "True", float(out[1])


def _is_glibc():
    return sys.platform.startswith("linux") and host_malloc._glibc_mallopt() is not None


@pytest.mark.skipif(not _is_glibc(), reason="the malloc thresholds are tuned on glibc only")
def test_freed_buffers_are_reused_without_page_faults_when_asked_for():
    tuned, faults = _faults(GRADFLOW_MALLOC="tuned")
    called, called_faults = _faults("call")
    untuned, default_faults = _faults()
    refused, system_faults = _faults("call", GRADFLOW_MALLOC="system")
    assert tuned and called and not untuned and not refused
    if default_faults < 1000:
        pytest.skip(f"this glibc keeps the freed buffers by itself ({default_faults:.0f} faults "
                    "per iteration with its defaults): nothing to compare")
    assert faults < default_faults / 100, (faults, default_faults)
    assert called_faults < default_faults / 100, (called_faults, default_faults)
    assert system_faults > default_faults / 10, (system_faults, default_faults)


_REPORT = textwrap.dedent("""
    import json
    import sys
    import gradflow as gf
    from gradflow.backend import host_malloc
    from gradflow import nn, optim
    model = nn.MLP([8, 16, 2])
    opt = optim.Adam(model.parameters())
    model(gf.randn(4, 8)).sum().backward()
    opt.step()
    before = host_malloc.settings()
    after = gf.tune_host_malloc() if "call" in sys.argv else None
    print(json.dumps([before, after, host_malloc.settings()]))
""")


def _report(*args, **env):
    proc = _run(_REPORT, *args, **env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_importing_gradflow_leaves_malloc_alone():
    # A fresh process: import, build a model, train a step, and nothing has been tuned.
    before, _, after = _report()
    assert before == after == {"applied": False, "why": before["why"]}
    assert "not requested" in before["why"] and "tune_host_malloc" in before["why"]
    before, _, _ = _report(GRADFLOW_MALLOC="")
    assert before["applied"] is False and "not requested" in before["why"]
    before, _, _ = _report(GRADFLOW_MALLOC="system")
    assert before["applied"] is False and "not requested" in before["why"]


def test_the_opt_in_by_call_and_by_environment():
    expected = ({"applied": True, "mmap_threshold": host_malloc.MMAP_THRESHOLD,
                 "trim_threshold": host_malloc.TRIM_THRESHOLD} if _is_glibc() else None)
    before, called, after = _report("call")
    assert before["applied"] is False and called == after
    if expected is not None:
        assert called == expected
    else:
        assert called["applied"] is False and called["why"]
    at_import, again, after = _report("call", GRADFLOW_MALLOC="tuned")
    assert at_import == again == after  # tuned at import; the call only reports
    if expected is not None:
        assert at_import == expected
    refused, called, _ = _report("call", GRADFLOW_MALLOC="System ")
    assert refused["applied"] is False and "not requested" in refused["why"]
    assert called == {"applied": False, "why": "GRADFLOW_MALLOC=system"}  # the env wins
    _, called, _ = _report("call", MALLOC_TRIM_THRESHOLD_="0")
    assert called == {"applied": False, "why": "MALLOC_TRIM_THRESHOLD_ is set"}


def test_an_unknown_gradflow_malloc_value_is_an_error():
    proc = _run("import gradflow", GRADFLOW_MALLOC="yes")
    assert proc.returncode != 0
    assert "GRADFLOW_MALLOC must be 'tuned'" in proc.stderr and "'yes'" in proc.stderr
    with pytest.raises(ValueError, match="GRADFLOW_MALLOC must be 'tuned'"):
        host_malloc.requested({"GRADFLOW_MALLOC": "on"})
    assert host_malloc.requested({"GRADFLOW_MALLOC": " Tuned"})
    assert not host_malloc.requested({"GRADFLOW_MALLOC": "system"})
    assert not host_malloc.requested({})


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
    # This process may have been tuned by an earlier test (the MNIST example opts in): settings
    # only reports, and agrees with what tune returns once it has run.
    s = host_malloc.settings()
    if s["applied"]:
        assert s == host_malloc.tune()
        assert s["mmap_threshold"] == host_malloc.MMAP_THRESHOLD
        assert s["trim_threshold"] == host_malloc.TRIM_THRESHOLD
    else:
        assert s["why"]

"""scripts/gpu-proof.sh, its memory-pool helper and the per-test time limit in conftest.py.

The proof itself needs an NVIDIA GPU. What runs anywhere: the script's syntax (and shellcheck
where installed), its refusal to start without a usable GPU (one line, at once), its stage
runner and summary on a stand-in GPU (a fake `nvidia-smi` and a fake `cupy` module, which also
keep these tests from starting a real proof on a GPU machine), the helper's code path on the
CPU, and the per-test time limit.
"""
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "gpu-proof.sh"
POOL = ROOT / "scripts" / "pool_after_steps.py"
BASH = shutil.which("bash")

pytestmark = pytest.mark.skipif(BASH is None or shutil.which("timeout") is None,
                                reason="needs bash and GNU timeout")


def _bin(tmp_path, nvidia_smi=None):
    """A PATH folder with only what the script needs before it checks the GPU (so a real
    nvidia-smi on this machine is not seen), plus a fake nvidia-smi when given."""
    d = tmp_path / "bin"
    d.mkdir(exist_ok=True)
    for tool in ("dirname", "timeout", "sed", "grep", "date", "tail", "paste", "mkdir", "rm",
                 "cat", "wc", "env", "bash"):
        where = shutil.which(tool)
        if where and not (d / tool).exists():
            (d / tool).symlink_to(where)
    if nvidia_smi is not None:
        (d / "nvidia-smi").write_text("#!/bin/sh\n" + nvidia_smi)
        (d / "nvidia-smi").chmod(0o755)
    return d


def _fake_cupy(tmp_path, body):
    """A folder to put first on PYTHONPATH, holding a `cupy` package made of `body`."""
    pkg = tmp_path / "fake" / "cupy"
    pkg.mkdir(parents=True, exist_ok=True)
    (pkg / "__init__.py").write_text(body)
    return pkg.parent


WORKING_SMI = 'echo "GPU 0: Fake GPU (UUID: GPU-0)"\n'
ONE_GPU = """
__version__ = "0.0-fake"
class cuda:
    class runtime:
        getDeviceCount = staticmethod(lambda: 1)
        runtimeGetVersion = staticmethod(lambda: 12040)
        driverGetVersion = staticmethod(lambda: 12040)
        getDeviceProperties = staticmethod(lambda i: {"name": b"Fake GPU"})
def show_config():
    print("CuPy Version : 0.0-fake")
"""


def _run(tmp_path, out, bindir, pythonpath=None, timeout=60, **env):
    e = {k: v for k, v in os.environ.items()
         if not k.startswith(("GPU_PROOF_", "GRADFLOW_MNIST_DIR", "MNIST_DIR", "OUT"))}
    e.update(PATH=str(bindir), PYTHON=sys.executable, **env)
    e["PYTHONPATH"] = os.pathsep.join(
        [str(p) for p in (pythonpath, ROOT) if p] + ([os.environ["PYTHONPATH"]]
                                                    if os.environ.get("PYTHONPATH") else []))
    t0 = time.monotonic()
    proc = subprocess.run([BASH, str(SCRIPT), str(out)], env=e, capture_output=True, text=True,
                          timeout=timeout, cwd=tmp_path)
    return proc, time.monotonic() - t0


def test_script_parses():
    proc = subprocess.run([BASH, "-n", str(SCRIPT)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed")
def test_shellcheck_is_clean():
    proc = subprocess.run(["shellcheck", str(SCRIPT)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("smi, cupy, expect", [
    (None, None, "no NVIDIA GPU here: nvidia-smi is not on PATH"),
    ('echo "NVIDIA-SMI has failed because it could not communicate with the driver"\nexit 9\n',
     None, "nvidia-smi -L failed: NVIDIA-SMI has failed because it could not communicate"),
    (WORKING_SMI, 'raise ImportError("libcudart.so.12: cannot open shared object file")\n',
     "CuPy cannot be imported (ImportError: libcudart.so.12: cannot open shared object file)"),
    (WORKING_SMI, ONE_GPU.replace("(lambda: 1)", "(lambda: 0)"), "CuPy sees 0 CUDA devices"),
], ids=["no-nvidia-smi", "nvidia-smi-fails", "no-cupy", "zero-devices"])
def test_without_a_usable_gpu_it_stops_at_once_in_one_line(tmp_path, smi, cupy, expect):
    out = tmp_path / "out"
    fake = _fake_cupy(tmp_path, cupy) if cupy is not None else None
    proc, seconds = _run(tmp_path, out, _bin(tmp_path, smi), pythonpath=fake, timeout=60)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert seconds < 30
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("gpu-proof: ") and expect in lines[0], lines
    assert not out.exists()  # nothing written


@pytest.mark.parametrize("args, env, expect", [
    ([], {}, "no output directory: pass one as the first argument or set OUT"),
    (["a", "b"], {}, "too many arguments"),
    (["out"], {"GPU_PROOF_STAGES": "versions bogus"}, "unknown stage 'bogus'"),
    (["out"], {"GPU_PROOF_BUDGET_S": "9m"}, "GPU_PROOF_BUDGET_S must be whole seconds"),
])
def test_bad_usage_is_named_in_one_line(tmp_path, args, env, expect):
    e = {k: v for k, v in os.environ.items() if k != "OUT" and not k.startswith("GPU_PROOF_")}
    e.update(PATH=str(_bin(tmp_path)), PYTHON=sys.executable, **env)
    proc = subprocess.run([BASH, str(SCRIPT), *args], env=e, capture_output=True, text=True,
                          timeout=60, cwd=tmp_path)
    assert proc.returncode == 2 and proc.stdout == "", proc.stdout + proc.stderr
    assert proc.stderr.count("\n") == 1 and expect in proc.stderr, proc.stderr


def test_help_prints_the_header():
    proc = subprocess.run([BASH, str(SCRIPT), "--help"], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0
    assert "scripts/gpu-proof.sh [OUT_DIR]" in proc.stdout and "GPU_PROOF_STAGES" in proc.stdout
    assert "set -u" not in proc.stdout


def test_a_stage_runs_logs_and_is_summarised_on_a_stand_in_gpu(tmp_path):
    out = tmp_path / "out"
    proc, _ = _run(tmp_path, out, _bin(tmp_path, WORKING_SMI),
                   pythonpath=_fake_cupy(tmp_path, ONE_GPU), GPU_PROOF_STAGES="versions")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (out / "nvidia-smi.txt").read_text().startswith("GPU 0: Fake GPU")
    assert "CuPy Version : 0.0-fake" in (out / "cupy-config.txt").read_text()
    summary = (out / "summary.txt").read_text()
    assert summary in proc.stdout
    assert "PASS     versions" in summary and "GPU 0: Fake GPU" in summary
    assert summary.rstrip().endswith("RESULT: PASS (every required stage run passed)")


def test_a_failed_stage_fails_the_run_and_shows_its_log(tmp_path):
    # nvidia-smi answers the GPU check (-L) but fails in the versions stage.
    smi = 'if [ "${1:-}" = -L ]; then echo "GPU 0: Fake GPU"; exit 0; fi\n' \
          'echo "driver went away"; exit 4\n'
    out = tmp_path / "out"
    proc, _ = _run(tmp_path, out, _bin(tmp_path, smi),
                   pythonpath=_fake_cupy(tmp_path, ONE_GPU), GPU_PROOF_STAGES="versions")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "   | driver went away" in proc.stdout  # the tail of the stage's log
    summary = (out / "summary.txt").read_text()
    assert "FAIL     versions" in summary and "exit 1" in summary
    assert "RESULT: FAIL" in summary


def test_stages_without_time_are_reported_not_run(tmp_path):
    out = tmp_path / "out"
    proc, seconds = _run(tmp_path, out, _bin(tmp_path, WORKING_SMI),
                         pythonpath=_fake_cupy(tmp_path, ONE_GPU), GPU_PROOF_BUDGET_S="0")
    assert proc.returncode == 1 and seconds < 30, proc.stdout + proc.stderr
    rows = [ln.split()[:2] for ln in (out / "summary.txt").read_text().splitlines()[1:-1]]
    assert rows == [["SKIPPED", s] for s in ("versions", "tests-cuda", "tests-cuda-only",
                                             "mnist-gpu", "memory-pool", "bench", "nccl",
                                             "mnist-cpu")]
    assert not list(out.glob("*.log"))


# --- the memory-pool helper ----------------------------------------------------------------------
def _pool_module():
    spec = importlib.util.spec_from_file_location("pool_after_steps", POOL)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_pool_helper_runs_on_the_cpu(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    report = tmp_path / "pool.json"
    proc = subprocess.run(
        [sys.executable, str(POOL), "--device", "cpu", "--steps", "6", "--at", "2,4,6",
         "--hidden", "16", "--json", str(report)],
        env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "MNIST MLP 784-16-10, Adam, batch 100, 6 steps on cpu" in proc.stdout
    assert proc.stdout.splitlines()[-1].startswith("PASS: from step 2 to step 6")
    data = json.loads(report.read_text())
    assert [r["step"] for r in data["readings"]] == [2, 4, 6] and data["passed"]
    assert all(r["method"] == "tracemalloc" and r["used_bytes"] > 0 for r in data["readings"])


def test_pool_helper_fails_when_the_memory_grows(monkeypatch, capsys):
    mod = _pool_module()
    mib = mod.MIB
    readings = [{"step": s, "used_bytes": u * mib, "total_bytes": t * mib}
                for s, u, t in ((10, 100, 120), (100, 100, 120), (1000, 103, 120))]
    assert mod.growth(readings) == (3 * mib, 0)
    monkeypatch.setattr(mod, "train_and_read", lambda *a, **k: readings)
    assert mod.main(["--device", "cpu"]) == 1
    assert capsys.readouterr().out.splitlines()[-1] == (
        "FAIL: from step 10 to step 1000 the bytes in use grew 3.00 MiB (tolerance 1), "
        "the bytes held 0.00 MiB (tolerance 16)")
    readings[-1]["used_bytes"] = 100 * mib
    assert mod.main(["--device", "cpu"]) == 0


def test_pool_helper_names_bad_arguments(capsys):
    mod = _pool_module()
    for argv, expect in ((["--steps", "50", "--at", "10"], "two or more steps"),
                         (["--steps", "50", "--at", "10,60"], "between 1 and --steps 50"),
                         (["--hidden", "a,b"], "comma-separated integers"),
                         (["--device", "tpu"], "--device: unknown device 'tpu'")):
        with pytest.raises(SystemExit) as exc:
            mod.parse_args(["--device", "cpu", *argv])
        assert exc.value.code == 2 and expect in capsys.readouterr().err, argv


# --- the per-test time limit (tests/conftest.py) -------------------------------------------------
_SLOW_TEST = """
import signal
import time

def test_slow():
    time.sleep(2)

def test_no_handler_without_the_variable():
    assert signal.getsignal(signal.SIGALRM) is signal.SIG_DFL
"""


@pytest.mark.parametrize("limit", [None, "0.5", "soon"])
def test_per_test_time_limit_only_when_asked(tmp_path, limit):
    shutil.copy(ROOT / "tests" / "conftest.py", tmp_path / "conftest.py")
    (tmp_path / "test_slow.py").write_text(_SLOW_TEST)
    env = {k: v for k, v in os.environ.items() if k != "GRADFLOW_TEST_TIMEOUT"}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")
    if limit is not None:
        env["GRADFLOW_TEST_TIMEOUT"] = limit
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir",
         str(tmp_path), "test_slow.py"],
        env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    out = proc.stdout + proc.stderr
    if limit is None:
        assert proc.returncode == 0 and "2 passed" in out, out
    elif limit == "0.5":
        # The slow test fails; the other sees the limit's handler (it is installed then).
        assert proc.returncode == 1 and "2 failed" in out, out
        assert "FAILED test_slow.py::test_slow - Failed: ran longer than" in out
        assert "ran longer than GRADFLOW_TEST_TIMEOUT=0.5 s" in out
        assert "time.sleep(2)" in out  # the traceback shows where it was
    else:
        assert proc.returncode != 0
        assert "GRADFLOW_TEST_TIMEOUT='soon': expected a number of seconds" in out, out

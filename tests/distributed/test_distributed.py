"""gradflow.distributed and DistributedDataParallel on two real MPI processes.

Each test starts `mpiexec -n 2 python mpi_worker.py SCENARIO` on this machine and reads what each
rank wrote. Every run has a time limit (and every collective in it the process group's timeout),
so a bug fails the test instead of hanging CI. Skipped where mpi4py or mpiexec is missing:
`pip install -e '.[dist]'` installs both (`.ci/run` does).
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import gradflow as gf

WORKER = Path(__file__).with_name("mpi_worker.py")
ROOT = Path(__file__).resolve().parents[2]


def _mpiexec():
    # The venv's own first: CI runs .venv/bin/python without putting .venv/bin on PATH.
    here = Path(sys.executable).parent / "mpiexec"
    return str(here) if here.exists() else shutil.which("mpiexec")


def _mpi_missing():
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return "mpi4py is not installed (pip install -e '.[dist]')"
    if _mpiexec() is None:
        return "no mpiexec on PATH or next to this Python (pip install -e '.[dist]')"
    return None


needs_mpi = pytest.mark.skipif(_mpi_missing() is not None, reason=str(_mpi_missing()))


def _mpirun(args, ranks=2, limit=120):
    """Run `python args...` on `ranks` MPI processes; return (returncode, output, seconds)."""
    env = dict(os.environ, GRADFLOW_DEVICE="cpu", OMP_NUM_THREADS="1",
               OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    start = time.monotonic()
    launcher = [_mpiexec(), "-n", str(ranks)] if ranks else []
    proc = subprocess.Popen(launcher + [sys.executable, *map(str, args)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env, start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=limit)
    except subprocess.TimeoutExpired:  # the whole process group: mpiexec and its ranks
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        pytest.fail(f"{' '.join(launcher)} {args} ran past {limit} s:\n{output[-3000:]}")
    return proc.returncode, output, time.monotonic() - start


def _launch(scenario, tmp_path, limit=120):
    """Run the scenario on 2 ranks; return (returncode, output, seconds, [rank 0's, rank 1's])."""
    code, output, seconds = _mpirun([WORKER, scenario, tmp_path], limit=limit)
    ranks = [json.loads(p.read_text()) if p.exists() else None
             for p in (tmp_path / "rank0.json", tmp_path / "rank1.json")]
    return code, output, seconds, ranks


def _run(scenario, tmp_path):
    code, output, _, ranks = _launch(scenario, tmp_path)
    assert code == 0 and None not in ranks, output[-3000:]
    return ranks


@needs_mpi
def test_collectives_on_two_ranks(tmp_path):
    for r, out in enumerate(_run("collectives", tmp_path)):
        assert (out["rank"], out["world"], out["backend"]) == (r, 2, "mpi")
        assert out["sum"] == [3.0, -3.0]
        assert (out["max"], out["min"], out["product"], out["avg"]) == ([3.0], [2.0], [6.0], [2.5])
        assert out["int_sum"] == [3, 20]
        assert out["broadcast"] == [[1.0] * 3] * 2  # rank 1's values everywhere
        assert out["strided"] == [3.0, 0.0, 3.0, 0.0, 3.0, 0.0]
        assert out["stale_backward"][0] == "BackwardError"  # all_reduce changed x in place
        assert out["objects"] == [{"from": 0}, 0]
        for key in ("shape_mismatch", "dtype_mismatch", "call_mismatch"):
            assert out[key][0] == "DistributedError", out[key]
        assert "rank 0: all_reduce(shape (2,), float32" in out["shape_mismatch"][1]
        assert "rank 1: all_reduce(shape (3,), float32" in out["shape_mismatch"][1]
        assert "float64" in out["dtype_mismatch"][1]
        assert "rank 1: broadcast(shape (2,)" in out["call_mismatch"][1]
        assert out["bool"][0] == "TypeError" and "bool" in out["bool"][1]
        assert out["avg_int"][0] == "TypeError" and "int64" in out["avg_int"][1]
        assert out["bad_op"][0] == "ValueError" and "'mean'" in out["bad_op"][1]
        assert out["bad_src"][0] == "ValueError" and "got 2" in out["bad_src"][1]
        assert out["not_tensor"][0] == "TypeError"
        assert out["after_errors"] == [2.0, 2.0, 2.0]


@needs_mpi
def test_distributed_sampler_shards_cover_the_data_set(tmp_path):
    ranks = _run("sampler", tmp_path)
    for size in (10, 12, 13):
        for drop_last in (False, True):
            seen = [out[f"{size}/{drop_last}"] for out in ranks]
            assert seen[0] == seen[1]  # the counts and lengths were summed over ranks
            counts, lengths = seen[0]["counts"], seen[0]["lengths"]
            assert lengths[0] == lengths[1] == seen[0]["len"]  # equal shares: equal batches
            if drop_last:  # disjoint, the remainder dropped
                assert max(counts) == 1 and sum(counts) == 2 * (size // 2)
            else:  # every sample at least once; an odd size pads one sample twice
                assert min(counts) == 1 and sum(counts) == 2 * -(-size // 2)
    loader0, loader1 = ranks[0]["loader"], ranks[1]["loader"]
    assert loader0 == [[0.0, 2.0], [4.0, 6.0], [8.0, 10.0]]
    assert loader1 == [[1.0, 3.0], [5.0, 7.0], [9.0, 0.0]]  # padded with sample 0


@needs_mpi
def test_ddp_training_equals_one_process_on_the_whole_batch(tmp_path):
    ranks = _run("ddp", tmp_path)
    for out in ranks:
        for name, res in out.items():
            assert res["moved"] > 1e-2, name  # the models did train
            assert res["max_diff_to_one_process"] < 1e-5, (name, res)
            assert res["max_diff_to_rank0"] == 0.0, (name, res)  # identical on both ranks


@needs_mpi
def test_ddp_unused_parameters_no_sync_checkpoints_and_errors(tmp_path):
    r0, r1 = _run("ddp_details", tmp_path)
    # 'extra' ran on rank 0 only: both ranks get half of rank 0's gradient; 'never' stays None.
    assert r0["unused_grads"] == r1["unused_grads"]
    half = np.asarray(r0["rank0_local_extra_grad"]) / 2
    assert np.allclose(r0["unused_grads"]["extra.weight"], half, rtol=1e-6, atol=0)
    assert r0["unused_grads"]["never.weight"] is None
    assert r0["after_no_sync"] != r1["after_no_sync"]  # local gradients inside no_sync
    assert r0["after_sync"] == r1["after_sync"]
    assert r0["state_keys"] == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert r0["parameter_names"] == r0["state_keys"]
    assert r0["prefixed_loaded"]
    for out in (r0, r1):
        kind, message = out["module_mismatch"]
        assert kind == "DistributedError"
        assert "parameter '0.weight' (5, 3)" in message and "(6, 3)" in message
        assert out["bad_device_ids"][0] == "ValueError"
        assert "device_ids=[0]" in out["bad_device_ids"][1] and "on cpu" in out["bad_device_ids"][1]


@needs_mpi
def test_the_nccl_group_on_two_fake_gpus(tmp_path):
    # NCCL needs real GPUs; here the group's own logic runs: backend choice, one GPU per rank,
    # the unique id from rank 0, device checks, averaging and DDP on CUDA tensors.
    r0, r1 = _run("nccl_fake", tmp_path)
    assert r0["backend"] == r1["backend"] == "nccl"
    assert (r0["default"], r1["default"]) == ("cuda:0", "cuda:1")
    assert r0["uid"][0][1] == r1["uid"][0][1]  # rank 0's id reached rank 1
    assert [u[2:] for u in r0["uid"] + r1["uid"]] == [[0, 0], [1, 1]]  # rank, GPU
    for r, out in enumerate((r0, r1)):
        assert out["avg"] == [1.5, 2.0] and out["avg_device"] == f"cuda:{r}"
        assert out["broadcast"] == [1.0] * 3
        assert out["cpu_tensor"][0] == "DeviceError" and "'nccl' backend" in out["cpu_tensor"][1]
        assert out["other_gpu"][0] == "DeviceError" and f"on cuda:{r}" in out["other_gpu"][1]
        assert out["param_device"] == f"cuda:{r}"
    assert r0["grads"] == r1["grads"]


@needs_mpi
@pytest.mark.parametrize("scenario, expected", [
    ("timeout", ["barrier() waited more than 3 s", "aborting all 2 ranks"]),  # a rank never joins
    ("uncaught", ["rank 1 fails on purpose", "uncaught ValueError"]),  # one rank raises
])
def test_a_failure_on_one_rank_ends_all_ranks_quickly(scenario, expected, tmp_path):
    code, output, seconds, _ = _launch(scenario, tmp_path, limit=60)
    assert code != 0
    assert all(e in output for e in expected), repr(output)
    assert seconds < 30, output


@needs_mpi
def test_the_mnist_example_trains_data_parallel_and_resumes(tmp_path):
    example = ROOT / "examples" / "train_mnist.py"
    common = [example, "--dataset", "mnist-sample", "--no-plot"]
    code, out, _ = _mpirun(common + ["--epochs", "2", "--out", tmp_path / "two"], limit=300)
    assert code == 0, out[-3000:]
    assert out.count("| 2 ranks (mpi)") == 1 and out.count("epoch   2/2  train loss") == 1
    assert (tmp_path / "two" / "checkpoint.gf").exists()  # rank 0 alone prints and writes
    two = float(out.split("final test accuracy ")[1].split("%")[0])
    code, alone, _ = _mpirun(common + ["--epochs", "2", "--out", tmp_path / "one"], ranks=0,
                             limit=300)
    assert code == 0, alone[-3000:]
    one = float(alone.split("final test accuracy ")[1].split("%")[0])
    assert two > 88 and abs(two - one) < 3, (two, one)  # another sample order, the same model
    code, out, _ = _mpirun([example, "--resume", tmp_path / "two", "--epochs", "3",
                            "--no-plot"], limit=300)
    assert code == 0 and "resumed after epoch 2" in out and "epoch   3/3" in out, out[-3000:]
    code, out, _ = _mpirun([example, "--resume", tmp_path / "two", "--epochs", "4"], ranks=0)
    assert code != 0 and "written by a run on 2 process(es)" in out, out[-3000:]


@needs_mpi
def test_the_scaling_benchmark_runs_and_reports_ratios(tmp_path):
    code, out, _ = _mpirun(["-m", "gradflow.bench.distributed", "--ranks", "1,2", "--steps", "3",
                            "--out", tmp_path], ranks=0, limit=300)
    assert code == 0, out[-3000:]
    saved = json.loads((tmp_path / "distributed.json").read_text())
    rows = saved["settings"]
    assert "versions" in saved["machine"]
    assert [(r["ranks"], r["threads"]) for r in rows] == [(1, "default"), (1, "1"), (2, "1")]
    assert rows[2]["values"] == 1_796_010 and rows[2]["share"] == 50
    assert all(r["allreduce_flat_ms"] > 0 and r["ddp_step_ms"] > 0 for r in rows)
    assert "speed-up" in out and "1.00x" in out


# --- one process: no launcher needed -------------------------------------------------------------
def test_collectives_before_init_name_the_fix():
    pytest.importorskip("mpi4py")
    import gradflow.distributed as dist
    assert not dist.is_initialized()
    for call in (lambda: dist.all_reduce(gf.ones(2)), dist.get_rank, dist.barrier,
                 lambda: gf.nn.parallel.DistributedDataParallel(gf.nn.Linear(2, 2))):
        with pytest.raises(dist.DistributedError, match="init_process_group"):
            call()


def test_bad_arguments_to_init_process_group():
    pytest.importorskip("mpi4py")
    import gradflow.distributed as dist
    with pytest.raises(dist.DistributedError, match="unknown backend 'gloo'"):
        dist.init_process_group("gloo")
    with pytest.raises(ValueError, match="timeout"):
        dist.init_process_group(timeout=-1)
    assert not dist.is_initialized()


def test_an_abort_waits_until_the_launcher_has_read_the_output():
    # MPI_Abort ends every rank at once; what a rank wrote just before (why it aborts) must have
    # left the pipe to mpiexec by then, or it is lost. Here a slow reader stands for mpiexec.
    pytest.importorskip("mpi4py")
    import threading
    from gradflow.distributed import _wait_until_read
    read_fd, write_fd = os.pipe()
    consumed = threading.Event()

    def slow_reader():
        time.sleep(0.3)
        os.read(read_fd, 1 << 16)
        consumed.set()

    with os.fdopen(write_fd, "w") as stream:
        stream.write("rank 1: the reason for the abort\n")  # still buffered in Python
        reader = threading.Thread(target=slow_reader)
        reader.start()
        _wait_until_read(stream, limit=30)
        assert consumed.is_set()  # it returned only once the reader had everything
        reader.join()
        stream.write("nobody reads this\n")
        _wait_until_read(stream, limit=0.1)  # no reader: it gives up instead of hanging
    os.close(read_fd)


def test_nccl_without_a_gpu_fails_cleanly():
    # A group of one (no launcher): NCCL needs libnccl and a CUDA default device; either way
    # the error names what to do, and nothing is left behind (no group, no watchdog, no hook).
    pytest.importorskip("mpi4py")
    import threading
    import gradflow.distributed as dist
    hook = sys.excepthook
    with pytest.raises(dist.DistributedError, match="NCCL"):
        dist.init_process_group("nccl", timeout=5)
    assert not dist.is_initialized() and sys.excepthook is hook
    assert not [t for t in threading.enumerate() if "watchdog" in t.name]
    with pytest.raises(dist.DistributedError, match="device_id=0 is for the 'nccl'"):
        dist.init_process_group("mpi", device_id=0)


def test_a_group_of_one_process_works_without_a_launcher():
    pytest.importorskip("mpi4py")
    import gradflow.distributed as dist
    dist.init_process_group(timeout=30)
    try:
        assert (dist.get_rank(), dist.get_world_size(), dist.get_backend()) == (0, 1, "mpi")
        t = gf.tensor([1.0, 2.0])
        dist.all_reduce(t, op="avg")
        assert t.tolist() == [1.0, 2.0]
        model = gf.nn.parallel.DistributedDataParallel(gf.nn.Linear(3, 2))
        model(gf.ones(4, 3)).sum().backward()  # alone: the gradient is its own average
        assert model.module.weight.grad.tolist() == [[4.0] * 3] * 2
        with pytest.raises(dist.DistributedError, match="already initialized"):
            dist.init_process_group()
    finally:
        dist.destroy_process_group()
    assert not dist.is_initialized()


def test_import_without_mpi4py_names_the_extra():
    code = ("import sys; sys.modules['mpi4py'] = None\n"
            "try:\n    import gradflow.distributed\n"
            "except ImportError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, timeout=60)
    assert "pip install -e '.[dist]'" in out.stdout, out.stdout + out.stderr


def test_importing_gradflow_starts_no_mpi():
    code = "import sys, gradflow, gradflow.nn.parallel; print('mpi4py.MPI' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, timeout=60)
    assert out.stdout.strip() == "False", out.stderr


@pytest.mark.parametrize("hide_mpi4py", [False, True])
def test_the_gpu_proofs_nccl_stage_says_not_run_without_nccl(hide_mpi4py):
    # scripts/gpu-proof.sh's `nccl` stage is optional: where mpi4py or libnccl is missing it
    # must report NOT RUN with the reason and exit 0, never fail the proof or hang.
    if not hide_mpi4py:
        pytest.importorskip("mpi4py")
        try:
            from gradflow.backend import nccl  # noqa: F401
            pytest.skip("libnccl is installed here: the stage would run, which needs a GPU")
        except ImportError:
            pass
    prelude = "import sys; sys.modules['mpi4py'] = None\n" if hide_mpi4py else ""
    code = (prelude + "import runpy; runpy.run_path('scripts/nccl_one_gpu.py', "
            "run_name='__main__')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, timeout=120, env={**os.environ, "GRADFLOW_DEVICE": "cpu"})
    assert out.returncode == 0, out.stdout + out.stderr
    first = out.stdout.splitlines()[0]
    assert first.startswith("NOT RUN: "), out.stdout + out.stderr
    assert ("'.[dist]'" in first) if hide_mpi4py else ("NCCL is not usable" in first), first

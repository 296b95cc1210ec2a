"""examples/train_mnist.py: accuracy it reaches, outputs, exact resume, fallback and bad input."""
import importlib.util
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

import gradflow as gf
from gradflow.data import TensorDataset

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "examples" / "train_mnist.py"
FASHION = Path("/usr/share/datasets/fashion-mnist")

_spec = importlib.util.spec_from_file_location("train_mnist", SCRIPT)
tm = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tm)

SMALL = ["--dataset", "mnist-sample", "--hidden", "32", "--batch-size", "200"]
CNN_HEADER = ("CNN conv32-conv64-maxpool-128-10 (1,199,882 parameters) | adam lr 0.001 (cosine) | "
              "batch 64")
CNN_PARAMS = ["conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias", "fc1.weight",
              "fc1.bias", "fc2.weight", "fc2.bias"]
LONG_TESTS = os.environ.get("GRADFLOW_LONG_TESTS") == "1"


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    # No files from the developer's cache, no real network, and the default device restored.
    monkeypatch.setenv("GRADFLOW_DATA", str(tmp_path / "no-data"))
    monkeypatch.setattr(tm.MNIST, "mirrors", ("http://127.0.0.1:9/",))
    prev = gf.default_device()
    yield
    gf.set_default_device(prev)


def _bits(t):
    return t.numpy().tobytes()


def _checkpoint_params(path):
    return {k: _bits(v) for k, v in gf.load(path)["model"].items()}


def test_sample_accuracy_reaches_92_percent(tmp_path, capsys):
    """The default model (784-1000-1000-10, Adam 1e-3 annealed by a cosine schedule, batch 100)
    on the embedded sample."""
    t0 = time.perf_counter()
    hist = tm.main(["--dataset", "mnist-sample", "--epochs", "8", "--out", str(tmp_path),
                    "--no-plot"])
    seconds = time.perf_counter() - t0
    out = capsys.readouterr().out
    with capsys.disabled():
        print(f"\n[mnist-sample] test accuracy per epoch: "
              f"{[round(100 * a, 2) for a in hist['test_acc']]} in {seconds:.1f} s")
    assert "MLP 784-1000-1000-10 (1,796,010 parameters) | adam lr 0.001 (cosine) | batch 100" \
        in out
    assert hist["test_acc"][-1] >= 0.92


@pytest.mark.skipif(not (FASHION / "train-images-idx3-ubyte.gz").exists(),
                    reason=f"Fashion-MNIST files not found at {FASHION} (install Debian's "
                           "dataset-fashion-mnist package, or put the files in "
                           "$GRADFLOW_DATA/fashion-mnist) ")
def test_fashion_mnist_reaches_88_percent_in_3_epochs(tmp_path, capsys):
    """The default model with the learning rate annealed to 0 over the 3 epochs (cosine)."""
    t0 = time.perf_counter()
    hist = tm.main(["--dataset", "fashion-mnist", "--epochs", "3", "--schedule", "cosine",
                    "--out", str(tmp_path), "--no-plot"])
    seconds = time.perf_counter() - t0
    with capsys.disabled():
        print(f"\n[fashion-mnist] test accuracy per epoch: "
              f"{[round(100 * a, 2) for a in hist['test_acc']]} in {seconds:.1f} s")
    assert hist["test_acc"][-1] >= 0.88


@pytest.mark.skipif(not os.environ.get("GRADFLOW_MNIST_DIR"),
                    reason="full MNIST run (about 2 minutes on 2 CPU cores): set "
                           "GRADFLOW_MNIST_DIR to a directory with the four MNIST files")
def test_full_mnist_reaches_98_percent_after_10_epochs(tmp_path, capsys):
    """The defaults end at 98% or more (seed 0: 98.60%), not only pass it on the way: with a
    constant lr the run overfitted, 98.09% at epoch 8 and 97.59% at epoch 10."""
    t0 = time.perf_counter()
    hist = tm.main(["--dataset", "mnist", "--data-root", os.environ["GRADFLOW_MNIST_DIR"],
                    "--epochs", "10", "--out", str(tmp_path), "--no-plot"])
    seconds = time.perf_counter() - t0
    with capsys.disabled():
        print(f"\n[mnist] test accuracy per epoch: "
              f"{[round(100 * a, 2) for a in hist['test_acc']]} in {seconds:.1f} s")
    assert gf.load(tmp_path / "checkpoint.gf")["config"]["dataset"] == "mnist"  # not the sample
    assert len(hist["test_acc"]) == 10 and hist["test_acc"][-1] >= 0.98


def test_cnn_on_the_sample_reaches_86_percent_in_1_epoch(tmp_path, capsys):
    """PyTorch's MNIST CNN (Adam 1e-3, batch 64) for one epoch on the embedded sample: 89.7%
    with seed 0 (PyTorch itself gets 88-89.5% with the same network and data), in ~15 s."""
    t0 = time.perf_counter()
    hist = tm.main(["--model", "cnn", "--dataset", "mnist-sample", "--epochs", "1", "--out",
                    str(tmp_path)])
    seconds = time.perf_counter() - t0
    out = capsys.readouterr().out
    with capsys.disabled():
        print(f"\n[mnist-sample, cnn] test accuracy: "
              f"{[round(100 * a, 2) for a in hist['test_acc']]} in {seconds:.1f} s")
    assert CNN_HEADER in out
    assert re.search(r"epoch +1/1  train loss \d\.\d{4}  test loss \d\.\d{4}  test acc", out)
    assert hist["test_acc"][-1] >= 0.86 and len(hist["iter_loss"]) == 63  # 4000 / 64
    ckpt = gf.load(tmp_path / "checkpoint.gf")
    assert ckpt["epoch"] == 1 and ckpt["partial"] is None
    assert ckpt["config"]["model"] == "cnn" and ckpt["config"]["batch_size"] == 64
    assert ckpt["config"]["hidden"] is None
    assert list(ckpt["model"]) == CNN_PARAMS
    assert ckpt["model"]["conv2.weight"].shape == (64, 32, 3, 3)
    assert ckpt["model"]["fc1.weight"].shape == (128, 9216)
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _first(n_train, n_test):
    """tm.load_data, keeping the first n_train / n_test images: a shorter run of the CNN."""
    load = tm.load_data

    def load_data(*args, **kwargs):
        train, test, desc = load(*args, **kwargs)
        return (TensorDataset(*(t[:n_train] for t in train.tensors)),
                TensorDataset(*(t[:n_test] for t in test.tensors)), desc)
    return load_data


def test_cnn_resume_continues_exactly_like_an_uninterrupted_run(tmp_path, monkeypatch, capsys):
    """The CNN stopped after 1 of 2 epochs and resumed. On 1280 of the sample's images (20
    batches), so it takes ~15 s."""
    monkeypatch.setattr(tm, "load_data", _first(1280, 500))
    # A constant learning rate: a cosine schedule keeps the length a run planned, so a 1-epoch
    # run resumed to 2 is not a 2-epoch run (the example says so when it resumes one).
    cnn = ["--model", "cnn", "--dataset", "mnist-sample", "--schedule", "constant", "--no-plot"]
    full = tm.main([*cnn, "--epochs", "2", "--out", str(tmp_path / "a")])
    tm.main([*cnn, "--epochs", "1", "--out", str(tmp_path / "b")])
    capsys.readouterr()
    gf.manual_seed(12345)  # whatever the new process's random state, the checkpoint decides
    resumed = tm.main(["--epochs", "2", "--resume", str(tmp_path / "b"), "--hidden", "64",
                       "--no-plot"])
    out = capsys.readouterr().out
    assert "note: --hidden 64 ignored: it sets the MLP's widths, and the model is the CNN" in out
    assert CNN_HEADER.replace(" (cosine)", "") + " | resumed after epoch 1" in out
    assert len(full["iter_loss"]) == 2 * 20
    assert resumed["iter_loss"] == full["iter_loss"]  # identical floats, batch by batch
    assert resumed["train_loss"] == full["train_loss"]
    assert resumed["test_acc"] == full["test_acc"]
    assert _checkpoint_params(tmp_path / "a" / "checkpoint.gf") == \
        _checkpoint_params(tmp_path / "b" / "checkpoint.gf")


@pytest.mark.skipif(not os.environ.get("GRADFLOW_MNIST_DIR"),
                    reason="full MNIST run of the CNN (about 10 minutes on 2 CPU cores): set "
                           "GRADFLOW_MNIST_DIR to a directory with the four MNIST files")
def test_full_mnist_cnn_reaches_99_percent_within_3_epochs(tmp_path, capsys):
    t0 = time.perf_counter()
    hist = tm.main(["--model", "cnn", "--epochs", "3", "--dataset", "mnist", "--data-root",
                    os.environ["GRADFLOW_MNIST_DIR"], "--out", str(tmp_path), "--no-plot"])
    seconds = time.perf_counter() - t0
    with capsys.disabled():
        print(f"\n[mnist, cnn] test accuracy per epoch: "
              f"{[round(100 * a, 2) for a in hist['test_acc']]} in {seconds:.1f} s")
    config = gf.load(tmp_path / "checkpoint.gf")["config"]
    assert config["dataset"] == "mnist" and config["model"] == "cnn"  # not the sample
    assert len(hist["test_acc"]) == 3 and max(hist["test_acc"]) >= 0.990


@pytest.mark.skipif(not ((FASHION / "train-images-idx3-ubyte.gz").exists() and LONG_TESTS),
                    reason=f"Fashion-MNIST run of the CNN (5 epochs, over 10 minutes on a CPU): "
                           f"needs both the Fashion-MNIST files at {FASHION} (Debian's "
                           "dataset-fashion-mnist package) and GRADFLOW_LONG_TESTS=1")
def test_fashion_mnist_cnn_reaches_90_5_percent_within_5_epochs(tmp_path, capsys):
    t0 = time.perf_counter()
    hist = tm.main(["--model", "cnn", "--dataset", "fashion-mnist", "--epochs", "5", "--out",
                    str(tmp_path), "--no-plot"])
    seconds = time.perf_counter() - t0
    with capsys.disabled():
        print(f"\n[fashion-mnist, cnn] test accuracy per epoch: "
              f"{[round(100 * a, 2) for a in hist['test_acc']]} in {seconds:.1f} s")
    assert len(hist["test_acc"]) == 5 and max(hist["test_acc"]) >= 0.905


def test_outputs_epoch_lines_checkpoint_and_plot(tmp_path, capsys):
    hist = tm.main([*SMALL, "--epochs", "2", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    lines = re.findall(r"epoch +(\d)/2  train loss (\d\.\d{4})  test loss \d\.\d{4}  test acc "
                       r"(\d+\.\d\d)%  \d+\.\d s  [\d,]+ samples/s", out)
    assert [ln[0] for ln in lines] == ["1", "2"]
    assert [float(ln[2]) for ln in lines] == [round(100 * a, 2) for a in hist["test_acc"]]
    assert len(hist["iter_loss"]) == 2 * 20 and hist["train_loss"][1] < hist["train_loss"][0]
    ckpt = gf.load(tmp_path / "checkpoint.gf")
    assert ckpt["epoch"] == 2 and ckpt["partial"] is None
    assert set(ckpt) >= {"model", "optimizer", "loader", "rng", "history", "config"}
    assert list(ckpt["model"]) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    png = (tmp_path / "curves.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    assert sorted(os.listdir(tmp_path)) == ["checkpoint.gf", "curves.png"]  # no temp files


def test_resume_continues_exactly_like_an_uninterrupted_run(tmp_path):
    # A constant lr: a 1-epoch cosine run resumed to 3 is not a 3-epoch one (the schedule keeps
    # its planned length); test_resume_trains_to_the_runs_own_epochs resumes a cosine run.
    small = [*SMALL, "--schedule", "constant"]
    full = tm.main([*small, "--epochs", "3", "--out", str(tmp_path / "a"), "--no-plot"])
    tm.main([*small, "--epochs", "1", "--out", str(tmp_path / "b"), "--no-plot"])
    gf.manual_seed(12345)  # whatever the new process's random state, the checkpoint decides
    resumed = tm.main(["--epochs", "3", "--resume", str(tmp_path / "b" / "checkpoint.gf"),
                       "--no-plot"])
    assert resumed["iter_loss"] == full["iter_loss"]  # identical floats, batch by batch
    assert resumed["train_loss"] == full["train_loss"]
    assert resumed["test_acc"] == full["test_acc"]
    assert _checkpoint_params(tmp_path / "a" / "checkpoint.gf") == \
        _checkpoint_params(tmp_path / "b" / "checkpoint.gf")


def _ctrl_c_after(batches):
    """A tm._StopFlag on which Ctrl-C is pressed during batch `batches` of the run."""
    class CtrlC(tm._StopFlag):
        reads = 0

        @property
        def requested(self):
            type(self).reads += 1
            return type(self).reads == batches

        @requested.setter
        def requested(self, value):
            pass
    return CtrlC


def _no_data(*args, **kwargs):
    pytest.fail("the data was loaded before the bad option was refused")


def test_ctrl_c_mid_epoch_saves_and_resumes_exactly(tmp_path, monkeypatch):
    full = tm.main([*SMALL, "--epochs", "2", "--schedule", "cosine", "--out",
                    str(tmp_path / "a"), "--no-plot"])
    monkeypatch.setattr(tm, "_StopFlag", _ctrl_c_after(27))  # 7 batches into the second epoch
    part = tm.main([*SMALL, "--epochs", "2", "--schedule", "cosine", "--out",
                    str(tmp_path / "b"), "--no-plot"])
    assert part["interrupted"] and len(part["test_acc"]) == 1
    ckpt = gf.load(tmp_path / "b" / "checkpoint.gf")
    assert ckpt["epoch"] == 1 and ckpt["partial"]["batches"] == 7
    assert ckpt["loader"]["in_epoch"] and ckpt["loader"]["batches_done"] == 7
    monkeypatch.undo()
    monkeypatch.setenv("GRADFLOW_DATA", str(tmp_path / "no-data"))
    resumed = tm.main(["--epochs", "2", "--resume", str(tmp_path / "b"), "--no-plot"])
    assert resumed["iter_loss"] == full["iter_loss"]
    assert resumed["train_loss"] == full["train_loss"]
    assert resumed["test_acc"] == full["test_acc"]
    assert _checkpoint_params(tmp_path / "a" / "checkpoint.gf") == \
        _checkpoint_params(tmp_path / "b" / "checkpoint.gf")


def test_mnist_without_files_or_network_falls_back_in_one_line(tmp_path, capsys):
    hist = tm.main(["--dataset", "mnist", "--hidden", "16", "--epochs", "1", "--out",
                    str(tmp_path), "--no-plot"])
    captured = capsys.readouterr()
    notes = [ln for ln in captured.out.splitlines() if "embedded" in ln]
    assert len(notes) == 2  # the fallback line, then the data line
    assert notes[0].startswith("MNIST files not found in ") and "not downloadable" in notes[0]
    assert str(tmp_path / "no-data" / "mnist") in notes[0]
    assert notes[1].startswith("MNIST sample (embedded): 4000 train / 1000 test")
    assert "Downloading" not in captured.err and len(hist["test_acc"]) == 1
    assert gf.load(tmp_path / "checkpoint.gf")["config"]["dataset"] == "mnist-sample"


def test_device_option_overrides_the_default(tmp_path, capsys):
    tm.main([*SMALL, "--epochs", "1", "--device", "cpu", "--out", str(tmp_path), "--no-plot"])
    assert "| device cpu |" in capsys.readouterr().out
    if not gf.cuda_available():
        with pytest.raises(SystemExit) as info:
            tm.main([*SMALL, "--device", "cuda", "--out", str(tmp_path)])
        assert info.value.code == 2
        # CuPy missing, or installed without a GPU to see: either cause is named on one line.
        err = capsys.readouterr().err
        assert "error: --device 'cuda': device 'cuda:0'" in err
        assert "needs CuPy" in err or "CuPy sees no CUDA GPU" in err


def test_bad_resume_file_and_bad_arguments(tmp_path, capsys):
    bogus = tmp_path / "notes.txt"
    bogus.write_text("not a checkpoint")
    with pytest.raises(SystemExit) as info:
        tm.main(["--resume", str(bogus)])
    assert info.value.code == 2
    assert f"error: {bogus}: not a gradflow checkpoint" in capsys.readouterr().err
    for where, says in ((tmp_path / "nowhere", "no such file"),
                        (tmp_path, "no checkpoint.gf in this directory")):
        with pytest.raises(SystemExit) as info:
            tm.main(["--resume", str(where)])
        err = capsys.readouterr().err
        assert info.value.code == 2 and err.endswith(f"error: --resume {where}: {says}\n"), err
    with pytest.raises(SystemExit) as info:
        tm.main(["--dataset", "cifar"])
    assert info.value.code == 2
    capsys.readouterr()
    (tmp_path / "a-file").write_text("")
    for bad, says in ((["--device", "tpu"], "--device 'tpu': unknown device 'tpu'"),
                      (["--out", str(tmp_path / "a-file")], "a-file is a file, not a directory")):
        with pytest.raises(SystemExit) as info:
            tm.main(bad)
        assert info.value.code == 2 and says in capsys.readouterr().err, bad


def test_resume_refuses_gradflow_files_that_are_not_its_checkpoints(tmp_path, capsys):
    other = tmp_path / "other.gf"
    gf.save({"model": gf.nn.Linear(2, 2).state_dict()}, other)
    gf.save([1, 2], tmp_path / "list.gf")
    for path, lacks in ((other, "config, epoch, optimizer"), (tmp_path / "list.gf", "config")):
        with pytest.raises(SystemExit) as info:
            tm.main(["--resume", str(path)])
        err = capsys.readouterr().err
        assert info.value.code == 2
        assert f"{path} is a gradflow file but not a checkpoint of train_mnist.py" in err
        assert f"it lacks {lacks}" in err


def test_resume_refuses_options_that_define_another_run(tmp_path, monkeypatch, capsys):
    """Before the data is loaded; the same values again (the first command, plus --resume) are
    fine, and another --seed is a note: the checkpoint's random state continues."""
    tm.main([*SMALL, "--epochs", "1", "--out", str(tmp_path), "--no-plot"])
    capsys.readouterr()
    load_data = tm.load_data
    monkeypatch.setattr(tm, "load_data", _no_data)
    ckpt = tmp_path / "checkpoint.gf"
    for given, says in (
            (["--dataset", "fashion-mnist"], "--dataset mnist-sample, not --dataset fashion-mnist"),
            (["--model", "cnn"], "--model mlp, not --model cnn"),
            (["--hidden", "64,64"], "--hidden 32, not --hidden 64,64"),
            (["--optimizer", "sgd", "--lr", "0.1"],
             "--lr 0.001 --optimizer adam, not --lr 0.1 --optimizer sgd"),
            (["--batch-size", "100", "--schedule", "constant"],
             "--batch-size 200 --schedule cosine, not --batch-size 100 --schedule constant")):
        with pytest.raises(SystemExit) as info:
            tm.main(["--resume", str(tmp_path), "--epochs", "2", *given, "--no-plot"])
        err = capsys.readouterr().err
        assert info.value.code == 2, given
        assert err == (f"error: {ckpt} continues a run made with {says}: leave these options "
                       "out to resume it, or drop --resume to start a new run\n")
    monkeypatch.setattr(tm, "load_data", load_data)
    hist = tm.main([*SMALL, "--epochs", "2", "--seed", "7", "--resume", str(ckpt), "--no-plot"])
    out = capsys.readouterr().out
    assert "note: --seed 7 ignored: the run continues from the checkpoint's random state (it " \
           "was started with seed 0)" in out
    assert len(hist["test_acc"]) == 2 and out.count("ignored") == 1


def test_resume_refuses_a_checkpoint_that_does_not_fit_the_data(tmp_path, capsys):
    tm.main([*SMALL, "--epochs", "1", "--out", str(tmp_path), "--no-plot"])
    capsys.readouterr()
    # A checkpoint whose loader state does not fit the data (as when a full-MNIST run is
    # resumed where only the sample is found) is refused, naming the file.
    ckpt = gf.load(tmp_path / "checkpoint.gf")
    ckpt["loader"]["num_samples"] = 60000
    gf.save(ckpt, tmp_path / "misfit.gf")
    with pytest.raises(SystemExit) as info:
        tm.main(["--resume", str(tmp_path / "misfit.gf"), "--epochs", "2", "--no-plot"])
    err = capsys.readouterr().err
    assert info.value.code == 2 and "misfit.gf: the checkpoint does not fit this run" in err


def test_resume_trains_to_the_runs_own_epochs(tmp_path, monkeypatch, capsys):
    """--resume without --epochs finishes the run it continues (3 epochs, not the default 10),
    exactly as if uninterrupted, its cosine schedule included; --epochs then sets a new target
    (past the schedule's end: a note), which later resumes keep."""
    run = [*SMALL, "--epochs", "3", "--no-plot"]
    full = tm.main([*run, "--out", str(tmp_path / "a")])
    stop_flag = tm._StopFlag
    monkeypatch.setattr(tm, "_StopFlag", _ctrl_c_after(27))  # 7 batches into the second epoch
    assert tm.main([*run, "--out", str(tmp_path / "b")])["interrupted"]
    monkeypatch.setattr(tm, "_StopFlag", stop_flag)
    capsys.readouterr()
    resumed = tm.main(["--resume", str(tmp_path / "b"), "--no-plot"])
    out = capsys.readouterr().out
    assert re.search(r"epoch +3/3  train loss", out) and "note:" not in out
    assert resumed["iter_loss"] == full["iter_loss"] and resumed["test_acc"] == full["test_acc"]
    longer = tm.main(["--resume", str(tmp_path / "b"), "--epochs", "4", "--no-plot"])
    out = capsys.readouterr().out
    assert len(longer["test_acc"]) == 4 and re.search(r"epoch +4/4  train loss", out)
    assert "note: --epochs 4 goes past the 3 epoch(s) the cosine schedule was planned for: " \
           "the lr, 0 after epoch 3, rises again" in out
    tm.main(["--resume", str(tmp_path / "b"), "--no-plot"])
    assert "the checkpoint already has 4 epoch(s) (--epochs 4)" in capsys.readouterr().out


def test_an_out_that_cannot_be_written_fails_before_loading_data(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(tm, "load_data", _no_data)
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    refusals = [(["--out", str(a_file / "run")], f"--out {a_file / 'run'}: {a_file} is a file, "
                 "not a directory"),
                (["--out", str(a_file)], f"--out {a_file} is a file, not a directory")]
    for argv, says in refusals:
        with pytest.raises(SystemExit) as info:
            tm.main([*SMALL, *argv])
        assert info.value.code == 2 and capsys.readouterr().err.endswith(f"error: {says}\n")
    # A directory that refuses writing (root writes through chmod, so the write is refused
    # here instead): --out, or the directory of --resume when --out is not given.
    (tmp_path / "ro").mkdir()
    (tmp_path / "ro" / "checkpoint.gf").write_text("")
    refusals = [(["--out", str(tmp_path / "ro")], f"--out {tmp_path / 'ro'}"),
                (["--resume", str(tmp_path / "ro")],
                 f"the directory of --resume, {tmp_path / 'ro'} (choose another with --out)")]
    for argv, says in refusals:
        with monkeypatch.context() as m, pytest.raises(SystemExit) as info:
            m.setattr(tm.tempfile, "NamedTemporaryFile", _permission_denied)
            tm.main([*SMALL, *argv])
        err = capsys.readouterr().err
        assert info.value.code == 2
        assert err.endswith(f"error: {says}: cannot write there (Permission denied)\n"), err


def _permission_denied(*args, **kwargs):
    raise PermissionError(13, "Permission denied")


@pytest.mark.parametrize("argv, says", [
    (["--epochs", "0"], "argument --epochs: expected an int >= 1, got 0"),
    (["--batch-size", "0"], "argument --batch-size: expected an int >= 1, got 0"),
    (["--lr", "-1"], "argument --lr: expected a finite number > 0, got -1"),
    (["--lr", "nan"], "argument --lr: expected a finite number > 0, got nan"),
    (["--lr", "inf"], "argument --lr: expected a finite number > 0, got inf"),
    (["--lr", "0"], "argument --lr: expected a finite number > 0, got 0"),
    (["--seed", "-1"], "argument --seed: expected an int from 0 to 2**32 - 1, got -1"),
    (["--hidden", "10,x"], "argument --hidden: expected comma-separated ints, got '10,x'"),
])
def test_a_bad_number_is_named_alone(argv, says, tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        tm.main([*argv, "--out", str(tmp_path)])
    assert info.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1].endswith(f"error: {says}")


@pytest.mark.parametrize("optimizer, lr", [("adam", 1e-3), ("adamw", 1e-3), ("sgd", 0.1),
                                           ("rmsprop", 1e-3)])
def test_each_optimizer_has_its_own_default_lr(optimizer, lr, tmp_path):
    assert tm.parse_args(["--optimizer", optimizer, "--out", str(tmp_path)]).lr == lr
    assert tm.parse_args(["--optimizer", optimizer, "--lr", "0.2", "--out", str(tmp_path)]
                         ).lr == 0.2


def test_sgd_learns_with_its_default_lr(tmp_path, capsys):
    """SGD (momentum 0.9) at its own lr, 0.1: 84.6% here; at Adam's 1e-3 it stayed at 11.5%."""
    hist = tm.main([*SMALL, "--optimizer", "sgd", "--epochs", "2", "--out", str(tmp_path),
                    "--no-plot"])
    assert "| sgd lr 0.1 (cosine) | batch 200" in capsys.readouterr().out
    assert hist["test_acc"][-1] >= 0.75


def test_a_bad_gradflow_device_is_one_error_line(tmp_path):
    """GRADFLOW_DEVICE is read at gradflow's first use of the default device: the example
    checks it with the options, as it checks --device, which overrides it."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(GRADFLOW_DATA=str(tmp_path / "none"), GRADFLOW_DEVICE="bogus")
    argv = [sys.executable, str(SCRIPT), *SMALL, "--epochs", "1", "--no-plot", "--out",
            str(tmp_path / "run")]
    proc = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.splitlines()[-1] == ("train_mnist.py: error: GRADFLOW_DEVICE='bogus' is "
                                            "not a device: expected 'cpu', 'cuda' or 'cuda:N'")
    proc = subprocess.run([*argv, "--device", "cpu"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0 and "| device cpu |" in proc.stdout, proc.stderr


def test_runs_as_a_script_from_the_repo_root(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(GRADFLOW_DATA=str(tmp_path / "none"), GRADFLOW_DEVICE="cpu")
    proc = subprocess.run([sys.executable, "examples/train_mnist.py", *SMALL, "--epochs", "1",
                           "--out", str(tmp_path / "run"), "--no-plot"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"epoch +1/1  train loss", proc.stdout)
    assert (tmp_path / "run" / "checkpoint.gf").exists()


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # NumPy's overflow warnings, expected
def test_a_diverging_run_says_so(tmp_path, capsys):
    tm.main([*SMALL, "--epochs", "1", "--lr", "1e30", "--optimizer", "sgd", "--out",
             str(tmp_path), "--no-plot"])
    out = capsys.readouterr().out
    assert re.search(r"warning: the training loss is (nan|inf) in epoch 1: training diverged",
                     out)

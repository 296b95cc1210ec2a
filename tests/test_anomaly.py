"""Anomaly mode: the first op that made a nan or inf, forward or backward, and the user's line
that created it; nothing recorded outside it; on a GPU one read per backward, not one per op."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

import _fake_gpu
import gradflow as gf
from gradflow.autograd import AnomalyError, detect_anomaly

HERE = Path(__file__).name


def _line_of(text):
    """The line number in this file of the line that contains `text`."""
    lines = Path(__file__).read_text().splitlines()
    return next(i for i, line in enumerate(lines, 1) if text in line and "_line_of" not in line)


def test_a_forward_nan_names_the_op_its_shape_and_the_users_line(device):
    x = gf.tensor([4.0, 1.0], device=device, requires_grad=True)
    with pytest.raises(AnomalyError) as info, detect_anomaly():
        gf.log(x - 2.0)  # log of a negative number: nan
    msg = str(info.value)
    assert msg.startswith("Log made 1 nan value in its output of shape (2,), at ")
    assert f"{HERE}:{_line_of('gf.log(x - 2.0)  # log')} in test_a_forward_nan" in msg
    assert "gf.log(x - 2.0)" in msg and "Traceback of the call that created Log" in msg


def test_a_forward_inf_is_an_anomaly_too(device):
    with pytest.raises(AnomalyError, match=r"Exp made 1 inf value in its output of shape \(3,\)"):
        with detect_anomaly():
            gf.exp(gf.tensor([0.0, 1.0, 1000.0], device=device))


class _Net(gf.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = gf.nn.Linear(2, 2)

    def forward(self, x):
        h = self.lin(x)
        return gf.sqrt(h * h)  # at h = 0 its gradient is 0 / 0 = nan


def test_a_backward_nan_names_the_rule_and_where_its_op_was_created(device):
    net = _Net().to(device)
    with gf.no_grad():
        net.lin.weight[...] = 0.0
        net.lin.bias[...] = 0.0
    with pytest.raises(AnomalyError) as info, detect_anomaly():
        loss = (net(gf.zeros(3, 2, device=device)) * 0.0).sum()
        loss.backward()
    msg = str(info.value)
    assert msg.startswith("the gradient rule of Sqrt (Sqrt.backward) made 6 nan values in the "
                          "gradient of its input 0 (shape (3, 2)); Sqrt was created at ")
    assert f"{HERE}:{_line_of('return gf.sqrt(h * h)')} in forward" in msg
    # The traceback goes out to the training loop that called the model.
    assert f'line {_line_of("loss = (net(gf.zeros(3, 2")}' in msg
    assert net.lin.weight.grad is None


def test_an_inf_gradient_is_not_an_anomaly_but_a_nan_one_is(device):
    x = gf.tensor([0.0, 4.0], device=device, requires_grad=True)
    with detect_anomaly():
        gf.sqrt(x).sum().backward()  # d sqrt at 0 is inf: a value, as in PyTorch
    assert x.grad.tolist()[0] == float("inf")


def test_it_works_as_a_decorator_and_restores_the_mode_on_exit():
    @detect_anomaly()
    def step(x):
        assert gf.autograd.is_anomaly_enabled()
        return gf.log(x)

    with pytest.raises(AnomalyError, match="Log made 1 inf value"):
        step(gf.tensor([0.0]))
    assert not gf.autograd.is_anomaly_enabled()
    with detect_anomaly():
        with detect_anomaly(check_nan=False):
            gf.log(gf.tensor([0.0]))  # recorded, not checked
        assert gf.autograd.is_anomaly_enabled()
        with pytest.raises(AnomalyError):
            gf.log(gf.tensor([0.0]))
    assert not gf.autograd.is_anomaly_enabled()


def test_outside_anomaly_mode_nothing_is_recorded_or_checked():
    x = gf.tensor([-1.0], requires_grad=True)
    y = gf.log(x)
    assert "created_at" not in vars(y.grad_fn)
    with detect_anomaly(check_nan=False):
        z = gf.log(x)
    assert z.grad_fn.created_at[0][0] == __file__


@pytest.mark.skipif(sys.version_info < (3, 11), reason="exception notes need Python 3.11")
def test_other_backward_errors_get_the_traceback_of_their_op():
    a, b = gf.ones(2, requires_grad=True), gf.ones(2)
    with detect_anomaly():
        c = a * b  # the op whose input changes
        b += 1.0
        with pytest.raises(gf.BackwardError, match="modified in place") as info:
            c.sum().backward()
    note = "\n".join(info.value.__notes__)
    assert f"the op Mul was created at {__file__}:{_line_of('c = a * b  # the op')}" in note


def test_set_detect_anomaly_and_the_environment_variable():
    gf.autograd.set_detect_anomaly(True)
    try:
        with pytest.raises(AnomalyError):
            gf.log(gf.tensor([-1.0]))
    finally:
        gf.autograd.set_detect_anomaly(False)
    assert not gf.autograd.is_anomaly_enabled()
    code = "import gradflow as gf\nprint(gf.autograd.is_anomaly_enabled())\ngf.log(gf.tensor([-1.]))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "GRADFLOW_ANOMALY": "1"})
    assert out.stdout.strip() == "True" and "AnomalyError: Log made 1 nan value" in out.stderr


# --- on a GPU: flags on the device, read once per backward -----------------------------------------
def _small_step(device, poison=False):
    model = gf.nn.MLP([4, 8, 3]).to(device)
    x = gf.randn(5, 4, device=device)
    if poison:
        x = x * gf.tensor(float("nan"), device=device)
    loss = gf.nn.functional.cross_entropy(model(x), gf.tensor([0, 1, 2, 0, 1], device=device))
    loss.backward()


def test_on_a_gpu_the_checks_are_read_once_per_backward(monkeypatch):
    state = _fake_gpu.install(monkeypatch)
    _small_step("cuda")  # warm up: what the step reads outside anomaly mode
    state.reads = 0
    _small_step("cuda")
    plain = state.reads
    state.reads = 0
    with detect_anomaly():
        _small_step("cuda")
    assert state.reads == plain + 1, (plain, state.reads)  # one read: all flags at once


def test_on_a_gpu_the_first_op_that_made_a_nan_is_named_at_the_end_of_backward(monkeypatch):
    _fake_gpu.install(monkeypatch)
    with pytest.raises(AnomalyError, match=r"^Mul made nan or inf in its output of shape \(5, 4\)"):
        with detect_anomaly():
            _small_step("cuda", poison=True)  # Linear, Relu, ... made nan after it: not named


def test_on_a_gpu_sync_true_stops_at_the_op_itself(monkeypatch):
    state = _fake_gpu.install(monkeypatch)
    x = gf.tensor([1.0, -1.0], device="cuda")
    with pytest.raises(AnomalyError, match=r"Sqrt made 1 nan value in its output of shape \(2,\)"):
        with detect_anomaly(sync=True):
            y = gf.sqrt(x)
            state.reads = -1000  # not reached: the error comes from the line above
            y + 1.0
    assert state.reads > 0


def test_the_overhead_benchmark_runs_and_reports_both_modes():
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "per_op_overhead.py"
    out = subprocess.run([sys.executable, str(script), "--repeat", "1", "--scale", "0.01",
                          "--json"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    import json
    best = json.loads(out.stdout)
    assert set(best) == {"off", "on"} and len(best["on"]) == 5
    assert all(us > 0 for mode in best.values() for us in mode.values())


def test_on_a_gpu_forward_passes_without_backward_keep_a_bounded_list(monkeypatch):
    import gradflow.anomaly as anomaly
    state = _fake_gpu.install(monkeypatch)
    monkeypatch.setattr(anomaly, "_MAX_PENDING", 10)
    x = gf.ones(3, device="cuda")
    with detect_anomaly():
        state.reads = 0
        for _ in range(25):
            x = x * 1.0
        assert state.reads == 2 and len(gf.autograd._anomaly.pending) == 5

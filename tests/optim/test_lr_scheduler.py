"""Learning-rate schedulers against hand-computed sequences; state_dict; validation."""
import math
import pickle

import pytest

import gradflow as gf
import gradflow.nn as nn
from gradflow.optim import SGD, Adam
from gradflow.optim import lr_scheduler as S


def _opt(lr=0.1, groups=1):
    ps = [nn.Parameter(gf.zeros(2)) for _ in range(groups)]
    if groups == 1:
        return SGD(ps, lr=lr)
    return SGD([{"params": [p], "lr": lr * (i + 1)} for i, p in enumerate(ps)], lr=lr)


def _lrs(opt, sched, n):
    out = [opt.param_groups[0]["lr"]]
    for _ in range(n - 1):
        opt.step()
        sched.step()
        out.append(opt.param_groups[0]["lr"])
    return out


def test_step_lr():
    opt = _opt(1.0)
    sched = S.StepLR(opt, step_size=3, gamma=0.5)
    expected = [1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.25, 0.25]
    assert _lrs(opt, sched, 8) == pytest.approx(expected, rel=1e-15)
    assert sched.get_last_lr() == [0.25]


def test_cosine_annealing_lr():
    opt = _opt(0.1)
    sched = S.CosineAnnealingLR(opt, T_max=4, eta_min=0.01)
    # eta_min + (0.1 - eta_min) (1 + cos(pi k / 4)) / 2 for k = 0..4
    expected = [0.1, 0.01 + 0.09 * (1 + math.sqrt(0.5)) / 2, 0.055,
                0.01 + 0.09 * (1 - math.sqrt(0.5)) / 2, 0.01]
    assert _lrs(opt, sched, 5) == pytest.approx(expected, rel=1e-12)


def test_linear_warmup():
    opt = _opt(1.0)
    sched = S.LinearLR(opt, start_factor=0.25, total_iters=3)
    assert _lrs(opt, sched, 6) == pytest.approx([0.25, 0.5, 0.75, 1.0, 1.0, 1.0], rel=1e-15)


def test_warmup_then_cosine_with_sequential_lr():
    opt = _opt(1.0)
    warm = S.LinearLR(opt, start_factor=0.5, total_iters=2)
    cos = S.CosineAnnealingLR(opt, T_max=2)
    sched = S.SequentialLR(opt, [warm, cos], milestones=[2])
    assert _lrs(opt, sched, 5) == pytest.approx([0.5, 0.75, 1.0, 0.5, 0.0], abs=1e-15)


def test_lambda_lr_and_groups():
    opt = _opt(0.1, groups=2)
    sched = S.LambdaLR(opt, lambda e: 0.5 ** e)
    opt.step()
    sched.step()
    opt.step()
    sched.step()
    assert sched.get_last_lr() == pytest.approx([0.025, 0.05])
    assert [g["initial_lr"] for g in opt.param_groups] == [0.1, 0.2]


def test_scheduler_state_dict_resumes_the_schedule():
    opt = _opt(1.0)
    sched = S.StepLR(opt, step_size=2, gamma=0.1)
    for _ in range(3):
        opt.step()
        sched.step()
    blob = pickle.dumps((opt.state_dict(), sched.state_dict()))
    opt2 = _opt(1.0)
    sched2 = S.StepLR(opt2, step_size=5, gamma=0.9)
    osd, ssd = pickle.loads(blob)
    opt2.load_state_dict(osd)
    sched2.load_state_dict(ssd)
    assert sched2.step_size == 2 and sched2.last_epoch == 3
    assert _lrs(opt, sched, 4) == _lrs(opt2, sched2, 4)


def test_scheduler_validation():
    opt = _opt()
    with pytest.raises(ValueError, match="step_size must be a positive int, got 0"):
        S.StepLR(opt, step_size=0)
    with pytest.raises(ValueError, match="T_max must be a positive int, got -3"):
        S.CosineAnnealingLR(opt, T_max=-3)
    with pytest.raises(ValueError, match="start_factor must be in \\(0, 1\\], got 0"):
        S.LinearLR(opt, start_factor=0)
    with pytest.raises(TypeError, match="gradflow Optimizer"):
        S.StepLR(object(), step_size=1)
    with pytest.raises(KeyError, match="initial_lr"):
        S.StepLR(Adam([nn.Parameter(gf.zeros(1))]), step_size=1, last_epoch=4)
    with pytest.raises(ValueError, match="milestones"):
        S.SequentialLR(opt, [S.StepLR(opt, 1)], milestones=[3])

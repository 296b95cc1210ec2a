"""clip_grad_norm_ and clip_grad_value_: the total norm over all gradients, and the scaling."""
import math

import numpy as np
import pytest

import gradflow as gf
import gradflow.nn as nn
from gradflow.optim import clip_grad_norm_, clip_grad_value_


def _params(device, grads):
    ps = []
    for g in grads:
        p = nn.Parameter(gf.zeros(np.shape(g), device=device))
        p.grad = gf.tensor(np.asarray(g, dtype=np.float32), device=device)
        ps.append(p)
    return ps


def test_total_norm_and_scaling(device):
    ps = _params(device, [[3.0, 0.0], [[0.0, 4.0], [0.0, 0.0]]])  # total 2-norm 5
    total = clip_grad_norm_(ps, max_norm=1.0)
    assert total.item() == pytest.approx(5.0) and total.device is device
    coef = 1.0 / (5.0 + 1e-6)
    np.testing.assert_allclose(ps[0].grad.numpy(), [3 * coef, 0], rtol=1e-6)
    np.testing.assert_allclose(ps[1].grad.numpy(), [[0, 4 * coef], [0, 0]], rtol=1e-6)
    after = math.sqrt(sum(float((p.grad.numpy() ** 2).sum()) for p in ps))
    assert after == pytest.approx(1.0, rel=1e-5)


def test_no_change_below_the_limit_and_other_norms(device):
    ps = _params(device, [[0.3, -0.4]])
    assert clip_grad_norm_(ps, 1.0).item() == pytest.approx(0.5)
    np.testing.assert_array_equal(ps[0].grad.numpy(), np.float32([0.3, -0.4]))
    ps = _params(device, [[1.0, -2.0], [3.0]])
    assert clip_grad_norm_(ps, 10.0, norm_type=1).item() == pytest.approx(6.0)
    assert clip_grad_norm_(ps, 1.5, norm_type=float("inf")).item() == pytest.approx(3.0)
    np.testing.assert_allclose(ps[1].grad.numpy(), [1.5], rtol=1e-5)


@pytest.mark.filterwarnings("ignore:invalid value encountered")  # inf * 0, as in PyTorch
def test_parameters_without_grad_and_nonfinite_norms():
    a, b = nn.Parameter(gf.ones(2)), nn.Parameter(gf.ones(2))
    a.grad = gf.tensor([float("inf"), 1.0])
    assert clip_grad_norm_([a, b], 1.0).item() == math.inf
    assert np.isnan(a.grad.numpy()[0])  # PyTorch's behaviour: the caller checks the norm
    a.grad = gf.tensor([float("nan"), 1.0])
    with pytest.raises(RuntimeError, match="total norm .* is nan"):
        clip_grad_norm_([a], 1.0, error_if_nonfinite=True)
    with pytest.raises(ValueError, match="max_norm must be > 0, got -1.0"):
        clip_grad_norm_([a], -1)
    assert clip_grad_norm_([b], 1.0).item() == 0.0


def test_clip_grad_value(device):
    ps = _params(device, [[-3.0, 0.5, 2.0]])
    clip_grad_value_(ps, 1.0)
    np.testing.assert_array_equal(ps[0].grad.numpy(), np.float32([-1.0, 0.5, 1.0]))
    with pytest.raises(ValueError, match="clip_value must be > 0"):
        clip_grad_value_(ps, 0)

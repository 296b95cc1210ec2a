"""gf.gradcheck and gf.gradgradcheck themselves: they pass right gradients, catch wrong ones and
name the worst element, and refuse float32."""
import numpy as np
import pytest

import gradflow as gf
from gradflow import GradcheckError
from gradflow.autograd import Function


class _WrongSquare(Function):
    """y = x^2 with a deliberately wrong rule: dy = 2 dx everywhere except a wrong element."""

    def forward(self, x):
        # off by +5 at flat position 4 only: the error report must name exactly that element
        self.bump = gf.backend.xp_of(x).zeros(x.shape, dtype=x.dtype)
        self.bump.reshape(-1)[4] = 5.0
        return x * x

    def backward(self, gy, y, x):
        return gy * x * 2.0 + self.bump


class _WrongSecondOrder(Function):
    """y = sin(x) whose rule is right once but not twice: cos(x) is treated as a constant."""

    def forward(self, x):
        return gf.backend.xp_of(x).sin(x)

    def backward(self, gy, y, x):
        c = gf.cos(x)
        return gy * (c.detach() if isinstance(c, gf.Tensor) else c)


def f64(a, device):
    return gf.tensor(a, dtype=gf.float64, device=device, requires_grad=True)


def test_passes_on_right_gradients(device):
    x = f64(np.random.default_rng(0).standard_normal((3, 4)), device)
    assert gf.gradcheck(lambda t: (t * t).tanh(), x) is True
    assert gf.gradgradcheck(lambda t: (t * t).tanh(), x) is True
    y = f64([0.5, 1.5], device)
    assert gf.gradcheck(lambda a, b: (a * b, a + 1), (x[:2, 0].detach().requires_grad_(), y))


def test_fails_on_a_wrong_gradient_naming_the_worst_element(device):
    x = f64(np.arange(1.0, 7.0).reshape(2, 3), device)
    with pytest.raises(GradcheckError) as info:
        gf.gradcheck(lambda t: _WrongSquare()(t), x)
    msg = str(info.value)
    # flat position 4 of a (2, 3) input is (1, 1)
    assert "input 0 (shape (2, 3)) at position (1, 1)" in msg, msg
    assert "analytical" in msg and "numerical" in msg
    assert gf.gradcheck(lambda t: _WrongSquare()(t), x, raise_exception=False) is False


def test_names_the_input_that_fails(device):
    a = f64([1.0, 2.0], device)
    b = f64(np.arange(1.0, 7.0), device)
    with pytest.raises(GradcheckError, match=r"input 1 \(shape \(6,\)\) at position \(4,\)"):
        gf.gradcheck(lambda p, q: p.sum() * _WrongSquare()(q), (a, b))


def test_gradgradcheck_catches_a_rule_that_is_right_only_once(device):
    x = f64([0.3, -1.2, 2.0], device)
    assert gf.gradcheck(lambda t: _WrongSecondOrder()(t), x)
    with pytest.raises(GradcheckError, match="position"):
        gf.gradgradcheck(lambda t: _WrongSecondOrder()(t), x)


def test_rejects_float32_inputs_and_inputs_without_grad(device):
    x = gf.tensor([1.0, 2.0], device=device, requires_grad=True)
    with pytest.raises(TypeError, match="input 0 has dtype float32; use float64"):
        gf.gradcheck(lambda t: t * 2, x)
    with pytest.raises(ValueError, match="no input has requires_grad=True"):
        gf.gradcheck(lambda t: t * 2, gf.tensor([1.0], dtype=gf.float64, device=device))


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # sqrt(-eps) and 1/0 on purpose
def test_a_nan_or_inf_gradient_fails(device):
    x = f64([0.0, 1.0], device)
    with pytest.raises(GradcheckError, match=r"position \(0,\)"):
        gf.gradcheck(lambda t: gf.sqrt(t), x)  # infinite derivative at 0


def test_works_on_non_contiguous_inputs(device):
    base = gf.tensor(np.random.default_rng(1).standard_normal((3, 2)), dtype=gf.float64,
                     device=device)
    x = base.T.detach().requires_grad_()  # a transposed view: not C-contiguous
    assert gf.gradcheck(lambda t: gf.sin(t) * gf.arange(3.0, device=device).astype(gf.float64), x)


def test_zero_gradient_inputs_and_unused_inputs(device):
    a = f64([1.0, 2.0], device)
    b = f64([3.0], device)
    assert gf.gradcheck(lambda p, q: p * 2, (a, b))  # q unused: its gradient 0 is right
    with pytest.raises(GradcheckError, match=r"input 1 \(shape \(1,\)\)"):
        gf.gradcheck(lambda p, q: p * 2 + q.detach() * 10, (a, b))  # a path autograd missed


def test_public_and_documented():
    assert gf.gradcheck.__doc__ and "worst element" in gf.testing.GradcheckError.__doc__
    assert issubclass(GradcheckError, AssertionError)

"""Every binary op over every pair of shapes from {(), (4,), (3, 4), (1, 4), (3, 1), (0, 4)},
and with a Python number on either side: gradients summed back to each input's own shape."""
import itertools

import numpy as np
import pytest

import gradflow as gf

from _gradcases import make_input

SHAPES = [(), (4,), (3, 4), (1, 4), (3, 1), (0, 4)]

# name -> (op, domain of a, domain of b, NumPy reference)
BINARY = {
    "add": (lambda a, b: a + b, "any", "any", np.add),
    "sub": (lambda a, b: a - b, "any", "any", np.subtract),
    "mul": (lambda a, b: a * b, "any", "any", np.multiply),
    "div": (lambda a, b: a / b, "any", "nonzero", np.divide),
    "pow": (lambda a, b: a ** b, "pos", "any", np.power),
    "maximum": (gf.maximum, "grid", "half", np.maximum),
    "minimum": (gf.minimum, "grid", "half", np.minimum),
    "where": (lambda a, b: gf.where(gf.tensor([True, False, False, True], device=a.device)
                                    if isinstance(a, gf.Tensor) else
                                    gf.tensor([True, False, False, True], device=b.device), a, b),
              "any", "any", lambda a, b: np.where([True, False, False, True], a, b)),
}


def _broadcastable(s, t):
    try:
        np.broadcast_shapes(s, t)
        return True
    except ValueError:
        return False


PAIRS = [(s, t) for s, t in itertools.product(SHAPES, SHAPES) if _broadcastable(s, t)]


@pytest.mark.parametrize("name", sorted(BINARY))
def test_broadcast_pairs(device, name):
    op, da, db, ref = BINARY[name]
    rng = np.random.default_rng(0)
    checked = 0
    for sa, sb in PAIRS:
        if name == "where" and not _broadcastable(np.broadcast_shapes(sa, sb), (4,)):
            continue
        an, bn = make_input(da, sa, rng), make_input(db, sb, rng)
        a = gf.tensor(an, dtype=gf.float64, device=device, requires_grad=True)
        b = gf.tensor(bn, dtype=gf.float64, device=device, requires_grad=True)
        y = op(a, b)
        np.testing.assert_allclose(y.numpy(), ref(an, bn), rtol=1e-12, atol=0)
        # Every gradient has its own input's shape, even where the other input was bigger.
        y.backward(gf.ones_like(y))
        assert a.grad.shape == sa and b.grad.shape == sb, (sa, sb)
        assert gf.gradcheck(op, (a, b)), (sa, sb)
        checked += 1
    assert checked >= 10


@pytest.mark.parametrize("name", ["add", "sub", "mul", "div", "pow", "maximum", "minimum"])
@pytest.mark.parametrize("shape", [(), (3,), (2, 3)])
def test_python_number_on_either_side(device, name, shape):
    op, da, db, ref = BINARY[name]
    rng = np.random.default_rng(1)
    xn = make_input(da if name != "pow" else "pos", shape, rng)
    x = gf.tensor(xn, dtype=gf.float64, device=device, requires_grad=True)
    left = 1.75 if name != "maximum" and name != "minimum" else 0.5
    right = 1.25 if name != "maximum" and name != "minimum" else 0.5
    np.testing.assert_allclose(op(x, right).numpy(), ref(xn, right), rtol=1e-12)
    np.testing.assert_allclose(op(left, x).numpy(), ref(left, xn), rtol=1e-12)
    assert gf.gradcheck(lambda t: op(t, right), x)
    assert gf.gradcheck(lambda t: op(left, t), x)
    assert gf.gradgradcheck(lambda t: op(t, right), x)
    assert gf.gradgradcheck(lambda t: op(left, t), x)
    # A Python number keeps the tensor's dtype (NumPy 2's rules for Python scalars).
    x32 = gf.tensor(xn, dtype=gf.float32, device=device)
    assert op(x32, right).dtype == gf.float32
    assert op(left, x32).dtype == gf.float32

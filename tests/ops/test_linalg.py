"""matmul with NumPy's rules: 1-D and 2-D operands, batched N-D with broadcast batch dims."""
import numpy as np
import pytest

import gradflow as gf

RNG = np.random.default_rng(7)

SHAPES = [
    ((4,), (4,)),             # dot product, 0-d result
    ((4,), (4, 3)),           # row vector @ matrix
    ((2, 4), (4,)),           # matrix @ column vector
    ((2, 4), (4, 3)),         # matrix @ matrix
    ((5, 2, 4), (4, 3)),      # batch @ matrix
    ((2, 4), (5, 4, 3)),      # matrix @ batch
    ((5, 1, 2, 4), (3, 4, 3)),  # broadcast batch dims: (5, 1) with (3,)
    ((4,), (2, 4, 3)),        # vector @ batch
    ((2, 2, 4), (4,)),        # batch @ vector
    ((1, 2, 4), (3, 4, 1)),   # size-1 batch and size-1 core dims
]


@pytest.mark.parametrize("sa,sb", SHAPES)
def test_matmul_values_and_gradients(device, sa, sb):
    an, bn = RNG.standard_normal(sa), RNG.standard_normal(sb)
    a = gf.tensor(an, dtype=gf.float64, device=device, requires_grad=True)
    b = gf.tensor(bn, dtype=gf.float64, device=device, requires_grad=True)
    y = a @ b
    ref = an @ bn
    assert y.shape == np.shape(ref)
    assert isinstance(y.data, device.backend.ndarray)  # 0-d results stay arrays
    np.testing.assert_allclose(y.numpy(), ref, rtol=1e-12)
    np.testing.assert_allclose(gf.matmul(a, b).numpy(), ref, rtol=1e-12)
    np.testing.assert_allclose(a.matmul(b).numpy(), ref, rtol=1e-12)
    assert gf.gradcheck(gf.matmul, (a, b))
    assert gf.gradgradcheck(gf.matmul, (a, b))
    y.backward(gf.ones_like(y))
    assert a.grad.shape == sa and b.grad.shape == sb


def test_matmul_gradient_formula_2d(device):
    an, bn = RNG.standard_normal((3, 4)), RNG.standard_normal((4, 2))
    gn = RNG.standard_normal((3, 2))
    a = gf.tensor(an, dtype=gf.float64, device=device, requires_grad=True)
    b = gf.tensor(bn, dtype=gf.float64, device=device, requires_grad=True)
    (a @ b).backward(gf.tensor(gn, dtype=gf.float64, device=device))
    np.testing.assert_allclose(a.grad.numpy(), gn @ bn.T, rtol=1e-12)
    np.testing.assert_allclose(b.grad.numpy(), an.T @ gn, rtol=1e-12)


def test_matmul_with_one_side_constant(device):
    a = gf.tensor(RNG.standard_normal((3, 4)), device=device, requires_grad=True)
    b = gf.tensor(RNG.standard_normal((4,)), device=device)
    (a @ b).sum().backward()
    assert b.grad is None
    np.testing.assert_allclose(a.grad.numpy(), np.broadcast_to(b.numpy(), (3, 4)))


def test_numpy_array_on_the_left_of_at(device):
    b = gf.tensor(np.eye(2), device=device)
    with pytest.raises(TypeError, match="ndarray"):
        np.ones((2, 2)) @ b


def test_matmul_errors_name_the_shapes(device):
    z = lambda *s: gf.zeros(*s, device=device)  # noqa: E731
    with pytest.raises(ValueError, match=r"shapes \(2, 3\) and \(4, 5\) do not match"):
        z(2, 3) @ z(4, 5)
    with pytest.raises(ValueError, match=r"shapes \(3,\) and \(4,\)"):
        z(3) @ z(4)
    with pytest.raises(ValueError, match=r"shapes \(2, 3\) and \(2,\)"):
        z(2, 3) @ z(2)
    with pytest.raises(ValueError, match=r"batch dims \(2,\) and \(5,\) of shapes \(2, 3, 4\) "
                                         r"and \(5, 4, 6\)"):
        z(2, 3, 4) @ z(5, 4, 6)
    with pytest.raises(ValueError, match="0-d"):
        gf.tensor(2.0, device=device) @ z(2)
    with pytest.raises(TypeError, match="two Tensors"):
        gf.matmul(z(2), [1.0, 2.0])

"""Shape ops: values against NumPy, gradients that move values back, and errors naming shapes."""
import numpy as np
import pytest

import gradflow as gf


def arange(shape, device, requires_grad=True):
    n = int(np.prod(shape))
    return gf.tensor(np.arange(n, dtype=np.float64).reshape(shape), device=device,
                     requires_grad=requires_grad)


def test_reshape_forms(device):
    x = arange((2, 3, 4), device)
    ref = np.arange(24.0).reshape(2, 3, 4)
    for args, shape in [(((6, 4),), (6, 4)), ((6, 4), (6, 4)), ((-1,), (24,)),
                        (((4, -1),), (4, 6)), ((2, -1, 3), (2, 4, 3)), (((24,),), (24,))]:
        y = x.reshape(*args)
        assert y.shape == shape
        np.testing.assert_array_equal(y.numpy(), ref.reshape(shape))
    assert x.reshape(2, 3, 4) is x  # nothing to do: no op recorded
    assert x.view(4, 6).shape == (4, 6)
    y = x.reshape(4, 6)
    (y * gf.tensor(np.arange(24.0).reshape(4, 6), device=device)).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), ref)
    assert gf.reshape(gf.zeros(0, 3, device=device), -1).shape == (0,)
    assert gf.tensor(5.0, device=device).reshape(1, 1).shape == (1, 1)


def test_reshape_errors_name_both_shapes(device):
    x = gf.zeros(2, 3, device=device)
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(4, 2\)"):
        x.reshape(4, 2)
    with pytest.raises(ValueError, match=r"\(-1, -1\)"):
        x.reshape(-1, -1)
    with pytest.raises(ValueError, match=r"\(4, -1\)"):
        x.reshape(4, -1)
    with pytest.raises(TypeError, match="ints"):
        x.reshape(2.0, 3)


def test_transpose_permute_T_mT_swapaxes(device):
    x = arange((2, 3, 4), device)
    ref = np.arange(24.0).reshape(2, 3, 4)
    np.testing.assert_array_equal(x.T.numpy(), ref.T)
    np.testing.assert_array_equal(x.mT.numpy(), np.swapaxes(ref, -1, -2))
    np.testing.assert_array_equal(x.transpose().numpy(), ref.transpose())
    np.testing.assert_array_equal(x.transpose(1, 2, 0).numpy(), ref.transpose(1, 2, 0))
    np.testing.assert_array_equal(x.transpose((2, 0, 1)).numpy(), ref.transpose(2, 0, 1))
    np.testing.assert_array_equal(x.permute(0, -1, 1).numpy(), ref.transpose(0, 2, 1))
    np.testing.assert_array_equal(gf.permute(x, 2, 1, 0).numpy(), ref.transpose(2, 1, 0))
    np.testing.assert_array_equal(x.swapaxes(0, 2).numpy(), np.swapaxes(ref, 0, 2))
    np.testing.assert_array_equal(gf.swapaxes(x, -1, 0).numpy(), np.swapaxes(ref, -1, 0))
    assert x.transpose(0, 1, 2) is x
    v = gf.tensor([1.0, 2.0], device=device)
    assert v.T is v and gf.tensor(1.0, device=device).T.shape == ()
    w = gf.tensor(np.random.default_rng(0).standard_normal((2, 3, 4)), dtype=gf.float64,
                  device=device, requires_grad=True)
    assert gf.gradcheck(lambda t: t.transpose(1, 2, 0) * gf.arange(2.0, device=device), w)
    assert gf.gradcheck(lambda t: t.mT, w)


def test_transpose_errors(device):
    x = gf.zeros(2, 3, device=device)
    with pytest.raises(ValueError, match=r"\(0, 0\).*\(2, 3\)"):
        x.transpose(0, 0)
    with pytest.raises(ValueError, match="permutation"):
        x.transpose(0, 1, 2)
    with pytest.raises(ValueError, match=r"axis 2 .*\(2, 3\)"):
        x.swapaxes(0, 2)


def test_broadcast_to_and_expand(device):
    x = gf.tensor([[1.0], [2.0]], device=device, requires_grad=True)
    y = x.broadcast_to((3, 2, 4))
    assert y.shape == (3, 2, 4)
    np.testing.assert_array_equal(y.numpy()[1], [[1] * 4, [2] * 4])
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [[12.0], [12.0]])  # 3 * 4 copies each
    assert x.expand(2, 5).shape == (2, 5) and x.expand((2, 5)).shape == (2, 5)
    assert gf.broadcast_to(x, (2, 1)) is x
    with pytest.raises(ValueError, match=r"\(2, 1\) to \(3, 4\)"):
        x.broadcast_to((3, 4))
    with pytest.raises(ValueError, match=r"cannot broadcast"):
        x.broadcast_to((1,))


def test_sum_to(device):
    x = gf.tensor(np.arange(6.0).reshape(2, 3), device=device, requires_grad=True)
    np.testing.assert_array_equal(gf.sum_to(x, (3,)).numpy(), [3, 5, 7])
    np.testing.assert_array_equal(gf.sum_to(x, (2, 1)).numpy(), [[3], [12]])
    np.testing.assert_array_equal(gf.sum_to(x, ()).numpy(), 15)
    with pytest.raises(ValueError, match=r"\(2, 3\) down to \(2,\)"):
        gf.sum_to(x, (2,))


def test_squeeze_unsqueeze_flatten(device):
    x = arange((1, 3, 1, 2), device)
    assert x.squeeze().shape == (3, 2)
    assert x.squeeze(0).shape == (3, 1, 2)
    assert x.squeeze((0, 2)).shape == (3, 2)
    assert x.squeeze(-2).shape == (1, 3, 2)
    with pytest.raises(ValueError, match=r"axis 1 of shape \(1, 3, 1, 2\) has size 3"):
        x.squeeze(1)
    v = gf.zeros(3, device=device)
    assert v.unsqueeze(0).shape == (1, 3) and v.unsqueeze(-1).shape == (3, 1)
    assert v.unsqueeze(1).shape == (3, 1) and gf.unsqueeze(v, -2).shape == (1, 3)
    with pytest.raises(ValueError, match="axis 2 is out of range"):
        v.unsqueeze(2)
    y = arange((2, 3, 4, 5), device)
    assert y.flatten().shape == (120,)
    assert y.flatten(1).shape == (2, 60)
    assert y.flatten(1, 2).shape == (2, 12, 5)
    assert y.flatten(-2).shape == (2, 3, 20)
    assert gf.flatten(gf.tensor(2.0, device=device)).shape == (1,)
    with pytest.raises(ValueError, match="start_axis 2 comes after end_axis 1"):
        y.flatten(2, 1)
    (y.flatten(1) * 2).sum().backward()
    np.testing.assert_array_equal(y.grad.numpy(), np.full((2, 3, 4, 5), 2.0))


def test_concatenate_stack_split(device):
    a = arange((2, 3), device)
    b = gf.tensor(np.ones((1, 3)), device=device, requires_grad=True)
    c = gf.concatenate([a, b])
    np.testing.assert_array_equal(c.numpy(), np.concatenate([np.arange(6.0).reshape(2, 3),
                                                             np.ones((1, 3))]))
    (c * gf.tensor(np.arange(9.0).reshape(3, 3), device=device)).sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), np.arange(6.0).reshape(2, 3))
    np.testing.assert_array_equal(b.grad.numpy(), [[6, 7, 8]])
    assert gf.cat([a, a], axis=-1).shape == (2, 6)
    s = gf.stack([a, a, a], axis=1)
    assert s.shape == (2, 3, 3)
    np.testing.assert_array_equal(s.numpy(), np.stack([a.numpy()] * 3, axis=1))
    assert gf.stack([a, a], axis=-1).shape == (2, 3, 2)
    parts = gf.split(gf.arange(6.0, device=device), 3)
    assert [p.tolist() for p in parts] == [[0, 1], [2, 3], [4, 5]]
    parts = gf.arange(6.0, device=device).split([1, 4])
    assert [p.tolist() for p in parts] == [[0], [1, 2, 3], [4, 5]]
    x = arange((4, 2), device)
    top, bottom = x.split(2)
    (top * 3).sum().backward()  # only one piece used: the other gets zeros
    np.testing.assert_array_equal(x.grad.numpy(), [[3, 3], [3, 3], [0, 0], [0, 0]])
    w = gf.tensor(np.random.default_rng(1).standard_normal((3, 4)), dtype=gf.float64,
                  device=device, requires_grad=True)
    assert gf.gradcheck(lambda t: gf.stack(gf.split(t, 2, axis=1), axis=0) * 1.5, w)


def test_concatenate_stack_split_errors_name_the_shapes(device):
    a, b = gf.zeros(2, 3, device=device), gf.zeros(2, 4, device=device)
    with pytest.raises(ValueError, match=r"\(2, 3\), \(2, 4\) differ off axis 0"):
        gf.concatenate([a, b])
    assert gf.concatenate([a, b], axis=1).shape == (2, 7)
    with pytest.raises(ValueError, match="at least one"):
        gf.concatenate([])
    with pytest.raises(ValueError, match="0-d"):
        gf.concatenate([gf.tensor(1.0), gf.tensor(2.0)])
    with pytest.raises(ValueError, match=r"\(2, 3\), \(2, 4\)"):
        gf.stack([a, b])
    with pytest.raises(ValueError, match=r"axis 0 of size 2 \(shape \(2, 3\)\) does not divide "
                                         r"into 3"):
        gf.split(a, 3)
    with pytest.raises(ValueError, match="out of range"):
        gf.concatenate([a, a], axis=2)


def test_one_axis_ops_refuse_a_tuple_of_axes(device):
    x = gf.arange(6.0, device=device)
    with pytest.raises(TypeError, match=r"concatenate: axis must be one int, got \(0, 1\)"):
        gf.concatenate([x, x], axis=(0, 1))
    with pytest.raises(TypeError, match=r"split: axis must be one int, got \(0,\)"):
        gf.split(x, 2, axis=(0,))
    with pytest.raises(TypeError, match=r"argmax: axis must be one int"):
        x.argmax(axis=(0,))
    parts = gf.split(x, gf.backend.host_numpy().int64(3))  # a NumPy int counts as an int
    assert [p.tolist() for p in parts] == [[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]]

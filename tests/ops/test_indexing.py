"""x[key]: ints, slices, None, Ellipsis, bool masks and integer arrays, with their gradients."""
import numpy as np
import pytest
from hypothesis import given, settings

import gradflow as gf

from _gradcases import index_case

A = np.arange(24.0).reshape(2, 3, 4)


def x_on(device, requires_grad=True):
    return gf.tensor(A, device=device, requires_grad=requires_grad)


@settings(max_examples=40)
@given(case=index_case())
def test_every_key_kind_matches_numpy(device, case):
    (shape,), kw = case
    key = kw["key"]
    a = np.arange(float(np.prod(shape))).reshape(shape)
    x = gf.tensor(a, device=device, requires_grad=True)
    y = x[key]
    np.testing.assert_array_equal(y.numpy(), a[key])
    assert isinstance(y.data, device.backend.ndarray)
    # The gradient counts how often each element was picked (repeats accumulate).
    y.backward(gf.ones_like(y))
    count = np.zeros(shape)
    np.add.at(count, key, 1.0)
    np.testing.assert_array_equal(x.grad.numpy(), count)


def test_basic_keys(device):
    x = x_on(device)
    cases = [1, -1, (0, 2), (1, -1, 3), slice(1, None), (slice(None), slice(0, 3, 2)),
             (Ellipsis, 1), (None, 0), (0, None, Ellipsis, None), (slice(None, None, -1),),
             (1, slice(None), None, 2)]
    for key in cases:
        np.testing.assert_array_equal(x[key].numpy(), A[key], err_msg=repr(key))
    assert x[1, 2, 3].shape == () and x[1, 2, 3].item() == 23.0


def test_basic_index_gradient_lands_in_place(device):
    x = x_on(device)
    x[1, :, 2].sum().backward()
    expected = np.zeros_like(A)
    expected[1, :, 2] = 1
    np.testing.assert_array_equal(x.grad.numpy(), expected)
    x.grad = None
    (x[0, 1:, ::2] * 2).sum().backward()
    expected = np.zeros_like(A)
    expected[0, 1:, ::2] = 2
    np.testing.assert_array_equal(x.grad.numpy(), expected)


def test_bool_masks(device):
    x = x_on(device)
    m = x > 20
    y = x[m]
    np.testing.assert_array_equal(y.numpy(), [21.0, 22.0, 23.0])
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), (A > 20).astype(float))
    rows = x[np.array([True, False])]
    assert rows.shape == (1, 3, 4)
    np.testing.assert_array_equal(x[:, [True, False, True]].numpy(), A[:, [True, False, True]])


def test_repeated_integer_indices_accumulate(device):
    x = gf.tensor([1.0, 2.0, 3.0], device=device, requires_grad=True)
    idx = gf.tensor([0, 0, 2, 0], device=device)
    y = x[idx]
    np.testing.assert_array_equal(y.numpy(), [1, 1, 3, 1])
    (y * gf.tensor([1.0, 10.0, 100.0, 1000.0], device=device)).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [1011.0, 0.0, 100.0])
    x.grad = None
    x[[1, 1, 1]].sum().backward()  # a list index
    np.testing.assert_array_equal(x.grad.numpy(), [0, 3, 0])


def test_pick_one_entry_per_row(device):
    logits = gf.tensor(np.arange(12.0).reshape(4, 3), device=device, requires_grad=True)
    labels = gf.tensor([2, 0, 1, 2], device=device)
    picked = logits[gf.arange(4, device=device), labels]
    np.testing.assert_array_equal(picked.numpy(), [2, 3, 7, 11])
    picked.sum().backward()
    expected = np.zeros((4, 3))
    expected[np.arange(4), [2, 0, 1, 2]] = 1
    np.testing.assert_array_equal(logits.grad.numpy(), expected)


def test_index_gradient_is_differentiable_again(device):
    w = gf.tensor(np.random.default_rng(0).standard_normal((4, 3)), dtype=gf.float64,
                  device=device, requires_grad=True)
    idx = gf.tensor([0, 3, 3, 1], device=device)
    assert gf.gradcheck(lambda t: t[idx, 1:] ** 2, w)
    assert gf.gradgradcheck(lambda t: t[idx, 1:] ** 2, w)
    assert gf.gradgradcheck(lambda t: t[t > 0] ** 3, w)


def test_bad_keys_raise_naming_the_shape(device):
    x = x_on(device, requires_grad=False)
    with pytest.raises(IndexError, match=r"shape \(2, 3, 4\)"):
        x[2]
    with pytest.raises(IndexError, match=r"shape \(2, 3, 4\)"):
        x[0, 0, 0, 0]
    with pytest.raises(IndexError, match=r"shape \(2, 3, 4\)"):
        x[[0, 5]]
    with pytest.raises(IndexError, match=r"shape \(2, 3, 4\)"):
        x[np.array([True, False, True])]
    with pytest.raises(IndexError, match="float32"):
        x[gf.tensor([0.0, 1.0], device=device)]
    with pytest.raises(IndexError, match="float64"):
        x[np.array([0.0])]
    with pytest.raises(TypeError, match="0-d"):
        len(gf.tensor(1.0, device=device))


def test_index_on_another_device_raises_naming_both():
    from _gradcases import FAKE_DEVICE
    x = gf.zeros(3, device="cpu")  # the CPU against FAKE_DEVICE, whatever GRADFLOW_DEVICE is
    idx = gf.tensor([0, 1], device="cpu").to(FAKE_DEVICE)
    with pytest.raises(gf.DeviceError, match=r"cpu.*cuda:7"):
        x[idx]


def test_iteration_and_len(device):
    x = x_on(device)
    assert len(x) == 2
    rows = list(x)
    assert len(rows) == 2 and rows[1].shape == (3, 4)
    rows[1].sum().backward()
    np.testing.assert_array_equal(x.grad.numpy()[1], np.ones((3, 4)))

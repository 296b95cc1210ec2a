"""Constructors, *_like, dtype defaults, and seeded random draws."""
import numpy as np
import pytest

import gradflow as gf


def test_tensor_dtype_defaults(device):
    assert gf.tensor([1.0, 2.0], device=device).dtype == gf.float32  # floats default to float32
    assert gf.tensor(1.5, device=device).dtype == gf.float32
    assert gf.tensor([1, 2], device=device).dtype == gf.int64
    assert gf.tensor([True, False], device=device).dtype == gf.bool_
    assert gf.tensor([1, 2.5], device=device).dtype == gf.float32
    assert gf.tensor([], device=device).dtype == gf.float32
    assert gf.tensor(np.zeros(2), device=device).dtype == gf.float64  # arrays keep theirs
    assert gf.tensor(np.zeros(2, np.int32), device=device).dtype == gf.int32
    assert gf.tensor([1, 2], dtype=gf.float64, device=device).dtype == gf.float64
    assert gf.tensor([1, 2], dtype="float32", device=device).dtype == gf.float32
    assert gf.tensor([[1, 2], [3, 4]], device=device).shape == (2, 2)


def test_tensor_rejects_non_numeric_data():
    with pytest.raises(TypeError, match="str"):
        gf.tensor("abc")
    with pytest.raises(TypeError, match="complex"):
        gf.tensor([1 + 2j])
    with pytest.raises(TypeError, match="int64"):
        gf.tensor([1, 2], requires_grad=True)


@pytest.mark.parametrize("fn,fill", [(gf.zeros, 0.0), (gf.ones, 1.0)])
def test_zeros_ones(device, fn, fill):
    for args in [(2, 3), ((2, 3),), ([2, 3],)]:
        x = fn(*args, device=device)
        assert x.shape == (2, 3) and x.dtype == gf.float32 and x.device is device
        assert (x.numpy() == fill).all()
    assert fn(device=device).shape == ()
    assert fn(0, 3, device=device).shape == (0, 3)
    assert fn(2, dtype=gf.float64, device=device).dtype == gf.float64
    assert fn(2, dtype=gf.int64, device=device).dtype == gf.int64
    x = fn(2, device=device, requires_grad=True)
    assert x.requires_grad and x.is_leaf
    with pytest.raises(ValueError, match=r"shape must be non-negative ints, got \(2, -1\)"):
        fn(2, -1, device=device)
    with pytest.raises(ValueError, match=r"\(2\.0,\)"):
        fn(2.0, device=device)


def test_full_arange_eye(device):
    f = gf.full((2, 2), 7.0, device=device)
    assert f.dtype == gf.float32 and f.tolist() == [[7, 7], [7, 7]]
    assert gf.full(3, 2, dtype=gf.int64, device=device).tolist() == [2, 2, 2]
    a = gf.arange(4, device=device)
    assert a.dtype == gf.int64 and a.tolist() == [0, 1, 2, 3]
    assert gf.arange(2, 8, 2, device=device).tolist() == [2, 4, 6]
    b = gf.arange(0, 1, 0.25, device=device)
    assert b.dtype == gf.float32 and b.tolist() == [0, 0.25, 0.5, 0.75]
    assert gf.arange(3.0, device=device).dtype == gf.float32
    assert gf.arange(3, dtype=gf.float64, device=device).dtype == gf.float64
    e = gf.eye(2, 3, device=device)
    assert e.dtype == gf.float32 and e.tolist() == [[1, 0, 0], [0, 1, 0]]
    assert gf.eye(2, device=device, requires_grad=True).requires_grad


def test_like_constructors(device):
    x = gf.tensor([[1.0, 2.0]], dtype=gf.float64, device=device)
    for fn, check in [(gf.zeros_like, lambda a: (a == 0).all()),
                      (gf.ones_like, lambda a: (a == 1).all()),
                      (lambda t, **k: gf.full_like(t, 3.0, **k), lambda a: (a == 3).all()),
                      (gf.rand_like, lambda a: ((a >= 0) & (a < 1)).all()),
                      (gf.randn_like, lambda a: np.isfinite(a).all())]:
        y = fn(x)
        assert y.shape == x.shape and y.dtype == x.dtype and y.device is device
        assert check(y.numpy()) and not y.requires_grad
        assert fn(x, dtype=gf.float32).dtype == gf.float32
        assert fn(x, requires_grad=True).requires_grad
    n = gf.tensor([1, 2], device=device)
    assert gf.zeros_like(n).dtype == gf.int64
    with pytest.raises(TypeError, match="int64"):
        gf.ones_like(n, requires_grad=True)


def test_random_shapes_and_ranges(device):
    r = gf.rand(1000, device=device)
    assert r.dtype == gf.float32 and r.shape == (1000,)
    assert r.numpy().min() >= 0 and r.numpy().max() < 1
    n = gf.randn(2, 500, dtype=gf.float64, device=device)
    assert n.dtype == gf.float64 and abs(n.numpy().mean()) < 0.2 and 0.8 < n.numpy().std() < 1.2
    assert gf.randn((3, 4), device=device).shape == (3, 4)
    assert gf.randn(2, requires_grad=True, device=device).requires_grad
    i = gf.randint(3, 7, (100,), device=device)
    assert i.dtype == gf.int64 and set(i.tolist()) <= {3, 4, 5, 6}
    assert gf.randint(0, 2, 5, device=device).shape == (5,)
    p = gf.randperm(10, device=device)
    assert p.dtype == gf.int64 and sorted(p.tolist()) == list(range(10))
    with pytest.raises(ValueError):
        gf.randint(5, 5, 3, device=device)


@pytest.mark.parametrize("draw", [
    lambda d: gf.rand(5, device=d), lambda d: gf.randn(2, 3, device=d),
    lambda d: gf.randint(0, 100, (8,), device=d), lambda d: gf.randperm(20, device=d),
    lambda d: gf.randn(4, dtype=gf.float64, device=d),
    lambda d: gf.rand_like(gf.zeros(3, device=d)),
])
def test_manual_seed_makes_draws_reproducible(device, draw):
    gf.manual_seed(42)
    a, b = draw(device).tolist(), draw(device).tolist()
    gf.manual_seed(42)
    assert draw(device).tolist() == a and draw(device).tolist() == b
    assert a != b  # the generator moves on between draws
    gf.manual_seed(43)
    assert draw(device).tolist() != a


def test_float64_is_supported_end_to_end(device):
    x = gf.randn(3, 4, dtype=gf.float64, device=device, requires_grad=True)
    w = gf.randn(4, 2, dtype=gf.float64, device=device, requires_grad=True)
    loss = gf.tanh(x @ w).logsumexp(axis=1).mean()
    assert loss.dtype == gf.float64
    loss.backward()
    assert x.grad.dtype == w.grad.dtype == gf.float64


def test_manual_seed_takes_any_int_and_names_anything_else():
    gf.manual_seed(-1)  # as in PyTorch: negative seeds are seeds too
    a = gf.rand(3).tolist()
    gf.manual_seed(2 ** 64 - 1)
    assert gf.rand(3).tolist() == a
    gf.manual_seed(np.int64(5))
    for bad in (1.5, "3", True):
        with pytest.raises(TypeError, match="manual_seed: the seed must be an int"):
            gf.manual_seed(bad)

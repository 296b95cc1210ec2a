"""LayerNorm, BatchNorm1d and BatchNorm2d: values against NumPy (and PyTorch when installed),
running statistics, train vs eval, gradients."""
import numpy as np
import pytest

import gradflow as gf
import gradflow.nn as nn


def test_layer_norm_module(device):
    ln = nn.LayerNorm(6, device=device)
    assert [n for n, _ in ln.named_parameters()] == ["weight", "bias"]
    xn = np.random.default_rng(0).standard_normal((4, 6)).astype(np.float32) * 3 + 2
    y = ln(gf.tensor(xn, device=device)).numpy()
    ref = (xn - xn.mean(1, keepdims=True)) / np.sqrt(xn.var(1, keepdims=True) + 1e-5)
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-5)
    assert nn.LayerNorm((2, 3), elementwise_affine=False).weight is None
    with pytest.raises(ValueError, match="normalized_shape"):
        nn.LayerNorm(0)


def test_layer_norm_gradcheck(device):
    ln = nn.LayerNorm(5, device=device).double()
    ln.weight.data[...] = gf.tensor(np.linspace(0.5, 1.5, 5), device=device).data
    x = gf.randn(3, 5, dtype=gf.float64, device=device, requires_grad=True)
    gf.gradcheck(lambda x, w, b: nn.functional.layer_norm(x, 5, w, b), (x, ln.weight, ln.bias))
    gf.gradgradcheck(lambda x: ln(x), x)


def test_batch_norm_running_statistics_train_vs_eval(device):
    bn = nn.BatchNorm1d(3, device=device)
    rng = np.random.default_rng(1)
    rm, rv = np.zeros(3), np.ones(3)
    for _ in range(3):
        xn = (rng.standard_normal((16, 3)) * [1.0, 2.0, 3.0] + [0.0, 1.0, -2.0]).astype(np.float32)
        y = bn(gf.tensor(xn, device=device)).numpy()
        np.testing.assert_allclose(y, (xn - xn.mean(0)) / np.sqrt(xn.var(0) + 1e-5),
                                   rtol=1e-4, atol=1e-5)
        rm = 0.9 * rm + 0.1 * xn.mean(0)
        rv = 0.9 * rv + 0.1 * xn.var(0, ddof=1)
    np.testing.assert_allclose(bn.running_mean.numpy(), rm, rtol=1e-5)
    np.testing.assert_allclose(bn.running_var.numpy(), rv, rtol=1e-5)
    assert int(bn.num_batches_tracked.item()) == 3
    bn.eval()
    xe = rng.standard_normal((2, 3)).astype(np.float32)
    ye = bn(gf.tensor(xe, device=device)).numpy()
    np.testing.assert_allclose(ye, (xe - rm) / np.sqrt(rv + 1e-5), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(bn.running_mean.numpy(), rm, rtol=1e-5)  # eval changes nothing
    assert list(bn.state_dict()) == ["weight", "bias", "running_mean", "running_var",
                                     "num_batches_tracked"]


def test_batch_norm_cumulative_average_and_3d_input(device):
    bn = nn.BatchNorm1d(2, momentum=None, device=device)
    xs = [np.random.default_rng(i).standard_normal((4, 2, 5)).astype(np.float32)
          for i in range(3)]
    for x in xs:
        bn(gf.tensor(x, device=device))
    np.testing.assert_allclose(bn.running_mean.numpy(),
                               np.mean([x.mean((0, 2)) for x in xs], axis=0), rtol=1e-5)


def test_batch_norm_without_tracking_uses_batch_statistics_in_eval():
    bn = nn.BatchNorm1d(2, track_running_stats=False, affine=False).eval()
    x = np.random.default_rng(2).standard_normal((6, 2))
    np.testing.assert_allclose(bn(gf.tensor(x)).numpy(),
                               (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-5), rtol=1e-6)
    assert bn.running_mean is None and list(bn.state_dict()) == []


def test_batch_norm_gradcheck_in_training_mode(device):
    bn = nn.BatchNorm1d(3, device=device).double()
    x = gf.randn(5, 3, dtype=gf.float64, device=device, requires_grad=True)
    gf.gradcheck(lambda x, w, b: nn.functional.batch_norm(x, None, None, w, b, training=True),
                 (x, bn.weight, bn.bias))
    gf.gradgradcheck(lambda x: bn(x), x)


def test_batch_norm_rejects_wrong_input():
    bn = nn.BatchNorm1d(3)
    with pytest.raises(ValueError, match=r"\(N, 3\).*\(4, 2\)"):
        bn(gf.randn(4, 2))
    with pytest.raises(ValueError, match="momentum"):
        nn.BatchNorm1d(3, momentum=2.0)


# --- BatchNorm2d --------------------------------------------------------------------------------
_KEYS = ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]


def _images(seed, shape=(4, 3, 5, 6)):
    """A float32 NCHW batch whose channels have different means and scales."""
    r = np.random.default_rng(seed)
    return (r.standard_normal(shape) * [[[1.0]], [[2.0]], [[0.5]]]
            + [[[0.0]], [[1.0]], [[-2.0]]]).astype(np.float32)


def _bn2d_ref(x, mean, var, eps=1e-5):
    return (x - mean.reshape(1, -1, 1, 1)) / np.sqrt(var.reshape(1, -1, 1, 1) + eps)


def test_batch_norm_2d_running_statistics_train_vs_eval(device):
    bn = nn.BatchNorm2d(3, device=device)
    rm, rv = np.zeros(3), np.ones(3)
    for seed in range(3):
        xn = _images(seed)
        y = bn(gf.tensor(xn, device=device)).numpy()
        np.testing.assert_allclose(y, _bn2d_ref(xn, xn.mean((0, 2, 3)), xn.var((0, 2, 3))),
                                   rtol=1e-4, atol=1e-5)
        rm = 0.9 * rm + 0.1 * xn.mean((0, 2, 3))
        rv = 0.9 * rv + 0.1 * xn.var((0, 2, 3), ddof=1)
    np.testing.assert_allclose(bn.running_mean.numpy(), rm, rtol=1e-5)
    np.testing.assert_allclose(bn.running_var.numpy(), rv, rtol=1e-5)
    assert int(bn.num_batches_tracked.item()) == 3
    xe = _images(9, (2, 3, 4, 4))
    ye = bn.eval()(gf.tensor(xe, device=device)).numpy()
    np.testing.assert_allclose(ye, _bn2d_ref(xe, rm, rv), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(bn.running_var.numpy(), rv, rtol=1e-5)  # eval changes nothing
    assert int(bn.num_batches_tracked.item()) == 3
    assert list(bn.state_dict()) == _KEYS


def test_batch_norm_2d_cumulative_average(device):
    bn = nn.BatchNorm2d(3, momentum=None, device=device)
    xs = [_images(seed) for seed in range(3)]
    for x in xs:
        bn(gf.tensor(x, device=device))
    # With momentum=None the running statistics are the plain average over the batches seen,
    # starting from the batches alone (the initial 0 and 1 get weight 0 at the first batch).
    np.testing.assert_allclose(bn.running_mean.numpy(),
                               np.mean([x.mean((0, 2, 3)) for x in xs], axis=0), rtol=1e-5)
    np.testing.assert_allclose(bn.running_var.numpy(),
                               np.mean([x.var((0, 2, 3), ddof=1) for x in xs], axis=0),
                               rtol=1e-5)
    assert int(bn.num_batches_tracked.item()) == 3


def test_batch_norm_2d_affine_and_tracking_switches(device):
    plain = nn.BatchNorm2d(3, affine=False, device=device)
    assert plain.weight is None and plain.bias is None and list(plain.parameters()) == []
    assert list(plain.state_dict()) == _KEYS[2:]
    free = nn.BatchNorm2d(3, track_running_stats=False, device=device).eval()
    assert free.running_mean is None and free.num_batches_tracked is None
    assert list(free.state_dict()) == _KEYS[:2]
    xn = _images(4)
    np.testing.assert_allclose(free(gf.tensor(xn, device=device)).numpy(),
                               _bn2d_ref(xn, xn.mean((0, 2, 3)), xn.var((0, 2, 3))),
                               rtol=1e-4, atol=1e-5)


def test_batch_norm_2d_affine_parameters_and_reset(device):
    bn = nn.BatchNorm2d(3, eps=1e-3, device=device)
    w, b = np.array([0.5, 2.0, -1.0], np.float32), np.array([1.0, 0.0, 3.0], np.float32)
    bn.load_state_dict({"weight": w, "bias": b}, strict=False)
    xn = _images(5)
    ref = _bn2d_ref(xn, xn.mean((0, 2, 3)), xn.var((0, 2, 3)), 1e-3)
    np.testing.assert_allclose(bn(gf.tensor(xn, device=device)).numpy(),
                               ref * w.reshape(1, 3, 1, 1) + b.reshape(1, 3, 1, 1),
                               rtol=1e-4, atol=1e-5)
    bn.reset_parameters()
    np.testing.assert_array_equal(bn.weight.numpy(), np.ones(3))
    np.testing.assert_array_equal(bn.running_var.numpy(), np.ones(3))
    assert int(bn.num_batches_tracked.item()) == 0


def test_batch_norm_2d_matches_torch(device):
    torch = pytest.importorskip("torch")
    tbn = torch.nn.BatchNorm2d(3).double()
    bn = nn.BatchNorm2d(3, device=device).double()
    r = np.random.default_rng(6)
    w, b = r.standard_normal(3) + 1, r.standard_normal(3)
    with torch.no_grad():
        tbn.weight.copy_(torch.from_numpy(w))
        tbn.bias.copy_(torch.from_numpy(b))
    bn.load_state_dict({"weight": w, "bias": b}, strict=False)
    for _ in range(3):
        xn, gn = _images(r.integers(1 << 30)).astype(np.float64), r.standard_normal((4, 3, 5, 6))
        tx, x = torch.tensor(xn, requires_grad=True), gf.tensor(xn, device=device,
                                                               requires_grad=True)
        ty, y = tbn(tx), bn(x)
        ty.backward(torch.from_numpy(gn))
        y.backward(gf.tensor(gn, device=device))
        np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(bn.weight.grad.numpy(), tbn.weight.grad.numpy(), rtol=1e-10)
    np.testing.assert_allclose(bn.bias.grad.numpy(), tbn.bias.grad.numpy(), rtol=1e-10)
    tstate = tbn.state_dict()
    assert list(bn.state_dict()) == list(tstate)
    for k in ("running_mean", "running_var", "num_batches_tracked"):
        np.testing.assert_allclose(bn.state_dict()[k].numpy(), tstate[k].numpy(), rtol=1e-12)
    bn.eval()
    tbn.eval()
    xe = _images(7).astype(np.float64)
    np.testing.assert_allclose(bn(gf.tensor(xe, device=device)).numpy(),
                               tbn(torch.from_numpy(xe)).detach().numpy(), rtol=1e-10, atol=1e-12)


def test_batch_norm_4d_gradcheck(device):
    w = gf.tensor([0.5, 1.5, -1.0], dtype=gf.float64, device=device, requires_grad=True)
    b = gf.tensor([0.1, 0.0, -0.3], dtype=gf.float64, device=device, requires_grad=True)
    x = gf.randn(3, 3, 2, 2, dtype=gf.float64, device=device, requires_grad=True)
    F = nn.functional
    gf.gradcheck(lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True), (x, w, b))
    gf.gradgradcheck(lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True), (x, w, b))
    rm = gf.tensor([0.2, -0.1, 0.0], dtype=gf.float64, device=device)
    rv = gf.tensor([1.5, 0.5, 2.0], dtype=gf.float64, device=device)
    gf.gradcheck(lambda x, w, b: F.batch_norm(x, rm, rv, w, b), (x, w, b))  # eval


def test_batch_norm_functional_any_rank():
    xn = np.random.default_rng(8).standard_normal((2, 3, 2, 3, 4))
    y = nn.functional.batch_norm(gf.tensor(xn), None, None, training=True).numpy()
    axes = (0, 2, 3, 4)
    np.testing.assert_allclose(y, (xn - xn.mean(axes, keepdims=True))
                               / np.sqrt(xn.var(axes, keepdims=True) + 1e-5), rtol=1e-10)
    with pytest.raises(ValueError, match=r"\(N, C, \*\).*\(5,\)"):
        nn.functional.batch_norm(gf.randn(5), None, None, training=True)


def test_batch_norm_2d_rejects_wrong_input():
    bn = nn.BatchNorm2d(3)
    with pytest.raises(ValueError, match=r"BatchNorm2d\(3\).*\(N, 3, H, W\).*\(4, 3, 5\)"):
        bn(gf.randn(4, 3, 5))
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\).*\(4, 2, 5, 5\)"):
        bn(gf.randn(4, 2, 5, 5))
    with pytest.raises(ValueError, match=r"BatchNorm2d: num_features"):
        nn.BatchNorm2d(0)

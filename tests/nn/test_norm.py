"""LayerNorm and BatchNorm1d: values against NumPy, running statistics, train vs eval, gradients."""
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

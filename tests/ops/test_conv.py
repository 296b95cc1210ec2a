"""conv2d, pad and pooling: values and gradients against PyTorch and by hand, PyTorch's
semantics (first maximum, padding, unbatched input), clear errors, and the layers.

The float64 gradchecks over drawn geometries are in test_gradients.py (cases in _convcases.py).
"""
import itertools
import math

import numpy as np
import pytest

import gradflow as gf
import gradflow.nn as nn

F = gf.nn.functional

# (input shape, weight shape, stride, padding, dilation, groups)
CONV_SWEEP = [
    ((2, 3, 7, 6), (4, 3, 3, 3), 1, 0, 1, 1),
    ((1, 1, 5, 5), (2, 1, 1, 1), 1, 0, 1, 1),                   # batch 1, one channel, 1x1
    ((2, 4, 8, 9), (6, 2, 3, 2), (2, 1), (1, 2), (1, 2), 2),    # non-square everything
    ((2, 4, 6, 6), (8, 1, 3, 3), 1, 1, 1, 4),                   # depthwise, multiplier 2
    ((2, 2, 3, 4), (3, 2, 3, 4), 1, 0, 1, 1),                   # kernel equal to the input
    ((2, 3, 9, 9), (2, 3, 3, 3), 3, "same", 2, 1),
    ((1, 2, 6, 7), (2, 2, 2, 2), 1, "same", 1, 1),              # 'same', odd total padding
    ((3, 2, 7, 7), (2, 2, 3, 3), 2, "valid", 1, 1),
]


def _torch():
    return pytest.importorskip("torch")


def _pair_of_tensors(arr, device):
    torch = _torch()
    return (gf.tensor(arr, device=device, requires_grad=True),
            torch.tensor(arr, requires_grad=True))


@pytest.mark.filterwarnings("ignore:Using padding='same'")  # PyTorch's note on its own copy
@pytest.mark.parametrize("xs, ws, stride, padding, dilation, groups", CONV_SWEEP)
def test_conv2d_values_and_gradients_equal_pytorchs(device, xs, ws, stride, padding, dilation,
                                                   groups):
    torch = _torch()
    if padding == "same" and stride != 1:
        stride = 1
    rng = np.random.default_rng(0)
    (x, tx), (w, tw), (b, tb) = (_pair_of_tensors(rng.standard_normal(s), device)
                                 for s in (xs, ws, ws[:1]))
    y = F.conv2d(x, w, b, stride, padding, dilation, groups)
    ty = torch.nn.functional.conv2d(tx, tw, tb, stride, padding, dilation, groups)
    gy = rng.standard_normal(tuple(ty.shape))
    (y * gf.tensor(gy, device=device)).sum().backward()
    (ty * torch.tensor(gy)).sum().backward()
    for ours, theirs in ((y, ty), (x.grad, tx.grad), (w.grad, tw.grad), (b.grad, tb.grad)):
        np.testing.assert_allclose(ours.numpy(), theirs.detach().numpy(), rtol=1e-10, atol=1e-10)


def test_conv2d_by_its_definition_and_without_bias(device):
    rng = np.random.default_rng(1)
    xn, wn = rng.standard_normal((2, 3, 5, 4)), rng.standard_normal((2, 3, 2, 3))
    y = F.conv2d(gf.tensor(xn, device=device), gf.tensor(wn, device=device), stride=(2, 1))
    ref = np.zeros((2, 2, 2, 2))
    for n, o, p, q in itertools.product(range(2), range(2), range(2), range(2)):
        ref[n, o, p, q] = (xn[n, :, 2 * p:2 * p + 2, q:q + 3] * wn[o]).sum()
    np.testing.assert_allclose(y.numpy(), ref, rtol=1e-12)


def test_conv2d_takes_an_unbatched_image(device):
    x, w = gf.randn(3, 6, 6, device=device), gf.randn(5, 3, 3, 3, device=device)
    y = F.conv2d(x, w, padding=1)
    assert y.shape == (5, 6, 6)
    np.testing.assert_allclose(y.numpy(), F.conv2d(x.unsqueeze(0), w, padding=1).numpy()[0],
                               rtol=1e-6)


def test_conv2d_gradient_of_gradient_in_float32_runs(device):
    # the gradgradchecks are float64 (test_gradients.py); here: a gradient penalty trains
    x = gf.randn(2, 2, 5, 5, device=device, requires_grad=True)
    w = gf.randn(3, 2, 3, 3, device=device, requires_grad=True)
    (gx,) = gf.grad((F.conv2d(x, w) ** 2).sum(), x, create_graph=True)
    (gx ** 2).sum().backward()
    assert w.grad.shape == w.shape and float(abs(w.grad).sum()) > 0


@pytest.mark.parametrize("call, match", [
    (lambda x, w: F.conv2d(x, gf.randn(4, 2, 3, 3)), r"to have 2 channels, but got 3"),
    (lambda x, w: F.conv2d(x, gf.randn(4, 1, 3, 3), groups=2), r"groups=2 .*3"),
    (lambda x, w: F.conv2d(gf.randn(2, 4, 8, 8), gf.randn(3, 2, 3, 3), groups=2),
     r"groups=2 does not divide the weight's 3 output channels"),
    (lambda x, w: F.conv2d(gf.randn(1, 3, 2, 2), w), r"kernel 3x3 .* larger than the padded "
                                                     r"input 2x2"),
    (lambda x, w: F.conv2d(gf.randn(1, 3, 2, 2), w, dilation=2, padding=1),
     r"reaching 5x5 pixels\) is larger than the padded input 4x4"),
    (lambda x, w: F.conv2d(gf.randn(3, 8, 8, 2, 1), w),
     r"4-D input .* got shape \(3, 8, 8, 2, 1\)"),
    (lambda x, w: F.conv2d(gf.randn(8, 8), w), r"4-D input .* got shape \(8, 8\)"),
    (lambda x, w: F.conv2d(x, w, stride=0), r"stride must be >= 1, got 0"),
    (lambda x, w: F.conv2d(x, w, stride=(1, -2)), r"stride must be >= 1, got \(1, -2\)"),
    (lambda x, w: F.conv2d(x, w, padding=-1), r"padding must be >= 0"),
    (lambda x, w: F.conv2d(x, w, padding="full"), r"'valid', 'same'"),
    (lambda x, w: F.conv2d(x, w, stride=2, padding="same"), r"padding='same' needs stride 1"),
    (lambda x, w: F.conv2d(x, gf.randn(4, 3, 3)), r"4-D Tensor"),
    (lambda x, w: F.conv2d(x, w, gf.randn(3)), r"bias must be a Tensor of shape \(4,\)"),
    (lambda x, w: F.conv2d(x, w, groups=0), r"groups must be a positive int"),
    (lambda x, w: F.max_pool2d(x, 2, padding=2), r"at most half"),
    (lambda x, w: F.max_pool2d(x, 0), r"kernel_size must be >= 1"),
    (lambda x, w: F.avg_pool2d(gf.randn(5, 5), 2), r"4-D input .* got shape \(5, 5\)"),
    (lambda x, w: F.max_pool2d(x, 9), r"kernel 9x9 .* larger than the padded input 8x8"),
    (lambda x, w: F.pad(x, (1, 2, 3)), r"even number of ints"),
    (lambda x, w: F.pad(x, (-5, -5)), r"crop more than the input"),
])
def test_bad_arguments_raise_value_errors_naming_the_shapes(call, match):
    with pytest.raises(ValueError, match=match):
        call(gf.randn(2, 3, 8, 8), gf.randn(4, 3, 3, 3))


def test_mixed_dtypes_and_unsupported_options_are_refused():
    x, w = gf.randn(1, 2, 5, 5), gf.randn(2, 2, 3, 3, dtype=gf.float64)
    with pytest.raises(TypeError, match="float32, weight float64"):
        F.conv2d(x, w)
    with pytest.raises(NotImplementedError, match="ceil_mode"):
        F.max_pool2d(x, 2, ceil_mode=True)
    with pytest.raises(NotImplementedError, match="'reflect'"):
        F.pad(x, (1, 1), mode="reflect")


def test_pad_is_pytorchs_pad(device):
    torch = _torch()
    xn = np.random.default_rng(2).standard_normal((2, 3, 4))
    for widths in [(1, 2), (1, 0, 2, 1), (-1, 2, 0, -2), (1, 1, 1, 1, 1, 1)]:
        x, tx = _pair_of_tensors(xn, device)
        y, ty = F.pad(x, widths, value=-3.0), torch.nn.functional.pad(tx, widths, value=-3.0)
        gy = np.random.default_rng(3).standard_normal(tuple(ty.shape))
        (y * gf.tensor(gy, device=device)).sum().backward()
        (ty * torch.tensor(gy)).sum().backward()
        np.testing.assert_array_equal(y.numpy(), ty.detach().numpy())
        np.testing.assert_array_equal(x.grad.numpy(), tx.grad.numpy())


POOL_SWEEP = [(2, None, 0, 1), (3, 2, 1, 1), ((2, 3), (1, 2), (1, 1), 1), (2, 1, 1, 2),
              (1, 1, 0, 1)]


@pytest.mark.parametrize("kernel, stride, padding, dilation", POOL_SWEEP)
def test_pooling_values_and_gradients_equal_pytorchs(device, kernel, stride, padding, dilation):
    torch = _torch()
    xn = np.random.default_rng(4).standard_normal((2, 3, 7, 8))
    gy = None
    x, tx = _pair_of_tensors(xn, device)
    y = F.max_pool2d(x, kernel, stride, padding, dilation)
    ty = torch.nn.functional.max_pool2d(tx, kernel, stride, padding, dilation)
    gy = np.random.default_rng(5).standard_normal(tuple(ty.shape))
    (y * gf.tensor(gy, device=device)).sum().backward()
    (ty * torch.tensor(gy)).sum().backward()
    np.testing.assert_array_equal(y.numpy(), ty.detach().numpy())
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-12)
    if dilation != 1:
        return
    for include_pad in (True, False):
        x, tx = _pair_of_tensors(xn, device)
        y = F.avg_pool2d(x, kernel, stride, padding, count_include_pad=include_pad)
        ty = torch.nn.functional.avg_pool2d(tx, kernel, stride, padding,
                                            count_include_pad=include_pad)
        (y * gf.tensor(gy, device=device)).sum().backward()
        (ty * torch.tensor(gy)).sum().backward()
        np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-12)
        np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-12)


def test_max_pool_sends_a_tied_windows_gradient_to_its_first_maximum(device):
    x = gf.tensor([[[[1.0, 5.0, 5.0, 0.0],
                     [5.0, 5.0, 2.0, 2.0]]]], device=device, requires_grad=True)
    y = F.max_pool2d(x, 2)
    y.backward(gf.tensor([[[[10.0, 20.0]]]], device=device))
    np.testing.assert_array_equal(y.numpy(), [[[[5.0, 5.0]]]])
    np.testing.assert_array_equal(x.grad.numpy(), [[[[0, 10, 20, 0], [0, 0, 0, 0]]]])


def test_max_pool_propagates_nan_and_never_picks_the_padding(device):
    x = gf.tensor([[[[float("nan"), 1.0], [2.0, 3.0]]]], device=device)
    assert np.isnan(F.max_pool2d(x, 2).numpy()).all()
    x = gf.full((1, 1, 3, 3), -7.0, device=device, requires_grad=True)
    y = F.max_pool2d(x, 3, stride=1, padding=1)
    np.testing.assert_array_equal(y.numpy(), np.full((1, 1, 3, 3), -7.0))
    y.sum().backward()
    assert float(x.grad.sum()) == 9.0  # every window's gradient reached the input


def test_avg_pool_divisor_override_and_unbatched(device):
    x = gf.ones(2, 4, 4, device=device)
    np.testing.assert_allclose(F.avg_pool2d(x, 2, divisor_override=2).numpy(),
                               np.full((2, 2, 2), 2.0))
    with pytest.raises(ValueError, match="divisor_override"):
        F.avg_pool2d(x, 2, divisor_override=0)


# --- layers ---------------------------------------------------------------------------------------
def test_conv2d_layer_initialisation_and_state_dict_match_pytorchs(device):
    gf.manual_seed(0)
    conv = nn.Conv2d(6, 8, (3, 5), stride=2, padding=1, groups=2, device=device)
    assert conv.weight.shape == (8, 3, 3, 5) and conv.bias.shape == (8,)
    bound = 1.0 / math.sqrt(3 * 3 * 5)  # kaiming_uniform(a=sqrt(5)): 1/sqrt(fan_in)
    for p in (conv.weight, conv.bias):
        v = p.numpy()
        assert np.abs(v).max() <= bound and np.abs(v).max() > 0.8 * bound
    assert abs(float(conv.weight.numpy().std()) - bound / math.sqrt(3)) < 0.15 * bound
    assert list(conv.state_dict()) == ["weight", "bias"]
    assert nn.Conv2d(1, 2, 3, bias=False).bias is None
    assert repr(conv) == ("Conv2d(6, 8, kernel_size=(3, 5), stride=(2, 2), padding=(1, 1), "
                          "groups=2)  # 368 parameters")
    assert conv(gf.randn(4, 6, 9, 9, device=device)).shape == (4, 8, 5, 4)
    with pytest.raises(ValueError, match="groups=4 must divide in_channels=6"):
        nn.Conv2d(6, 8, 3, groups=4)


def test_a_pytorch_cnn_ports_by_renaming_torch():
    torch = _torch()
    source = """
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, 1)
        self.bn = nn.BatchNorm2d(4)
        self.conv2 = nn.Conv2d(4, 8, 3, 1, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.avg = nn.AvgPool2d(2, stride=1)
        self.fc = nn.Linear(8 * 4 * 4, 10)

    def forward(self, x):
        x = F.relu(self.bn(self.conv1(x)))
        x = self.avg(self.pool(F.relu(self.conv2(x))))
        return self.fc(torch.flatten(x, 1))
"""
    nets = {}
    for lib in (torch, gf):
        ns = {"nn": lib.nn, "F": lib.nn.functional, "torch": lib}
        exec(source, ns)
        nets[lib.__name__] = ns["Net"]()
    ours, theirs = nets["gradflow"], nets["torch"]
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    xn = np.random.default_rng(6).standard_normal((5, 1, 12, 12)).astype(np.float32)
    y, ty = ours(gf.tensor(xn)), theirs(torch.tensor(xn))
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-4, atol=1e-5)
    y.sum().backward()
    ty.sum().backward()
    np.testing.assert_allclose(ours.conv1.weight.grad.numpy(), theirs.conv1.weight.grad.numpy(),
                               rtol=1e-3, atol=1e-4)


def test_a_small_cnn_learns(device):
    # Two classes the MLP-free way: a vertical or a horizontal bar, anywhere in an 8x8 image.
    rng = np.random.default_rng(7)
    images, labels = np.zeros((64, 1, 8, 8), np.float32), rng.integers(0, 2, 64)
    for img, label, at in zip(images, labels, rng.integers(1, 7, 64)):
        if label:
            img[0, :, at] = 1.0
        else:
            img[0, at, :] = 1.0
    images += 0.1 * rng.standard_normal(images.shape).astype(np.float32)
    gf.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(4, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(16, 2))
    model.to(device)
    opt = gf.optim.Adam(model.parameters(), lr=0.02)
    x, t = gf.tensor(images, device=device), gf.tensor(labels, device=device)
    first = None
    for _ in range(60):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), t)
        loss.backward()
        opt.step()
        first = first if first is not None else float(loss)
    accuracy = float((model(x).argmax(axis=1) == t).astype(gf.float32).mean())
    assert float(loss) < 0.2 * first and accuracy >= 0.95, (first, float(loss), accuracy)

"""gradflow.nn.init: PyTorch's formulas, seeded draws on the tensor's device, in place."""
import math

import numpy as np
import pytest

import gradflow as gf
from gradflow.nn import init


def test_gains_match_pytorch():
    assert init.calculate_gain("relu") == math.sqrt(2)
    assert init.calculate_gain("tanh") == 5 / 3
    assert init.calculate_gain("leaky_relu", math.sqrt(5)) == math.sqrt(2 / 6)
    assert init.calculate_gain("sigmoid") == 1.0
    with pytest.raises(ValueError, match="'swish'"):
        init.calculate_gain("swish")


@pytest.mark.parametrize("fn, expected_std", [
    (lambda t: init.kaiming_uniform_(t, nonlinearity="relu"), math.sqrt(2 / 400)),
    (lambda t: init.kaiming_normal_(t, nonlinearity="relu"), math.sqrt(2 / 400)),
    (lambda t: init.kaiming_normal_(t, mode="fan_out", nonlinearity="relu"), math.sqrt(2 / 300)),
    (lambda t: init.xavier_uniform_(t), math.sqrt(2 / 700)),
    (lambda t: init.xavier_normal_(t, gain=2.0), 2 * math.sqrt(2 / 700)),
    (lambda t: init.normal_(t, 1.0, 0.5), 0.5),
    (lambda t: init.uniform_(t, -2.0, 2.0), 4 / math.sqrt(12)),
])
def test_init_statistics(fn, expected_std, device):
    t = gf.zeros(300, 400, device=device)
    v0 = t._version
    assert fn(t) is t and t._version > v0
    assert abs(t.numpy().std() - expected_std) < 0.02 * expected_std


def test_uniform_bounds_and_constants(device):
    t = gf.zeros(50, 40, dtype=gf.float64, device=device)
    bound = math.sqrt(3) * math.sqrt(2) / math.sqrt(40)
    init.kaiming_uniform_(t, nonlinearity="relu")
    assert np.abs(t.numpy()).max() <= bound and t.dtype == gf.float64
    init.constant_(t, 0.25)
    assert (t.numpy() == 0.25).all()
    assert (init.ones_(t).numpy() == 1).all() and (init.zeros_(t).numpy() == 0).all()


def test_same_seed_same_weights(device):
    gf.manual_seed(42)
    a = init.xavier_uniform_(gf.zeros(8, 9, device=device)).numpy()
    gf.manual_seed(42)
    b = init.xavier_uniform_(gf.zeros(8, 9, device=device)).numpy()
    c = init.xavier_uniform_(gf.zeros(8, 9, device=device)).numpy()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(b, c)


def test_bad_input():
    with pytest.raises(ValueError, match=r"at least 2 dims.*\(5,\)"):
        init.xavier_uniform_(gf.zeros(5))
    with pytest.raises(TypeError, match="floating-point.*int64"):
        init.uniform_(gf.tensor([1, 2]))
    with pytest.raises(ValueError, match="mode"):
        init.kaiming_normal_(gf.zeros(2, 2), mode="fan_avg")

"""A new user's bad inputs get gradflow's own errors, naming the values: hooks checked like
gradient rules, no bare Python errors, item assignment, pickling, and no NumPy warnings where
inf or nan is the documented result."""
import pickle
import warnings

import numpy as np
import pytest

import gradflow as gf


# --- hooks ---------------------------------------------------------------------------------------
def _leaf_and_intermediate(device):
    w = gf.ones(3, device=device, requires_grad=True)
    h = w * 2.0
    return w, h


@pytest.mark.parametrize("returns, got", [
    (lambda g: g.sum(), r"returned a Tensor of shape \(\), dtype float32"),
    (lambda g: g[:2], r"returned a Tensor of shape \(2,\)"),
    (lambda g: g.double(), r"returned a Tensor of shape \(3,\), dtype float64"),
    (lambda g: "oops", r"returned a str"),
    (lambda g: g.numpy(), r"returned a ndarray"),
])
@pytest.mark.parametrize("on", ["leaf", "intermediate"])
def test_a_hook_result_is_checked_like_a_gradient_and_the_hook_is_named(device, returns, got, on):
    w, h = _leaf_and_intermediate(device)
    (w if on == "leaf" else h).register_hook(returns)
    with pytest.raises(gf.BackwardError, match=rf"the hook .*<lambda> \(.*test_bad_inputs.py:\d+\)"
                                               rf" on a tensor of shape \(3,\) {got}"):
        h.sum().backward()
    assert w.grad is None  # nothing half-done reached .grad


def test_a_hook_that_replaces_the_gradient_correctly_still_works(device):
    w, h = _leaf_and_intermediate(device)
    w.register_hook(lambda g: g * 10.0)
    h.sum().backward()
    assert w.grad.tolist() == [20.0] * 3


def test_register_hook_refuses_what_cannot_be_called():
    with pytest.raises(TypeError, match="must be callable, got 3"):
        gf.ones(2, requires_grad=True).register_hook(3)


# --- no bare Python errors ------------------------------------------------------------------------
@pytest.mark.parametrize("args, message", [
    ((0, 1, 0), r"arange: step must not be 0 \(start=0, stop=1\)"),
    ((0, float("nan")), "arange: stop must be finite, got nan"),
    ((float("-inf"), 1), "arange: start must be finite, got -inf"),
])
def test_arange_names_its_bad_arguments(args, message):
    with pytest.raises(ValueError, match=message):
        gf.arange(*args)


def test_arange_of_numpy_ints_is_int64():
    assert gf.arange(np.int64(3)).dtype == gf.int64
    with pytest.raises(TypeError, match="arange: stop must be a number, got 'a'"):
        gf.arange(0, "a")


@pytest.mark.parametrize("inputs", [None, [], 3, [gf.ones(1), "x"]])
def test_grad_with_inputs_that_are_not_tensors_says_so(inputs):
    x = gf.ones(2, requires_grad=True)
    with pytest.raises(TypeError, match="grad: inputs must be a Tensor or a non-empty sequence"):
        gf.grad((x * 2).sum(), inputs)
    with pytest.raises(TypeError, match="grad: outputs must be"):
        gf.grad(None, x)


def test_item_assignment_writes_in_place_and_bumps_the_version(device):
    x = gf.zeros(4, device=device)
    x[0] = 5.0
    x[1:3] = gf.tensor([1.0, 2.0], device=device)
    x[x > 4] = -1.0
    assert x.tolist() == [-1.0, 1.0, 2.0, 0.0] and x._version == 3
    i = gf.zeros(2, dtype=gf.int64, device=device)
    i[0] = 5.7  # cast to the tensor's dtype, as NumPy and PyTorch do
    assert i.tolist() == [5, 0]


def test_item_assignment_makes_a_graph_that_saved_the_tensor_refuse_backward(device):
    a = gf.ones(2, device=device, requires_grad=True)
    b = gf.ones(2, device=device)
    y = a * b
    b[0] = 3.0
    with pytest.raises(gf.BackwardError, match="modified in place"):
        y.sum().backward()


def test_item_assignment_on_a_tensor_that_requires_grad_says_what_to_do(device):
    w = gf.ones(3, device=device, requires_grad=True)
    with pytest.raises(RuntimeError, match=r"requires grad .*gf.where\(mask, value, x\).*no_grad"):
        w[0] = 2.0
    with gf.no_grad():  # initialising a parameter
        w[0] = 2.0
    assert w.tolist() == [2.0, 1.0, 1.0]


def test_item_assignment_names_shapes_and_devices(device):
    x = gf.zeros(3, device=device)
    with pytest.raises(ValueError, match=r"a value of shape \(2,\), for a tensor of shape \(3,\)"):
        x[:] = gf.ones(2, device=device)
    with pytest.raises(IndexError, match=r"tensor of shape \(3,\)"):
        x[7] = 1.0
    with pytest.raises(ValueError, match="broadcast view"):
        gf.ones(1, device=device).expand(3)[0] = 2.0


def test_a_non_leaf_tensor_pickles_as_a_leaf_with_its_values(device):
    y = gf.tensor([1.0, 2.0], device=device, requires_grad=True) * 3.0
    y.name = "y"
    back = pickle.loads(pickle.dumps(y))
    assert back.tolist() == [3.0, 6.0] and back.device is device
    assert back.requires_grad and back.grad_fn is None and back.name == "y"
    assert not pickle.loads(pickle.dumps(gf.tensor([1, 2]))).requires_grad


# --- no warnings where inf or nan is the result -------------------------------------------------
@pytest.mark.parametrize("op, expected", [
    (lambda x: gf.log(x), [-np.inf, np.nan, 0.0]),
    (lambda x: gf.sqrt(x), [0.0, np.nan, 1.0]),
    (lambda x: 1.0 / x, [np.inf, -1.0, 1.0]),
    (lambda x: x / x, [np.nan, 1.0, 1.0]),
    (lambda x: x ** -1.0, [np.inf, -1.0, 1.0]),
    (lambda x: x ** 0.5, [0.0, np.nan, 1.0]),
    (lambda x: gf.exp(x * 1000.0), [1.0, 0.0, np.inf]),
])
def test_inf_and_nan_results_come_without_numpy_warnings(op, expected):
    x = gf.tensor([0.0, -1.0, 1.0], requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any RuntimeWarning fails the test
        y = op(x)
        y.sum().backward()  # the rules' inf and nan (d log x at 0 = inf) too
    np.testing.assert_array_equal(y.numpy(), np.array(expected, dtype=np.float32))


@pytest.mark.parametrize("op", [
    lambda x: gf.logsumexp(x * 0.0 - np.inf, axis=0),          # an all -inf slice: -inf
    lambda x: gf.softmax(x * 0.0 - np.inf, axis=0).sum(),     # nan, as in PyTorch
    lambda x: gf.log_softmax(x * 0.0 - np.inf, axis=0).sum(),
    lambda x: gf.std(x * 0.0),                                 # its gradient at variance 0
    lambda x: gf.exp(x * 100.0).sum() * 1e30,                  # an overflowing gradient
])
def test_documented_inf_and_nan_of_reductions_and_gradients_come_without_warnings(op):
    x = gf.tensor([0.0, -1.0, 1.0], requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        op(x).backward()


def test_importing_gradflow_leaves_numpy_error_settings_alone():
    np_state = np.geterr()
    gf.log(gf.tensor([0.0]))
    assert np.geterr() == np_state
    with pytest.warns(RuntimeWarning):
        np.log(np.zeros(1))


@pytest.mark.parametrize("make, error, message", [
    (lambda: gf.tensor([[1.0], [1.0, 2.0]]), ValueError, "nested lists have different lengths"),
    (lambda: gf.randint(5, 2, (3,)), ValueError, "randint: needs ints low < high, got low=5"),
    (lambda: gf.eye(-1), ValueError, r"eye: shape must be non-negative ints, got \(-1,\)"),
    (lambda: gf.full((2,), "a"), TypeError, "full: the fill value must be a number, got 'a'"),
])
def test_creation_functions_name_their_bad_arguments(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_saving_onto_a_directory_names_it_before_writing(tmp_path):
    with pytest.raises(IsADirectoryError, match=f"cannot write {tmp_path}: it is a directory"):
        gf.save({"x": gf.ones(2)}, tmp_path)
    assert list(tmp_path.iterdir()) == []  # no temporary file left behind

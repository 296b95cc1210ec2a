"""The CUDA optimizer kernels, checked without a GPU: their source is run by a small interpreter.

gradflow/backend/fused_cupy.py builds `cupy.ElementwiseKernel`s. Here a stand-in `cupy` module
records each kernel's parameters and body, and calling the kernel evaluates the body with NumPy
(C ternaries become np.where). This checks the kernels' math and the Python glue around them
(argument order, scalar values) against the CPU implementation on every machine; on a machine
with a GPU the optimizer tests run the real kernels too.
"""
import contextlib
import importlib.util
import pathlib
import re
import sys
import types

import numpy as np
import pytest

from gradflow.backend import fused_numpy

SOURCE = pathlib.Path(__file__).resolve().parents[2] / "gradflow" / "backend" / "fused_cupy.py"


def _split_top(expr, sep):
    depth = 0
    for i, ch in enumerate(expr):
        depth += ch == "("
        depth -= ch == ")"
        if depth == 0 and expr.startswith(sep, i):
            return expr[:i], expr[i + len(sep):]
    return None


def _to_python(expr):
    """A C expression of the kernels (arithmetic, sqrt, T(...) casts, comparisons, ?:) as Python."""
    expr = expr.strip()
    while True:  # parenthesised groups first, innermost out
        m = re.search(r"\(([^()]*)\)", expr)
        if not m:
            break
        inner = _to_python(m.group(1))
        expr = expr[:m.start()] + "\x00" + inner.replace("(", "\x01").replace(")", "\x02") + \
            "\x03" + expr[m.end():]
    parts = _split_top(expr, "?")
    if parts:
        cond, rest = parts
        then, other = _split_top(rest, ":")
        expr = f"np.where({_to_python(cond)}, {_to_python(then)}, {_to_python(other)})"
    return expr.replace("\x00", "(").replace("\x03", ")").replace("\x01", "(").replace("\x02", ")")


class _Kernel:
    def __init__(self, in_params, out_params, body, name):
        self.ins = [p.split()[-1] for p in in_params.split(",")]
        self.outs = [p.split()[-1] for p in out_params.split(",")]
        self.body = body

    def __call__(self, *args):
        assert len(args) == len(self.ins) + len(self.outs), "wrong number of kernel arguments"
        arrays = [a for a in args if isinstance(a, np.ndarray)]
        dtype = arrays[0].dtype  # T: the type of the array arguments
        env = {"np": np, "sqrt": np.sqrt, "T": dtype.type}  # T(x): the kernels' casts to T
        for name, a in zip(self.ins, args):
            env[name] = a.astype(dtype) if isinstance(a, np.ndarray) else dtype.type(a)
        for name, a in zip(self.outs, args[len(self.ins):]):
            env[name] = np.asarray(a).copy()
        for stmt in filter(None, (s.strip() for s in self.body.split(";"))):
            target, expr = (x.strip() for x in stmt.split("=", 1))
            target = target.split()[-1]  # drop the declared type of "T x = ..."
            env[target] = np.asarray(eval(_to_python(expr), env), dtype=dtype)
        for name, a in zip(self.outs, args[len(self.ins):]):
            a[...] = env[name]


class _Array(np.ndarray):
    # CuPy arrays carry a Device usable as a context manager.
    @property
    def device(self):
        return contextlib.nullcontext()


@pytest.fixture(scope="module")
def fused_cupy():
    fake = types.ModuleType("cupy")
    fake.ElementwiseKernel = _Kernel
    saved = sys.modules.get("cupy")
    sys.modules["cupy"] = fake
    try:
        spec = importlib.util.spec_from_file_location("_fused_cupy_under_test", SOURCE)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        if saved is None:
            del sys.modules["cupy"]
        else:
            sys.modules["cupy"] = saved
    return module


def _arrays(n_state, seed):
    rng = np.random.default_rng(seed)
    p = rng.standard_normal((4, 5)).astype(np.float32)
    g = rng.standard_normal((4, 5)).astype(np.float32)
    state = [np.abs(rng.standard_normal((4, 5))).astype(np.float32) for _ in range(n_state)]
    return p, g, state


def _both(fn_name, n_state, kwargs, fused_cupy, none_at=()):
    p, g, state = _arrays(n_state, seed=len(kwargs))
    cpu = [p.copy(), g.copy()] + [s.copy() for s in state]
    gpu = [a.copy().view(_Array) for a in [p, g] + state]
    for i in none_at:
        cpu[i] = gpu[i] = None
    getattr(fused_numpy, fn_name)(*cpu, **kwargs)
    getattr(fused_cupy, fn_name)(*gpu, **kwargs)
    for i, (a, b) in enumerate(zip(cpu, gpu)):
        if a is not None:
            np.testing.assert_allclose(np.asarray(b), a, rtol=2e-6, atol=1e-7,
                                       err_msg=f"{fn_name} {kwargs}: array {i}")


ADAM = dict(step=3, lr=1e-2, beta1=0.9, beta2=0.99, eps=1e-3, weight_decay=0.0,
            decoupled=False, maximize=False)


@pytest.mark.parametrize("kwargs", [
    {}, dict(weight_decay=0.1), dict(weight_decay=0.1, decoupled=True), dict(maximize=True),
])
@pytest.mark.parametrize("amsgrad", [False, True])
def test_adam_kernel(kwargs, amsgrad, fused_cupy):
    _both("adam_update", 3, {**ADAM, **kwargs}, fused_cupy, none_at=() if amsgrad else (4,))


SGD = dict(first=False, lr=0.1, momentum=0.9, dampening=0.0, nesterov=False, weight_decay=0.0,
           maximize=False)


@pytest.mark.parametrize("kwargs, plain", [
    ({}, False), (dict(first=True), False), (dict(nesterov=True), False),
    (dict(dampening=0.3, weight_decay=0.01), False), (dict(maximize=True), True),
    (dict(weight_decay=0.1), True),
])
def test_sgd_kernel(kwargs, plain, fused_cupy):
    _both("sgd_update", 1, {**SGD, **kwargs}, fused_cupy, none_at=(2,) if plain else ())


RMS = dict(lr=1e-2, alpha=0.9, eps=1e-8, weight_decay=0.0, momentum=0.0, maximize=False)


@pytest.mark.parametrize("centered", [False, True])
@pytest.mark.parametrize("kwargs", [{}, dict(momentum=0.9, weight_decay=0.1), dict(maximize=True)])
def test_rmsprop_kernel(centered, kwargs, fused_cupy):
    kw = {**RMS, **kwargs}
    none_at = tuple(i for i, off in ((3, not centered), (4, not kw["momentum"])) if off)
    p, g, state = _arrays(3, seed=7)
    if centered:  # the centered variance needs square_avg >= grad_avg^2, as in a real run
        state[0] += state[1] ** 2
    cpu = [p.copy(), g.copy()] + [s.copy() for s in state]
    gpu = [a.copy().view(_Array) for a in [p, g] + state]
    for i in none_at:
        cpu[i] = gpu[i] = None
    fused_numpy.rmsprop_update(*cpu, **kw)
    fused_cupy.rmsprop_update(*gpu, **kw)
    for i, (a, b) in enumerate(zip(cpu, gpu)):
        if a is not None:
            np.testing.assert_allclose(np.asarray(b), a, rtol=2e-6, atol=1e-7, err_msg=str(i))


def test_the_interpreter_can_fail(fused_cupy):
    # A kernel whose body is wrong must not pass: swap two arguments of the Adam call.
    k = fused_cupy._kernel(fused_cupy._ADAM_IN, "T param, T exp_avg, T exp_avg_sq",
                           fused_cupy._ADAM_BODY.format(extra="", denom="exp_avg_sq"), "t")
    p, g, (m, v) = _arrays(2, seed=1)
    a = [x.copy() for x in (p, m, v)]
    b = [x.copy() for x in (p, m, v)]
    k(g, 1.0, 0.0, 1.0, 0.9, 0.1, 0.99, 0.01, 1e-2, 1e-3, *a)
    k(g, 1.0, 0.0, 1.0, 0.99, 0.01, 0.9, 0.1, 1e-2, 1e-3, *b)
    assert not np.allclose(a[1], b[1])

"""Gradient test cases for the convolution and pooling ops (gradflow/ops/conv.py).

The geometry is drawn by hypothesis: batch 1 or 2, one or two channels per group, 1 or 2
groups (so depthwise cases occur), non-square kernels from 1x1 to 3x3, strides, dilations,
paddings, and inputs from the kernel's reach (kernel equal to the padded input) up to 5x5.
`_gradcases.py` merges these into its tables.
"""
from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

import gradflow as gf
from gradflow.ops.conv import Conv2dGradInput, Conv2dGradWeight, MaxPool2d, MaxPool2dGrad, Window

F = gf.nn.functional


@st.composite
def window_args(draw, pool=False):
    """kernel, stride, padding, dilation and an input size (h, w) they fit."""
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    reach = [d * (k - 1) + 1 for k, d in zip(kernel, dilation)]
    padding = tuple(draw(st.integers(0, r // 2 if pool else 2)) for r in reach)
    hw = tuple(draw(st.integers(max(1, r - 2 * p), max(1, r - 2 * p) + 2))
               for r, p in zip(reach, padding))
    return {"kernel": kernel, "stride": stride, "padding": padding, "dilation": dilation,
            "hw": hw}


@st.composite
def conv_geometry(draw):
    g = draw(window_args())
    g["n"], g["groups"] = draw(st.integers(1, 2)), draw(st.sampled_from([1, 1, 2]))
    g["c"] = g["groups"] * draw(st.integers(1, 2))
    g["oc"] = g["groups"] * draw(st.integers(1, 2))
    window = Window.make(g["kernel"], g["stride"], g["padding"], g["dilation"], g["hw"], "case")
    g["window"], g["out_hw"] = window, window.output_hw(g["hw"])
    return g


def _conv_kwargs(g):
    return {"stride": g["stride"], "padding": g["padding"], "dilation": g["dilation"],
            "groups": g["groups"]}


def conv2d_case():
    def shapes(g):
        x = (g["n"], g["c"]) + g["hw"]
        w = (g["oc"], g["c"] // g["groups"]) + g["kernel"]
        return (x, w, (g["oc"],)), _conv_kwargs(g)
    return conv_geometry().map(shapes)


def grad_input_case():
    def shapes(g):
        gy = (g["n"], g["oc"]) + g["out_hw"]
        w = (g["oc"], g["c"] // g["groups"]) + g["kernel"]
        return (gy, w), {"window": g["window"], "groups": g["groups"], "input_hw": g["hw"]}
    return conv_geometry().map(shapes)


def grad_weight_case():
    def shapes(g):
        x = (g["n"], g["c"]) + g["hw"]
        gy = (g["n"], g["oc"]) + g["out_hw"]
        return (x, gy), {"window": g["window"], "groups": g["groups"], "kernel": g["kernel"]}
    return conv_geometry().map(shapes)


def _grad_input(gy, w, **kw):
    return Conv2dGradInput(**kw)(gy, w)


def _grad_weight(x, gy, **kw):
    return Conv2dGradWeight(**kw)(x, gy)


@st.composite
def pad_case(draw):
    shape = tuple(draw(st.lists(st.integers(1, 3), min_size=1, max_size=3)))
    widths = []
    for n in reversed(shape[-draw(st.integers(1, len(shape))):]):
        before = draw(st.integers(-min(n - 1, 1), 2))
        widths += [before, draw(st.integers(-(n + min(before, 0) - 1), 2))]
    return (shape,), {"pad": tuple(widths), "value": draw(st.sampled_from([0.0, -1.5]))}


def _every_window_reads_a_pixel(g):
    # A window all padding pools -inf (as in PyTorch), where finite differences are nan.
    for n, k, s, p, d in zip(g["hw"], g["kernel"], g["stride"], g["padding"], g["dilation"]):
        for start in range(-p, n + p - d * (k - 1), s):
            if not any(0 <= start + i * d < n for i in range(k)):
                return False
    return True


@st.composite
def pool_case(draw):
    g = draw(window_args(pool=True).filter(_every_window_reads_a_pixel))
    x = (draw(st.integers(1, 2)), draw(st.integers(1, 2))) + g["hw"]
    return (x,), {"kernel_size": g["kernel"], "stride": g["stride"], "padding": g["padding"],
                  "dilation": g["dilation"]}


def _max_pool(x, **kw):
    return F.max_pool2d(x, **kw)


def max_pool_grad_case():
    def shapes(case):
        (x,), kw = case
        window = Window.make(kw["kernel_size"], kw["stride"], kw["padding"], kw["dilation"],
                             x[2:], "case")
        probe = np.random.default_rng(sum(x)).permutation(int(np.prod(x))).reshape(x) * 1.0
        pool = MaxPool2d(window=window)
        pool.forward(probe)  # finds each window's maximum: the index the gradient follows
        gy = x[:2] + window.output_hw(x[2:])
        return (gy,), {"window": window, "index": pool.index, "input_hw": x[2:]}
    return pool_case().map(shapes)


def _max_pool_grad(gy, window, index, input_hw):
    index = gy.device.backend.asarray(index, index=gy.device.index)
    return MaxPool2dGrad(window=window, index=index, input_hw=input_hw)(gy)


def avg_pool_case():
    def no_dilation(case):
        (x,), kw = case
        return (x,), {k: v for k, v in kw.items() if k != "dilation"}
    return pool_case().filter(lambda c: c[1]["dilation"] == (1, 1)).map(no_dilation).flatmap(
        lambda c: st.booleans().map(lambda inc: (c[0], {**c[1], "count_include_pad": inc})))


def _avg_pool(x, **kw):
    return F.avg_pool2d(x, **kw)


def conv_cases(Case):
    """The Function cases, keyed by class name."""
    return {
        "Conv2d": Case(lambda x, w, b, **kw: F.conv2d(x, w, b, **kw), conv2d_case(),
                       ("any", "any", "any")),
        "Conv2dGradInput": Case(_grad_input, grad_input_case(), ("any", "any")),
        "Conv2dGradWeight": Case(_grad_weight, grad_weight_case(), ("any", "any")),
        "Pad": Case(lambda x, **kw: F.pad(x, **kw), pad_case(), ("any",)),
        "MaxPool2d": Case(_max_pool, pool_case(), ("distinct",)),
        "MaxPool2dGrad": Case(_max_pool_grad, max_pool_grad_case(), ("any",)),
    }


def conv_composites(Case):
    """Composites built from the ops above, checked as wholes."""
    return {"avg_pool2d": Case(_avg_pool, avg_pool_case(), ("any",))}

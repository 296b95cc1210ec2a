"""Memory: a finished graph is freed by reference counting alone, and training does not leak."""
import gc
import sys
import tracemalloc
import weakref

import numpy as np

import gradflow as gf
from gradflow.tensor import Tensor


def _live_tensors():
    return sum(1 for o in gc.get_objects() if type(o) is Tensor)


class _GcDisabled:
    def __enter__(self):
        self.was = gc.isenabled()
        gc.collect()
        gc.disable()

    def __exit__(self, *exc):
        if self.was:
            gc.enable()


def test_a_finished_graph_is_freed_without_the_cyclic_gc(device):
    with _GcDisabled():
        w = gf.randn(20, 10, device=device, requires_grad=True)
        x = gf.randn(8, 20, device=device)
        h = gf.tanh(x @ w)
        y = gf.exp(h) * h
        loss = y.logsumexp(axis=1).mean()
        refs = [weakref.ref(t) for t in (h, y)] + [weakref.ref(h.grad_fn),
                                                   weakref.ref(y.grad_fn)]
        arrays = [weakref.ref(h.data), weakref.ref(y.data)] if device.type == "cpu" else []
        del h, y
        assert all(r() is not None for r in refs)  # the graph keeps them until backward
        loss.backward()
        del loss
        assert all(r() is None for r in refs), "intermediates outlived backward"
        assert all(r() is None for r in arrays), "saved arrays outlived backward"
        assert w.grad is not None and w.grad.grad_fn is None


def test_an_unused_graph_is_freed_without_the_cyclic_gc(device):
    with _GcDisabled():
        w = gf.randn(5, 5, device=device, requires_grad=True)
        h = gf.sigmoid(w @ w)
        ref, fn_ref = weakref.ref(h), weakref.ref(h.grad_fn)
        loss = (h * h).sum()
        del h
        del loss  # never backpropagated: dropping the root drops the whole graph
        assert ref() is None and fn_ref() is None


def test_create_graph_results_are_freed_too(device):
    with _GcDisabled():
        x = gf.randn(4, dtype=gf.float64, device=device, requires_grad=True)
        (g,) = gf.grad((x ** 3).sum(), x, create_graph=True)
        (h,) = gf.grad(g.sum(), x)
        ref = weakref.ref(g.grad_fn)
        del g, h
        assert ref() is None


def test_training_iterations_do_not_grow_tensors_or_memory(device):
    rng = np.random.default_rng(0)
    xs = gf.tensor(rng.standard_normal((64, 16)), dtype=gf.float32, device=device)
    ys = gf.tensor(rng.integers(0, 4, 64), device=device)
    w1 = gf.randn(16, 32, device=device, requires_grad=True)
    b1 = gf.zeros(32, device=device, requires_grad=True)
    w2 = gf.randn(32, 4, device=device, requires_grad=True)
    params = [w1, b1, w2]

    def step():
        h = gf.relu(xs @ w1 + b1)
        logits = h @ w2
        loss = -gf.log_softmax(logits, axis=1)[gf.arange(64, device=device), ys].mean()
        for p in params:
            p.grad = None
        loss.backward()
        with gf.no_grad():
            for p in params:
                p -= 0.01 * p.grad
        return loss.item()

    for _ in range(100):  # warm up: NumPy's caches, Python's free lists, the allocator
        step()
    gc.collect()
    tensors_before = _live_tensors()
    blocks_before = sys.getallocatedblocks()
    tracemalloc.start()
    try:
        losses = [step() for _ in range(900)]  # 1,000 iterations in all
        # A full collection also empties Python's free lists (of tuples, floats, frames), which
        # tracemalloc counts as allocated: what is left is what the steps really kept.
        gc.collect()
        grown, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    del losses[1:-1]
    gc.collect()
    tensors_after = _live_tensors()
    assert tensors_after <= tensors_before, (tensors_before, tensors_after)
    assert sys.getallocatedblocks() - blocks_before < 900, "objects pile up: one per step"
    # Leaking the smallest tensor of a step (a (32,) gradient with its Tensor object) would
    # cost > 300 bytes a step, 270 KB in all.
    assert grown < 200 * 1024, f"{grown} bytes still allocated after 900 steps"
    assert losses[-1] < losses[0]  # and it trained
    assert gc.garbage == []

"""The tape: `Function` (one recorded op), grad mode, and the engine that walks the graph backward.

How a gradient travels, in four steps a reader can follow in this file:
1. Each op is a `Function`. Calling it computes the output array with `forward` and, when some
   input requires a gradient, records itself as the output's `grad_fn`, keeping its inputs.
2. `loss.backward()` counts, for every recorded function reachable from the loss, how many
   consumers will send it a gradient (the edges of the graph).
3. It then visits functions in reverse topological order (Kahn's algorithm: a function is ready
   once all its consumers have reported) and calls each `backward(gy)`, the chain rule for that op.
4. Gradients that reach the same tensor by several paths are added (fan-out is `+`); at a leaf
   they accumulate into `.grad`.
No recursion anywhere, so a chain of 100,000 ops works.
"""
from __future__ import annotations

import contextlib
import threading
import functools
import weakref

__all__ = [
    "Function", "no_grad", "enable_grad", "set_grad_enabled", "is_grad_enabled", "backward",
    "grad", "BackwardError",
]


class BackwardError(RuntimeError):
    """Backward cannot run: a freed graph, a tensor modified in place, a wrong gradient shape."""


class _GradMode(threading.local):
    # Read on every op. Per thread, as in PyTorch: a thread inside no_grad() (a data loader,
    # an evaluation thread) must not turn recording off for the thread that trains.
    enabled = True


_Mode = _GradMode()


def is_grad_enabled() -> bool:
    """True when new ops are recorded on the tape."""
    return _Mode.enabled


class set_grad_enabled(contextlib.ContextDecorator):
    """Turn recording on or off inside a `with` block or a decorated function."""

    def __init__(self, mode: bool) -> None:
        self.mode = bool(mode)
        self.prev = []

    def __enter__(self):
        self.prev.append(_Mode.enabled)
        _Mode.enabled = self.mode
        return self

    def __exit__(self, *exc):
        _Mode.enabled = self.prev.pop()
        return False


class no_grad(set_grad_enabled):
    """Context manager and decorator: ops inside record nothing (inference, optimizer steps).

    Example:
        >>> with gf.no_grad():
        ...     y = model(x)          # y.requires_grad is False
        >>> @gf.no_grad                # or @gf.no_grad()
        ... def predict(x):
        ...     return model(x).argmax(axis=1)
    """

    def __new__(cls, func=None):
        self = super().__new__(cls)
        if func is None:
            return self
        if not callable(func):
            raise TypeError(f"no_grad takes no arguments, or decorates a function; got "
                            f"{type(func).__name__}")
        self.__init__()
        return self(func)  # @gf.no_grad without parentheses: the decorated function

    def __init__(self, func=None) -> None:
        super().__init__(False)


class enable_grad(set_grad_enabled):
    """Context manager and decorator: record ops even inside a `no_grad` block."""

    def __init__(self) -> None:
        super().__init__(True)


class Function:
    """One op on the tape: `forward` on raw arrays, `backward` in differentiable gradflow ops.

    Subclasses implement:
        forward(self, *xs) -> array          computes with the inputs' arrays (xs may hold Python
                                             scalars where the op was given one)
        backward(self, gy) -> tuple          one gradient Tensor (or None) per input, written with
                                             gradflow ops so that gradients of gradients work
    Optionally:
        backward_arrays(self, gy) -> tuple   the same rule on raw arrays (gy and the results are
                                             arrays), or None to fall back to `backward`. A plain
                                             backward (no create_graph) records nothing, so it
                                             calls this when present: a rule of three ops then
                                             costs three array operations, not three recorded
                                             ops. gradcheck goes through it, gradgradcheck
                                             through `backward`, so both stay tested.
    Class attributes:
        saves_inputs / saves_output          whether backward reads the inputs' / output's values;
                                             such tensors are guarded against in-place changes.

    A Function keeps its inputs strongly (backward needs them) and its output weakly (the output
    holds the Function as its grad_fn: a strong link back would make a reference cycle).
    """

    __slots__ = ("inputs", "_output", "_versions", "_y", "__dict__")
    registry: dict[str, type] = {}
    saves_inputs = True
    saves_output = False
    backward_arrays = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        Function.registry[cls.__name__] = cls

    def forward(self, *xs):
        raise NotImplementedError(f"{type(self).__name__}.forward")

    def backward(self, gy):
        raise NotImplementedError(f"{type(self).__name__}.backward")

    @property
    def name(self) -> str:
        """The op's name, as shown in errors, reprs and graph pictures."""
        return type(self).__name__

    @property
    def output(self):
        """The output Tensor, or None once it has been garbage-collected."""
        ref = self._output
        return ref() if ref is not None else None

    def __call__(self, *inputs):
        """Run the op on Tensors (and Python scalars) and record it when a gradient is needed."""
        # The hot path of every op: one- and two-input calls (nearly all of them) are unrolled,
        # because a loop, a list of arrays and a generator cost more than the op itself on
        # small arrays. Any other arity takes the general loop in `_call_any`.
        n = len(inputs)
        if n == 2:
            a, b = inputs
            if isinstance(a, Tensor):
                dev = a.device
                if isinstance(b, Tensor):
                    if b.device is not dev:
                        raise _device_mismatch(self, inputs)
                    if a.data.dtype is not b.data.dtype:
                        a, b = inputs = _promote(a, b)
                    record = a._rg or b._rg
                    args = (a.data, b.data)
                else:
                    if b.__class__ is not float and b.__class__ is not int:
                        b = _python_scalar(b)
                        inputs = (a, b)
                    record = a._rg
                    args = (a.data, b)
            elif isinstance(b, Tensor):
                if a.__class__ is not float and a.__class__ is not int:
                    a = _python_scalar(a)
                    inputs = (a, b)
                dev = b.device
                record = b._rg
                args = (a, b.data)
            else:
                return self._call_any(inputs)
        elif n == 1:
            a = inputs[0]
            if not isinstance(a, Tensor):
                return self._call_any(inputs)
            dev = a.device
            record = a._rg
            args = (a.data,)
        else:
            return self._call_any(inputs)
        # On the inputs' own GPU, whichever is current (on the CPU this enters a no-op context).
        with dev.backend.use(dev.index):
            try:  # costs nothing until something is raised
                y = self.forward(*args)
            except ValueError as exc:  # NumPy's broadcast error names no op
                raise ValueError(f"{self.name}: {exc}") from None
        if y.__class__ is not dev.backend.ndarray:
            # 0-d results come back as NumPy scalars: keep arrays
            y = dev.backend.asarray(y, index=dev.index)
        if record and _Mode.enabled and y.dtype.kind == "f":
            out = _make(y, dev, True, self)
            self.inputs = inputs
            self._output = weakref.ref(out)
            if self.saves_inputs:
                if n == 2:
                    self._versions = (a._vc[0] if isinstance(a, Tensor) else 0,
                                      b._vc[0] if isinstance(b, Tensor) else 0)
                else:
                    self._versions = (a._vc[0],)
            if self.saves_output:
                self._y = y
        else:
            out = _make(y, dev, False, None)
        if y.base is not None:  # a view (reshape, indexing, ...): maybe of an input's array
            _share_version(out, y.base, inputs)
        return out

    def _call_any(self, inputs):
        # `__call__` for any number of inputs.
        first = None
        arrays = []
        record = False
        for t in inputs:
            if isinstance(t, Tensor):
                if first is None:
                    first = t
                elif t.device is not first.device:
                    raise _device_mismatch(self, inputs)
                record = record or t._rg
                arrays.append(t.data)
            else:
                arrays.append(t)
        if first is None:
            raise TypeError(f"{self.name} needs at least one Tensor input, got "
                            f"{', '.join(type(t).__name__ for t in inputs) or 'no inputs'}")
        dev = first.device
        with dev.backend.use(dev.index):
            y = self.forward(*arrays)
        if y.__class__ is not dev.backend.ndarray:
            y = dev.backend.asarray(y, index=dev.index)
        if record and _Mode.enabled and y.dtype.kind == "f":
            out = _make(y, dev, True, self)
            self.inputs = inputs
            self._output = weakref.ref(out)
            if self.saves_inputs:
                self._versions = tuple(t._vc[0] if isinstance(t, Tensor) else 0
                                       for t in inputs)
            if self.saves_output:
                self._y = y
        else:
            out = _make(y, dev, False, None)
        if y.base is not None:
            _share_version(out, y.base, inputs)
        return out

    def saved_output(self):
        """The output, for rules written in terms of it (d exp(x) = y).

        While the output Tensor lives it is returned itself, so that a recorded backward
        (create_graph) stays connected; once it is gone no recording can need it, and a constant
        Tensor over the saved array does.
        """
        out = self._output()
        if out is None:
            y = self._y
            out = Tensor._make(y, self.inputs[0].device if isinstance(self.inputs[0], Tensor)
                               else self.inputs[-1].device, False, None)
        return out

    def _check_versions(self) -> None:
        if self.saves_inputs:
            for t, v in zip(self.inputs, self._versions):
                if isinstance(t, Tensor) and t._vc[0] != v:
                    raise BackwardError(
                        f"an input of {self.name} (shape {t.shape}) was modified in place after "
                        f"{self.name} saved it for backward (version {v} -> {t._version}); "
                        "use an out-of-place op (x = x + y instead of x += y), or call backward first"
                    )
        if self.saves_output:
            out = self.output
            if out is not None and out._version != 0:
                raise BackwardError(
                    f"the output of {self.name} (shape {out.shape}) was modified in place after "
                    f"{self.name} saved it for backward; use an out-of-place op instead"
                )

    def _release(self) -> None:
        """Drop what backward needed; the graph above this function is cut here."""
        self.inputs = None
        self._y = None
        self.__dict__.clear()


def _device_mismatch(fn, inputs):
    from .backend import DeviceError
    devs = ", ".join(f"{t.device} (shape {t.shape})" for t in inputs if isinstance(t, Tensor))
    return DeviceError(f"{fn.name} got tensors on different devices: {devs}; "
                       "move them to one device with .to(device) first")


def _freed_error(fn):
    return BackwardError(
        f"trying to backward through {fn.name} a second time: its saved values were freed by the "
        "first backward; pass retain_graph=True to the first backward (or gf.grad) to keep them"
    )


def _collect(roots):
    """Count, for every function reachable from `roots`, how many edges point at it."""
    deps: dict = {}
    stack = []
    for fn in roots:
        if fn is not None and fn not in deps:
            deps[fn] = 0
            stack.append(fn)
    while stack:
        fn = stack.pop()
        if fn.inputs is None:
            raise _freed_error(fn)
        for x in fn.inputs:
            if isinstance(x, Tensor) and x._rg:
                prev = x.grad_fn
                if prev is not None:
                    if prev in deps:
                        deps[prev] += 1
                    else:
                        deps[prev] = 1
                        stack.append(prev)
    return deps


def _promote(a, b):
    # PyTorch's rule where NumPy's differs: a float tensor with an integer or bool one keeps
    # the float dtype (NumPy would make int64 with float32 float64). The integer side is cast
    # before the op sees it, so the op's rule and its saved inputs agree on one dtype.
    ka, kb = a.data.dtype.kind, b.data.dtype.kind
    if ka == "f" and kb in "iub":
        return a, _make(b.data.astype(a.data.dtype), b.device, False, None)
    if kb == "f" and ka in "iub":
        return _make(a.data.astype(b.data.dtype), a.device, False, None), b
    return a, b


def _python_scalar(v):
    # A NumPy scalar (np.float64(2.0), np.sqrt(2.0)) or 0-d array as a Python number, which
    # NumPy treats as "weak": float32 * np.float64(2) stays float32, as in PyTorch.
    if not isinstance(v, bool) and getattr(v, "ndim", None) == 0 and hasattr(v, "item"):
        return v.item()
    return v


def _share_version(out, base, inputs):
    # An output that views an input's memory shares the input's version counter: an in-place
    # change through the view is a change of the input, for every graph that saved it, and the
    # other way round. (NumPy and CuPy point .base at the array that owns the memory.)
    for t in inputs:
        if isinstance(t, Tensor):
            d = t.data
            if d is base or d.base is base:
                out._vc = t._vc
                return


def _run_hooks(t, g):
    for hook in t._hooks.values():
        r = hook(g)
        if r is not None:
            g = r
    return g


def _accumulate_leaf(x, gx, captured, exposed=None):
    if x._hooks:
        gx = _run_hooks(x, gx)
        exposed = None  # a hook may keep the gradient it was shown
    if captured is not None:
        key = id(x)
        if key in captured:
            prev = captured[key][1]
            captured[key] = (x, gx if prev is None else prev + gx)
        return
    if x.grad is None:
        # The leaf gets an array of its own: a gradient can be a read-only broadcast view, or
        # one tensor sent to several leaves (a + b gives both the same one), and an in-place
        # change of one .grad (clipping, weight decay) must not reach another. A fresh array
        # that nothing else has seen (`exposed` holds the ids of those handed out or given by
        # the caller) is taken as it is: copying every weight gradient would cost a full pass
        # over the parameters per step.
        if not gx._rg:
            d = gx.data
            if exposed is None or d.base is not None or id(d) in exposed:
                dev = gx.device
                with dev.backend.use(dev.index):
                    gx = Tensor._make(d.copy(), dev, False, None)
            else:
                exposed.add(id(d))
        x.grad = gx
    else:
        x.grad = x.grad + gx


def _check_grad(fn, x, gx):
    if gx.shape != x.shape or gx.dtype != x.dtype:
        raise BackwardError(
            f"{fn.name}.backward returned a gradient of shape {gx.shape} and dtype {gx.dtype} for "
            f"an input of shape {x.shape} and dtype {x.dtype}: the gradient rule is wrong"
        )


def _engine(roots, root_grads, retain_graph, create_graph, captured=None):
    """Propagate `root_grads` from `roots` back to the leaves (or into `captured`)."""
    with set_grad_enabled(create_graph):
        pending: dict = {}
        leaf_roots = []
        for t, g in zip(roots, root_grads):
            if t.grad_fn is None:
                leaf_roots.append((t, g))
            else:
                fn = t.grad_fn
                pending[fn] = g if fn not in pending else pending[fn] + g
        deps = _collect(list(pending))
        # Leaf gradients are summed here first and stored at the end: a leaf's hooks then see
        # its whole gradient once, as for non-leaf tensors, whatever the number of paths.
        leaves: dict = {}
        exposed = {id(g.data) for g in root_grads}  # the caller keeps these
        for t, g in leaf_roots:
            _gather(leaves, t, g)
        ready = [fn for fn in pending if deps[fn] == 0]
        arrays_ok = not create_graph  # nothing is recorded: rules may work on raw arrays
        while ready:
            fn = ready.pop()
            gy = pending.pop(fn)
            ref = fn._output
            out = ref() if ref is not None else None
            if out is not None and (out._hooks or out._retains_grad or captured is not None):
                gy = _visit_output(out, gy, captured, exposed)
            inputs = fn.inputs
            if inputs is None:
                raise _freed_error(fn)
            if fn.saves_inputs or fn.saves_output:
                fn._check_versions()
            gdev = gy.device
            with gdev.backend.use(gdev.index):  # rules on raw arrays run on gy's own GPU
                raw = False
                if arrays_ok and fn.backward_arrays is not None:
                    gxs = fn.backward_arrays(gy.data)
                    raw = gxs is not None
                if not raw:
                    gxs = fn.backward(gy)
            for x, gx in zip(inputs, gxs):
                if gx is None or not isinstance(x, Tensor) or not x._rg:
                    continue
                if raw:
                    gx = _wrap_array(gx, gy.device)
                gd = gx.data
                xd = x.data
                if gd.shape != xd.shape or (gd.dtype is not xd.dtype and gd.dtype != xd.dtype):
                    _check_grad(fn, x, gx)
                prev = x.grad_fn
                if prev is None:
                    _gather(leaves, x, gx)
                    continue
                if prev in pending:
                    pending[prev] = pending[prev] + gx
                else:
                    pending[prev] = gx
                left = deps[prev] - 1
                deps[prev] = left
                if left == 0:
                    ready.append(prev)
            if not retain_graph:
                fn._release()
        for x, gx in leaves.values():
            _accumulate_leaf(x, gx, captured, exposed)


def _wrap_array(g, dev):
    # An array from `backward_arrays` as a constant Tensor; a 0-d result can come back from
    # NumPy as a scalar, which is turned into an array as `Function.__call__` does.
    if g.__class__ is not dev.backend.ndarray:
        g = dev.backend.asarray(g, index=dev.index)
    return _make(g, dev, False, None)


def _gather(leaves, x, gx):
    k = id(x)
    prev = leaves.get(k)
    leaves[k] = (x, gx) if prev is None else (x, prev[1] + gx)


def _visit_output(out, gy, captured, exposed):
    # A gradient reaching a non-leaf tensor: its hooks, retain_grad() and gf.grad's capture.
    # What hooks saw and what .grad keeps is marked exposed, so that no leaf shares it.
    if out._hooks:
        exposed.add(id(gy.data))
        gy = _run_hooks(out, gy)
        exposed.add(id(gy.data))
    if out._retains_grad:
        out.grad = gy if out.grad is None else out.grad + gy
        exposed.add(id(out.grad.data))
    if captured is not None and id(out) in captured:
        captured[id(out)] = (out, gy)
    return gy


def _as_grad(t, g, name):
    if g is None:
        if t.data.size != 1:
            raise BackwardError(
                f"{name} of a non-scalar tensor (shape {t.shape}) needs an explicit gradient: "
                "pass a tensor of the same shape, e.g. y.backward(gf.ones_like(y))"
            )
        dev = t.device
        with dev.backend.use(dev.index):
            ones = dev.xp.empty(t.data.shape, dtype=t.data.dtype)
            ones.fill(1)  # empty + fill: a third of ones_like's cost, on every backward()
        return Tensor._make(ones, dev, False, None)
    if not isinstance(g, Tensor):
        g = Tensor._make(t.device.backend.asarray(g, dtype=t.dtype, index=t.device.index),
                         t.device, False, None)
    if g.shape != t.shape:
        raise BackwardError(f"{name}: gradient of shape {g.shape} given for a tensor of "
                            f"shape {t.shape}")
    if g.dtype != t.dtype:
        raise BackwardError(f"{name}: gradient of dtype {g.dtype} given for a tensor of "
                            f"dtype {t.dtype}; convert it with .astype({t.dtype})")
    if g.device is not t.device:
        raise BackwardError(f"{name}: gradient on {g.device} given for a tensor on {t.device}")
    return g


def backward(tensor, gradient=None, retain_graph=False, create_graph=False) -> None:
    """Accumulate d tensor / d leaf into every leaf's `.grad` (see `Tensor.backward`)."""
    if not tensor.requires_grad:
        raise BackwardError(
            f"backward on a tensor that does not require grad (shape {tensor.shape}): no input "
            "of the ops that made it had requires_grad=True, or it was made under no_grad()"
        )
    g = _as_grad(tensor, gradient, "backward")
    _engine([tensor], [g], retain_graph or create_graph, create_graph)


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False,
         allow_unused=False):
    """Return d outputs / d inputs without touching any `.grad`.

    Args:
        outputs: a Tensor or a sequence of Tensors to differentiate.
        inputs: a Tensor or a sequence of Tensors (leaves or intermediates) to differentiate by.
        grad_outputs: upstream gradients, one per output (None: ones, for scalar outputs only).
        retain_graph: keep the graph for another backward (default: create_graph).
        create_graph: record the backward pass itself, so the returned gradients can be
            differentiated again (second derivatives, Hessian-vector products).
        allow_unused: return None for an input the outputs do not depend on (else an error).

    Returns:
        A tuple with one gradient Tensor (or None) per input.

    Example:
        >>> x = gf.tensor(2.0, requires_grad=True)
        >>> (g,) = gf.grad(x ** 3, x, create_graph=True)   # 3x^2 = 12
        >>> (h,) = gf.grad(g, x)                           # 6x = 12
    """
    outputs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
    single = isinstance(inputs, Tensor)
    inputs = [inputs] if single else list(inputs)
    if grad_outputs is None:
        grad_outputs = [None] * len(outputs)
    elif isinstance(grad_outputs, Tensor):
        grad_outputs = [grad_outputs]
    if len(grad_outputs) != len(outputs):
        raise ValueError(f"grad: {len(grad_outputs)} grad_outputs for {len(outputs)} outputs")
    for i, x in enumerate(inputs):
        if not isinstance(x, Tensor) or not x.requires_grad:
            raise BackwardError(f"grad: input {i} does not require grad, so it has no gradient")
    roots, gs = [], []
    for o, g in zip(outputs, grad_outputs):
        if not o.requires_grad:
            continue
        roots.append(o)
        gs.append(_as_grad(o, g, "grad"))
    # The recorded backward refers to the forward graph's tensors, so create_graph keeps it.
    retain_graph = bool(retain_graph) or create_graph
    captured = {id(x): (x, None) for x in inputs}
    if roots:
        _engine(roots, gs, retain_graph, create_graph, captured)
    result = []
    for i, x in enumerate(inputs):
        g = captured[id(x)][1]
        if g is None and not allow_unused:
            raise BackwardError(
                f"grad: input {i} (shape {x.shape}) was not used to compute the outputs; "
                "pass allow_unused=True to get None for it"
            )
        result.append(g)
    return tuple(result)


from .tensor import Tensor  # noqa: E402  (tensor.py imports this module's Function first)

_make = Tensor._make

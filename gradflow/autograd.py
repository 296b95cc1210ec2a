"""The tape: `Function` (one recorded op), grad mode, and the engine that walks the graph backward.

How a gradient travels, in four steps a reader can follow in this file:
1. Each op is a `Function`. Calling it computes the output array with `forward` and, when some
   input requires a gradient, records itself as the output's `grad_fn`, keeping its inputs.
2. `loss.backward()` counts, for every recorded function reachable from the loss, how many
   consumers will send it a gradient (the edges of the graph).
3. It then visits functions in reverse topological order (Kahn's algorithm: a function is ready
   once all its consumers have reported) and calls each `backward`, the chain rule for that op.
4. Gradients that reach the same tensor by several paths are added (fan-out is `+`); at a leaf
   they accumulate into `.grad`.
No recursion anywhere, so a chain of 100,000 ops works.

Each op has one gradient rule, written with operators and gradflow functions that accept raw
arrays as well as Tensors (HIPS autograd's way). A plain backward hands the rules raw arrays, so
they compute at array speed and record nothing; `create_graph=True` hands them Tensors, so the
same rules are recorded and can be differentiated again.
"""
from __future__ import annotations

import contextlib
import threading
import weakref

from . import backend as B

__all__ = [
    "Function", "no_grad", "enable_grad", "set_grad_enabled", "is_grad_enabled", "backward",
    "grad", "BackwardError", "queue_callback", "detect_anomaly", "set_detect_anomaly",
    "is_anomaly_enabled", "AnomalyError",
]


class BackwardError(RuntimeError):
    """Backward cannot run: a freed graph, a tensor modified in place, a wrong gradient shape."""


class _GradMode(threading.local):
    # Read on every op. Per thread, as in PyTorch: a thread inside no_grad() (a data loader,
    # an evaluation thread) must not turn recording off for the thread that trains.
    enabled = True
    callbacks = None  # during a backward: what queue_callback asked to run at its end


_grad_mode = _GradMode()
_anomaly = None  # anomaly mode's checks while it is on (gradflow.anomaly), else None
_NUMBERS = (float, int, bool)  # operands that need no promotion rule (promotion.py)


def is_grad_enabled() -> bool:
    """True when new ops are recorded on the tape."""
    return _grad_mode.enabled


class set_grad_enabled(contextlib.ContextDecorator):
    """Turn recording on or off inside a `with` block or a decorated function."""

    def __init__(self, mode: bool) -> None:
        self.mode = bool(mode)
        self.prev = []

    def __enter__(self):
        self.prev.append(_grad_mode.enabled)
        _grad_mode.enabled = self.mode
        return self

    def __exit__(self, *exc):
        _grad_mode.enabled = self.prev.pop()
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
    """One op on the tape: `forward` on raw arrays, one `backward` rule for every use.

    A subclass implements `forward(self, *xs)`, computing the output array from the inputs'
    arrays (an input may be a Python number), and `backward(self, gy, y, *xs)`, its gradient
    rule: gy is the gradient of the output y (y is None unless `saves_output`), xs the inputs,
    and it returns one gradient (or None) per input, or the gradient itself for one input. In a
    plain backward they are all raw arrays; under create_graph, Tensors. So a rule is written
    with operators, methods arrays and Tensors share (sum, reshape, T) and gradflow functions
    (exp, where, sum_to), and serves both. `needs_input_grad[i]` says whether input i needs its
    gradient (skip the others' work). Rarely, `fused_backward` is the same rule hand-fused on
    arrays, which a plain backward takes instead: only where it pays measurably, tested against
    `backward`, its docstring saying what it saves. `saves_inputs` / `saves_output` say whether
    backward reads those values; they are then guarded against in-place changes. Parameters
    (axes, shapes, masks) are keyword arguments: `Sum(axes=(0,), keepdims=False)` has
    `self.axes` and `self.keepdims`.

    A Function keeps its inputs strongly (backward needs them) and its output weakly (the output
    holds the Function as its grad_fn: a strong link back would make a reference cycle).
    """

    __slots__ = ("inputs", "needs_input_grad", "saved_versions", "saved_y", "output_ref",
                 "output_device", "__dict__")
    registry: dict[str, type] = {}
    saves_inputs = True
    saves_output = False
    fused_backward = None
    device = None  # where the output goes: the inputs' device, unless the op moves it

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        Function.registry[cls.__name__] = cls

    def __init__(self, **params) -> None:
        if params:  # most ops have none: then no attribute dict is made at all
            self.__dict__.update(params)

    def forward(self, *xs):
        raise NotImplementedError(f"{type(self).__name__}.forward")

    def backward(self, gy, y, *xs):
        raise NotImplementedError(f"{type(self).__name__}.backward")

    @property
    def name(self) -> str:
        """The op's name, as shown in errors, reprs and graph pictures."""
        return type(self).__name__

    @property
    def output(self):
        """The output Tensor, or None once it has been garbage-collected."""
        return self.output_ref()

    def __call__(self, *inputs):
        """Run the op on Tensors, raw arrays and Python numbers.

        With no Tensor among the inputs (a gradient rule in a plain backward) it returns the
        raw result of `forward`. Otherwise it returns a Tensor on the inputs' device, recorded
        with this Function as its grad_fn when some input requires a gradient.
        """
        device, record, arrays, mixed = None, False, [], False
        for x in inputs:
            if isinstance(x, Tensor):
                if device is None:
                    device, dtype = x.device, x.data.dtype
                elif x.device is not device:
                    raise _device_mismatch(self, inputs)
                elif x.data.dtype is not dtype:
                    mixed = True
                record = record or x._requires_grad
                arrays.append(x.data)
            else:
                mixed = mixed or x.__class__ not in _NUMBERS
                arrays.append(x)
        if device is None:  # no Tensor: a gradient rule computing on raw arrays
            return self.forward(*inputs)
        with device.backend.use(device.index):  # on the inputs' own GPU, whichever is current
            if (mixed or dtype.kind != "f") and len(inputs) == 2:  # PyTorch's dtype rules
                promoted = _promoted(*inputs)
                if promoted is not None:
                    return self(*promoted)
            try:
                y = self.forward(*arrays)
            except ValueError as exc:  # NumPy's broadcast error names no op
                raise ValueError(f"{self.name}: {exc}") from None
        device = self.device or device
        if y.__class__ is not device.backend.ndarray:  # NumPy gives scalars for 0-d results
            y = device.backend.asarray(y, index=device.index)
        if _anomaly is not None:  # records where this op was called from; checks y
            _anomaly.forward(self, y, device)
        if record and _grad_mode.enabled and y.dtype.kind == "f":
            out = Tensor._make(y, device, True, self)
            self._record(inputs, out, y)
        else:
            out = Tensor._make(y, device)
        if y.base is not None:  # a view (reshape, indexing, ...): maybe of an input's array
            _share_version(out, y.base, inputs)
        return out

    def _record(self, inputs, out, y) -> None:
        # What backward will need: the inputs, their versions, and the output. As little as
        # that: every object kept here is one more for the garbage collector to look at, and
        # a graph holds thousands.
        self.inputs = inputs
        if self.saves_inputs:
            versions = []
            for x in inputs:
                versions.append(x._version_counter[0] if isinstance(x, Tensor) else 0)
            self.saved_versions = tuple(versions)
        self.output_device = out.device
        self.output_ref = weakref.ref(out)
        if self.saves_output:
            self.saved_y = y

    def saved_output(self):
        """The output as a Tensor, for rules under create_graph written in terms of it.

        While the output Tensor lives it is returned itself, so that the recorded backward stays
        connected; once it is gone no recording can need it, and a constant Tensor over the
        saved array does.
        """
        out = self.output_ref()
        return out if out is not None else Tensor._make(self.saved_y, self.output_device)

    def check_versions(self) -> None:
        """Raise BackwardError when a saved input or output was modified in place since."""
        if self.saves_inputs:
            for x, v in zip(self.inputs, self.saved_versions):
                if isinstance(x, Tensor) and x._version_counter[0] != v:
                    raise BackwardError(
                        f"an input of {self.name} (shape {x.shape}) was modified in place after "
                        f"{self.name} saved it for backward (version {v} -> {x._version}); "
                        "use an out-of-place op (x = x + y instead of x += y), or call backward first"
                    )
        out = self.output_ref()
        if self.saves_output and out is not None and out._version_counter[0] != 0:
            raise BackwardError(
                f"the output of {self.name} (shape {out.shape}) was modified in place after "
                f"{self.name} saved it for backward; use an out-of-place op instead"
            )

    def release(self) -> None:
        """Drop what backward needed; the graph above this function is cut here."""
        self.inputs = self.saved_y = self.needs_input_grad = None
        self.__dict__.clear()


def _share_version(out, base, inputs):
    # An output that views an input's memory shares the input's version counter: an in-place
    # change through the view is a change of the input, for every graph that saved it, and the
    # other way round. (NumPy and CuPy point .base at the array that owns the memory.)
    for t in inputs:
        if isinstance(t, Tensor):
            d = t.data
            if d is base or d.base is base:
                out._version_counter = t._version_counter
                return


def _device_mismatch(fn, inputs):
    devs = ", ".join(f"{t.device} (shape {t.shape})" for t in inputs if isinstance(t, Tensor))
    return B.DeviceError(f"{fn.name} got tensors on different devices: {devs}; "
                         "move them to one device with .to(device) first")


def _freed_error(fn):
    return BackwardError(
        f"trying to backward through {fn.name} a second time: its saved values were freed by the "
        "first backward; pass retain_graph=True to the first backward (or gf.grad) to keep them"
    )


# --- the engine ----------------------------------------------------------------------------------
def _count_consumers(pending):
    """For every function reachable from those in `pending`, how many edges point at it."""
    deps = dict.fromkeys(pending, 0)
    stack = list(deps)
    while stack:
        fn = stack.pop()
        if fn.inputs is None:
            raise _freed_error(fn)
        for x in fn.inputs:
            prev = x.grad_fn if isinstance(x, Tensor) and x._requires_grad else None
            if prev is not None:
                if prev in deps:
                    deps[prev] += 1
                else:
                    deps[prev] = 1
                    stack.append(prev)
    return deps


def _engine(roots, root_grads, retain_graph, create_graph, captured=None):
    """Propagate `root_grads` (Tensors) from `roots` back to the leaves (or into `captured`).

    In a plain backward the gradients travel as raw arrays and become Tensors at the leaves;
    under create_graph they are Tensors throughout, and every rule is recorded.
    """
    pending = {}  # function -> the sum of the gradients its consumers have sent so far
    leaves = {}  # id(leaf) -> [leaf, the sum of its gradients]
    exposed = set()  # ids of arrays the caller or a hook holds: no leaf may take them
    for t, g in zip(roots, root_grads):
        exposed.add(id(g.data))
        g, fn = g if create_graph else g.data, t.grad_fn
        if fn is None:  # a leaf root: it gets its gradient at the end
            leaves[id(t)] = [t, g] if id(t) not in leaves else [t, leaves[id(t)][1] + g]
        else:
            pending[fn] = g if fn not in pending else pending[fn] + g
    deps = _count_consumers(pending)
    ready = []
    for fn in pending:
        if deps[fn] == 0:
            ready.append(fn)
    enabled, _grad_mode.enabled = _grad_mode.enabled, create_graph
    outer, _grad_mode.callbacks = _grad_mode.callbacks, []
    fn = None
    try:
        with B.quiet_fp():  # a rule's inf or nan (d log x at 0) is a value, not a warning
            while ready:
                fn = ready.pop()
                gy = pending.pop(fn)
                out = fn.output_ref()
                if out is not None and (out._hooks or out._retains_grad or captured is not None):
                    gy = _visit_output(out, gy, captured, exposed, create_graph)
                _apply_rule(fn, gy, create_graph, pending, leaves, deps, ready)
                if not retain_graph:
                    fn.release()
        fn = None
        if _anomaly is not None:
            _anomaly.flush()
        for x, gx in leaves.values():
            _accumulate_leaf(x, gx, captured, exposed)
        for callback in _grad_mode.callbacks:
            callback()
    except Exception as exc:
        if _anomaly is not None and fn is not None:
            _anomaly_note(exc, fn)
        raise
    finally:
        _grad_mode.enabled, _grad_mode.callbacks = enabled, outer


def queue_callback(callback) -> None:
    """Call `callback()` once the backward pass now running has put every gradient in place.

    For a hook that must see all gradients together: DistributedDataParallel averages them over
    the processes there. (PyTorch: `Variable._execution_engine.queue_callback`.)

    Example:
        >>> w.register_hook(lambda g: gf.autograd.queue_callback(lambda: print(w.grad)))
    """
    if _grad_mode.callbacks is None:
        raise BackwardError("queue_callback outside a backward pass: call it from a hook")
    _grad_mode.callbacks.append(callback)


def _apply_rule(fn, gy, create_graph, pending, leaves, deps, ready):
    """Run fn's rule on its output's gradient gy and send each input its gradient: to the
    function that made the input (ready once all its consumers have sent theirs) or to a leaf."""
    if fn.inputs is None:
        raise _freed_error(fn)
    if fn.saves_inputs or fn.saves_output:
        fn.check_versions()
    needs, xs = [], []  # which inputs need a gradient; the inputs as the rule sees them
    for x in fn.inputs:
        if isinstance(x, Tensor):
            needs.append(x._requires_grad)
            xs.append(x if create_graph else x.data)
        else:
            needs.append(False)
            xs.append(x)
    fn.needs_input_grad = needs
    if create_graph:
        rule, y = fn.backward, fn.saved_output() if fn.saves_output else None
    else:
        rule = fn.backward if fn.fused_backward is None else fn.fused_backward
        y = fn.saved_y if fn.saves_output else None
    dev = fn.output_device
    with dev.backend.use(dev.index):  # the rule and the sums run on the op's own GPU
        gxs = rule(gy, y, *xs)
        if not isinstance(gxs, tuple):
            gxs = (gxs,)
        if _anomaly is not None:
            _anomaly.backward(fn, gxs)
        for x, gx, needed in zip(fn.inputs, gxs, needs):
            if not needed or gx is None:
                continue
            xd = x.data
            if gx.shape != xd.shape or gx.dtype != xd.dtype:
                raise _wrong_gradient(fn, x, gx)
            prev = x.grad_fn
            if prev is None:  # fan-out is +, at a leaf as at a function
                had = leaves.get(id(x))
                leaves[id(x)] = [x, gx] if had is None else [x, had[1] + gx]
                continue
            had = pending.get(prev)
            pending[prev] = gx if had is None else had + gx
            deps[prev] -= 1
            if deps[prev] == 0:
                ready.append(prev)


def _as_tensor(g, device):
    # A raw gradient as a Tensor outside the graph (NumPy gives scalars for 0-d results).
    if isinstance(g, Tensor):
        return g
    if g.__class__ is not device.backend.ndarray:
        g = device.backend.asarray(g, index=device.index)
    return Tensor._make(g, device)


def _wrong_gradient(fn, x, gx):
    return BackwardError(
        f"{fn.name}.backward returned a gradient of shape {tuple(gx.shape)} and dtype {gx.dtype} "
        f"for an input of shape {x.shape} and dtype {x.dtype}: the gradient rule is wrong"
    )


def _run_hooks(t, g):
    for hook in t._hooks.values():
        r = hook(g)
        if r is not None:
            if not isinstance(r, Tensor) or r.shape != g.shape or r.dtype != g.dtype \
                    or r.device is not g.device:
                raise _wrong_hook_result(hook, t, g, r)
            g = r
    return g


def _wrong_hook_result(hook, t, g, r):
    # Checked like a gradient rule's result, and named: else a wrong shape reaches .grad.
    code = getattr(hook, "__code__", None)
    where = f" ({code.co_filename}:{code.co_firstlineno})" if code is not None else ""
    got = (f"a Tensor of shape {r.shape}, dtype {r.dtype} on {r.device}"
           if isinstance(r, Tensor) else f"a {type(r).__name__}")
    return BackwardError(
        f"the hook {getattr(hook, '__qualname__', repr(hook))}{where} on a tensor of shape "
        f"{t.shape} returned {got}; a hook returns None or the gradient's replacement: a Tensor "
        f"of shape {g.shape}, dtype {g.dtype} on {g.device}")


def _visit_output(out, gy, captured, exposed, create_graph):
    # A gradient reaching a non-leaf tensor: its hooks, retain_grad() and gf.grad's capture see
    # it as a Tensor. What they saw is marked exposed, so that no leaf shares it.
    g = _as_tensor(gy, out.device)
    exposed.add(id(g.data))
    if out._hooks:
        g = _run_hooks(out, g)
        exposed.add(id(g.data))
    if out._retains_grad:
        out.grad = g if out.grad is None else out.grad + g
        exposed.add(id(out.grad.data))
    if captured is not None and id(out) in captured:
        captured[id(out)] = (out, g)
    return g if create_graph else g.data


def _accumulate_leaf(x, gx, captured, exposed):
    # The leaf's complete gradient: through its hooks, into gf.grad's capture or into .grad.
    device = x.device
    if not isinstance(gx, Tensor):  # a raw array: as _as_tensor, inline on this hot path
        if gx.__class__ is not device.backend.ndarray:  # NumPy gives scalars for 0-d results
            gx = device.backend.asarray(gx, index=device.index)
        gx = Tensor._make(gx, device)
    if x._hooks:
        gx = _run_hooks(x, gx)
        exposed = None  # a hook may keep the gradient it was shown
    if captured is not None:
        key = id(x)
        if key in captured:
            prev = captured[key][1]
            captured[key] = (x, gx if prev is None else prev + gx)
        return
    if x.grad is not None:
        x.grad = x.grad + gx
        return
    # The leaf gets an array of its own: a gradient can be a read-only broadcast view, or one
    # array sent to several leaves (a + b gives both the same one), and an in-place change of
    # one .grad (clipping, weight decay) must not reach another. A fresh array that nothing else
    # has seen (`exposed` holds the ids of those handed out or given by the caller) is taken as
    # it is: copying every weight gradient would cost a full pass over the parameters per step.
    d = gx.data
    if not gx._requires_grad:
        if exposed is None or d.base is not None or id(d) in exposed:
            with device.backend.use(device.index):
                gx = Tensor._make(d.copy(), device)
        else:
            exposed.add(id(d))
    x.grad = gx


def _seed_gradient(t, g, name):
    """The gradient backward starts from: ones for a one-element t, else the given one, checked."""
    if g is None:
        if t.data.size != 1:
            raise BackwardError(
                f"{name} of a non-scalar tensor (shape {t.shape}) needs an explicit gradient: "
                "pass a tensor of the same shape, e.g. y.backward(gf.ones_like(y))"
            )
        dev = t.device
        with dev.backend.use(dev.index):
            ones = dev.xp.ones(t.data.shape, dtype=t.data.dtype)
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


def backward(tensor, gradient=None, retain_graph: bool = False,
             create_graph: bool = False) -> None:
    """Compute d tensor / d leaf for every leaf that led here and add it to the leaf's .grad.

    `Tensor.backward` is this function: `loss.backward()` is `gf.autograd.backward(loss)`.

    Args:
        tensor: the Tensor to differentiate (the loss).
        gradient: d loss / d tensor; may be omitted for a one-element tensor (taken as 1).
        retain_graph: keep the saved values so backward can run through this graph again.
        create_graph: record the backward pass, so the gradients can be differentiated.

    Example:
        >>> x = gf.tensor([1.0, 2.0], requires_grad=True)
        >>> (x * x).sum().backward()
        >>> x.grad                                    # 2x
    """
    if not tensor._requires_grad:
        raise BackwardError(
            f"backward on a tensor that does not require grad (shape {tensor.shape}): no input "
            "of the ops that made it had requires_grad=True, or it was made under no_grad()"
        )
    g = _seed_gradient(tensor, gradient, "backward")
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
    outputs, inputs = _tensor_list(outputs, "outputs"), _tensor_list(inputs, "inputs")
    grad_outputs = [None] * len(outputs) if grad_outputs is None else \
        [grad_outputs] if isinstance(grad_outputs, Tensor) else list(grad_outputs)
    if len(grad_outputs) != len(outputs):
        raise ValueError(f"grad: {len(grad_outputs)} grad_outputs for {len(outputs)} outputs")
    for i, x in enumerate(inputs):
        if not x.requires_grad:
            raise BackwardError(f"grad: input {i} does not require grad, so it has no gradient")
    roots = [o for o in outputs if o.requires_grad]
    gs = [_seed_gradient(o, g, "grad") for o, g in zip(outputs, grad_outputs) if o.requires_grad]
    captured = {id(x): (x, None) for x in inputs}
    if roots:
        # The recorded backward refers to the forward graph's tensors, so create_graph keeps it.
        _engine(roots, gs, bool(retain_graph) or create_graph, create_graph, captured)
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


def _tensor_list(ts, what):
    # gf.grad's outputs and inputs: a Tensor or a sequence of them, else a TypeError naming it.
    items = [ts] if isinstance(ts, Tensor) else list(ts) if isinstance(ts, (list, tuple)) \
        else None
    if not items or not all(isinstance(t, Tensor) for t in items):
        raise TypeError(f"grad: {what} must be a Tensor or a non-empty sequence of Tensors, got "
                        f"{ts!r:.80}")
    return items


from .tensor import Tensor  # noqa: E402  (tensor.py imports this module's Function first)
from .promotion import promote as _promoted  # noqa: E402
from .anomaly import (  # noqa: E402
    AnomalyError, detect_anomaly, set_detect_anomaly, is_anomaly_enabled,
    annotate as _anomaly_note,
)

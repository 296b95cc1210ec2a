"""Optimizer: the base class of every optimizer (parameter groups, state, state_dict)."""
from __future__ import annotations

import copy
import math
import numbers

from .. import backend as B
from ..autograd import enable_grad, no_grad
from ..tensor import Tensor

__all__ = ["Optimizer", "required"]


class _Required:
    def __repr__(self) -> str:
        return "<required parameter>"


required = _Required()  # a default that must be given (SGD's lr, as in PyTorch)


class Optimizer:
    """Base class: holds parameter groups and per-parameter state; subclasses define `_update`.

    `_update` is the reference: the optimizer's equations written with the array module `xp`,
    updating the parameter and its state in place. A subclass may also name a fused kernel of
    the backends (`_fused_kernel`, e.g. "adam_update") and define `_fused_update` to call it:
    a group's `fused` entry then chooses (None: the kernel where the parameter's backend has
    one, else the reference; False: the reference; True: the kernel, an error without one).

    `step()` runs under no_grad and changes each parameter's array in place (no new arrays),
    bumping the parameter's version, so that backward through a graph recorded before the step
    fails loudly instead of using stale values. Each parameter's update runs with its own
    device current (its GPU, for a parameter on cuda:1).

    The state follows its parameter: `model.to("cuda")` or `model.to(dtype=gf.float64)` after
    some steps keeps the Parameter objects and replaces their arrays, and the next `step()`
    moves each state tensor (Adam's exp_avg, a momentum buffer) whose device or dtype is no
    longer its parameter's onto the parameter's device and dtype, once, before updating (as
    PyTorch's load_state_dict casts). Until that step, `state` and `state_dict()` still hold
    the old arrays.

    Args:
        params: an iterable of Parameters, or of dicts (parameter groups) each with a 'params'
            entry and optional per-group hyperparameters overriding the defaults, e.g.
            `[{'params': model[0].parameters(), 'lr': 1e-2}, {'params': model[2].parameters()}]`.
        defaults: the hyperparameters' default values.

    Attributes:
        param_groups: list of dicts, each with 'params' and its hyperparameters (schedulers
            change 'lr' here).
        state: a dict from each Parameter to its state dict (created at its first update).
    """

    # Per-parameter state entries each optimizer keeps; load_state_dict checks against them.
    _array_state: tuple = ()

    def __init__(self, params, defaults: dict) -> None:
        self.defaults = dict(defaults)
        self.state: dict = {}
        self.param_groups: list = []
        if isinstance(params, Tensor):
            raise TypeError(f"{type(self).__name__}: params must be an iterable of Tensors or "
                            "dicts, got a single Tensor; wrap it in a list: [tensor]")
        if isinstance(params, (set, frozenset)):
            raise TypeError(f"{type(self).__name__}: params must be an ordered iterable (a list "
                            "or model.parameters()), not a set: a set's order changes between "
                            "runs and the optimizer's state is stored by position")
        groups = list(params)
        if not groups:
            raise ValueError(f"{type(self).__name__} got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for g in groups:
            self.add_param_group(g)

    # --- groups ---------------------------------------------------------------------------------
    def add_param_group(self, param_group: dict) -> None:
        """Add a group of parameters with its own hyperparameters (defaults fill the rest).

        Raises:
            TypeError: a parameter is not a floating-point leaf Tensor.
            ValueError: a parameter already in another group, a required hyperparameter
                missing, or a hyperparameter out of range (named with its value).
        """
        if not isinstance(param_group, dict):
            raise TypeError(f"a parameter group must be a dict, got {type(param_group).__name__}")
        group = dict(param_group)
        params = group.get("params")
        if params is None:
            raise ValueError("a parameter group needs a 'params' entry")
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, (set, frozenset)):
            raise TypeError("a parameter group's 'params' must be ordered (a list), not a set")
        params = list(params)
        for i, p in enumerate(params):
            if not isinstance(p, Tensor):
                raise TypeError(f"{type(self).__name__} can only optimize Tensors, but parameter "
                                f"{i} of the group is a {type(p).__name__}")
            if p.grad_fn is not None:
                raise ValueError(f"{type(self).__name__} cannot optimize a non-leaf tensor "
                                 f"(parameter {i}, shape {p.shape}, made by {p.grad_fn.name})")
            if p.dtype.kind != "f":
                raise TypeError(f"{type(self).__name__}: parameter {i} has dtype {p.dtype}; "
                                "only floating-point tensors can be optimized")
        ids = {id(p) for p in params}
        if len(ids) != len(params):
            raise ValueError(f"{type(self).__name__}: a parameter appears twice in one group")
        for other in self.param_groups:
            if any(id(p) in ids for p in other["params"]):
                raise ValueError(f"{type(self).__name__}: some parameters appear in more than "
                                 "one parameter group")
        for k, v in self.defaults.items():
            if v is required and k not in group:
                raise ValueError(f"{type(self).__name__}: parameter group didn't specify a "
                                 f"value of required optimization parameter '{k}'")
            group.setdefault(k, v)
        group["params"] = params
        self._validate(group)
        self.param_groups.append(group)

    def _validate(self, group: dict) -> None:
        """Check a group's hyperparameters (subclasses override); raise ValueError naming them."""

    # --- stepping -------------------------------------------------------------------------------
    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget every parameter's gradient (.grad = None, PyTorch's default), or zero it in
        place with set_to_none=False."""
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if set_to_none:
                    p.grad = None
                else:
                    with p.grad.device.backend.use(p.grad.device.index):  # its GPU, not GPU 0
                        p.grad.data[...] = 0

    def step(self, closure=None):
        """Update every parameter that has a gradient, in place; returns closure's loss if given.

        Args:
            closure: optional callable that re-evaluates the model and returns the loss
                (run with gradients enabled before the update).
        """
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        with no_grad():
            for group in self.param_groups:
                for p in group["params"]:
                    g = p.grad
                    if g is None:
                        continue
                    if g.data.shape != p.data.shape or g.device is not p.device:
                        raise ValueError(
                            f"{type(self).__name__}: the gradient of a parameter of shape "
                            f"{p.shape} on {p.device} has shape {g.shape} on {g.device}")
                    state = self.state.get(p)
                    if state is None:
                        state = self.state[p] = {}
                    elif state:
                        self._follow(p, state)
                    dev = p.device
                    # The parameter's GPU current: kernels launch and scratch memory is
                    # allocated there, not on GPU 0 (a no-op context on the CPU).
                    with dev.backend.use(dev.index):
                        if self._fused_for(p, group):
                            self._fused_update(p, g.data, state, group)
                        else:
                            self._update(p, g.data, state, group)
                    p._version += 1
        return loss

    @staticmethod
    def _follow(p: Tensor, state: dict) -> None:
        """Move the state tensors whose device or dtype differs from p's onto p's (in `state`).

        The parameter moved since its last update (Module.to replaces its array, keeping the
        Parameter); the state is moved once, here, and then matches again.
        """
        dev, dtype = p.device, p.data.dtype
        for k, v in state.items():  # replacing values (no new keys) is safe while iterating
            if not isinstance(v, Tensor) or (v.device is dev and v.data.dtype == dtype):
                continue
            with dev.backend.use(dev.index):
                arr = B.move(v.data, dev, v.device).astype(dtype, copy=False)
            state[k] = Tensor._make(arr, dev, False, None)

    # The backend function that fuses this optimizer's update (None: the reference only).
    _fused_kernel: str | None = None

    def _fused_for(self, p: Tensor, group: dict) -> bool:
        """Whether p's update runs the fused kernel (see the class docstring), per `fused`."""
        fused = group.get("fused")
        if fused is False or self._fused_kernel is None:
            if fused:
                raise RuntimeError(f"{type(self).__name__}: fused=True, but it has no fused "
                                   "update; use fused=None or False")
            return False
        if hasattr(p.device.backend, self._fused_kernel):
            return True
        if fused:
            raise RuntimeError(f"{type(self).__name__}: fused=True, but the backend of {p.device} "
                               f"has no fused {self._fused_kernel}; use fused=None or False")
        return False

    def _update(self, p: Tensor, grad, state: dict, group: dict) -> None:
        """Apply one update to p.data in place: the reference, in `xp` (subclasses)."""
        raise NotImplementedError(f"{type(self).__name__}._update")

    def _fused_update(self, p: Tensor, grad, state: dict, group: dict) -> None:
        """The same update as `_update` through the backend's `_fused_kernel` (subclasses)."""
        raise NotImplementedError(f"{type(self).__name__}._fused_update")

    @staticmethod
    def _zeros_like(p: Tensor) -> Tensor:
        # State lives beside its parameter: same device (its own GPU), dtype and shape.
        dev = p.device
        with dev.backend.use(dev.index):
            return Tensor._make(dev.xp.zeros_like(p.data), dev, False, None)

    # --- saving and loading ---------------------------------------------------------------------
    def state_dict(self) -> dict:
        """The optimizer's state, PyTorch's layout: {'state': {index: {...}}, 'param_groups':
        [{hyperparameters..., 'params': [index, ...]}]}.

        Parameters are named by their position across groups (so a state_dict loads into an
        optimizer built the same way on a new model). The state's Tensors are shared with the
        optimizer, like PyTorch's: save them (e.g. with pickle) to keep a snapshot.
        """
        index: dict = {}
        groups = []
        for group in self.param_groups:
            ids = []
            for p in group["params"]:
                index.setdefault(id(p), len(index))
                ids.append(index[id(p)])
            saved = {k: copy.deepcopy(v) for k, v in group.items() if k != "params"}
            saved["params"] = ids
            groups.append(saved)
        state = {}
        for group in self.param_groups:
            for p in group["params"]:
                s = self.state.get(p)
                if s:
                    state[index[id(p)]] = {k: (v.detach() if isinstance(v, Tensor) else v)
                                           for k, v in s.items()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict) -> None:
        """Load a state produced by `state_dict()` of an optimizer of the same kind built over
        parameters of the same shapes. Arrays are copied onto each parameter's device and dtype.
        Everything is checked first: a failed load changes nothing.

        Raises:
            ValueError: a different number of groups or parameters, a state entry of the wrong
                shape, or state keys this optimizer does not use (named).
        """
        name = type(self).__name__
        if not isinstance(state_dict, dict) or "state" not in state_dict or \
                "param_groups" not in state_dict:
            raise ValueError(f"{name}.load_state_dict: expected a dict with 'state' and "
                             f"'param_groups' (from Optimizer.state_dict()), got "
                             f"{type(state_dict).__name__}"
                             + (f" with keys {sorted(map(str, state_dict))}"
                                if isinstance(state_dict, dict) else ""))
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f"{name}.load_state_dict: the state has {len(saved_groups)} "
                             f"parameter group(s), this optimizer {len(self.param_groups)}")
        index: dict = {}
        for gi, (saved, group) in enumerate(zip(saved_groups, self.param_groups)):
            ids = saved.get("params", [])
            if len(ids) != len(group["params"]):
                raise ValueError(f"{name}.load_state_dict: group {gi} has {len(ids)} "
                                 f"parameter(s) in the state but {len(group['params'])} here")
            for i, p in zip(ids, group["params"]):
                index[i] = p
        new_state: dict = {}
        for i, entries in state_dict["state"].items():
            if i not in index:
                raise ValueError(f"{name}.load_state_dict: state for parameter index {i}, "
                                 "which no group lists")
            p = index[i]
            unknown = set(entries) - set(self._array_state) - {"step"}
            if unknown:
                raise ValueError(f"{name}.load_state_dict: state entries "
                                 f"{sorted(unknown)} for parameter {i} are not {name}'s (it "
                                 f"keeps {sorted(set(self._array_state) | {'step'})}); was "
                                 "the state saved by another optimizer?")
            s = {}
            for k, v in entries.items():
                if k == "step":
                    if isinstance(v, Tensor) or B.is_array(v):
                        v = v.item() if hasattr(v, "item") else v
                    if not isinstance(v, numbers.Integral) or v < 0:
                        raise ValueError(f"{name}.load_state_dict: 'step' of parameter {i} "
                                         f"must be a non-negative int, got {v!r}")
                    s[k] = int(v)
                    continue
                if isinstance(v, Tensor):
                    arr, src = v.data, v.device
                elif B.is_array(v):
                    arr, src = v, B.device_of(v)
                else:
                    raise ValueError(f"{name}.load_state_dict: state '{k}' of parameter {i} is "
                                     f"a {type(v).__name__}, not a tensor")
                if tuple(arr.shape) != p.shape:
                    raise ValueError(f"{name}.load_state_dict: state '{k}' of parameter {i} "
                                     f"has shape {tuple(arr.shape)}, the parameter {p.shape}")
                host = src.backend.to_host(arr)
                new = p.device.backend.asarray(host, dtype=p.dtype, index=p.device.index)
                if new is arr or new is host:
                    new = new.copy()  # never share with the state_dict: the next step mutates it
                s[k] = Tensor._make(new, p.device, False, None)
            new_state[p] = s
        new_groups = []
        for saved, group in zip(saved_groups, self.param_groups):
            g = {k: copy.deepcopy(v) for k, v in saved.items() if k != "params"}
            g["params"] = group["params"]
            self._validate(g)
            new_groups.append(g)
        self.state = new_state
        self.param_groups = new_groups

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            n = sum(p.size for p in group["params"])
            lines.append(f"Parameter Group {i}  # {len(group['params'])} tensors, {n:,} values")
            for k in sorted(group):
                if k != "params":
                    lines.append(f"    {k}: {group[k]}")
        lines.append(")")
        return "\n".join(lines)


# --- validation helpers shared by the optimizers --------------------------------------------------
def check_number(opt: str, name: str, value, lo: float = 0.0, hi: float | None = None,
                 lo_open: bool = False, hi_open: bool = True) -> None:
    """Raise ValueError naming `name` and `value` unless lo <= value (< or <=) hi."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or math.isnan(value):
        raise ValueError(f"{opt}: invalid {name} {value!r}: expected a number")
    low_ok = value > lo if lo_open else value >= lo
    high_ok = hi is None or (value < hi if hi_open else value <= hi)
    if not (low_ok and high_ok):
        lo_s = "(" if lo_open else "["
        hi_s = "inf)" if hi is None else (f"{hi})" if hi_open else f"{hi}]")
        raise ValueError(f"{opt}: invalid {name} value {value!r}: expected a value in "
                         f"{lo_s}{lo}, {hi_s}")


def check_bool(opt: str, name: str, value) -> None:
    """Raise TypeError unless `value` is a bool."""
    if not isinstance(value, bool):
        raise TypeError(f"{opt}: {name} must be True or False, got {value!r}")


def check_fused(opt: str, group: dict) -> None:
    """Raise TypeError unless the group's `fused` is None, True or False; a group without one
    (a state_dict saved before the option existed) gets None, the default."""
    fused = group.setdefault("fused", None)
    if fused is not None and not isinstance(fused, bool):
        raise TypeError(f"{opt}: fused must be None (the fused kernel where there is one), "
                        f"True (require it) or False (the reference update), got {fused!r}")

"""Module (the base of every layer) and Parameter (a Tensor a module trains)."""
from __future__ import annotations

from collections import OrderedDict
from typing import Iterator, NamedTuple

from .. import backend as B
from ..autograd import no_grad
from ..tensor import Tensor

__all__ = ["Module", "Parameter", "StateDictError", "IncompatibleKeys"]


class Parameter(Tensor):
    """A Tensor that a Module registers as trainable: `requires_grad=True` by default.

    Assigning a Parameter to a Module attribute registers it, so it shows up in `parameters()`,
    `state_dict()` and the optimizer. The Parameter shares `data`'s array (no copy), like
    torch.nn.Parameter.

    Args:
        data: a Tensor or NumPy/CuPy array (floating point).
        requires_grad: whether the optimizer should train it (default True).

    Example:
        >>> w = gf.nn.Parameter(gf.zeros(3, 4))
        >>> w.requires_grad
        True
    """

    __slots__ = ()

    def __init__(self, data=None, requires_grad: bool = True) -> None:
        if data is None:
            data = B.host_numpy().empty((0,), dtype=B.float32)
        if isinstance(data, Tensor):
            arr, dev = data.data, data.device
        elif B.is_array(data):
            arr, dev = data, B.device_of(data)
        else:
            t = Tensor(data)
            arr, dev = t.data, t.device
        self._init_fields(arr, dev)
        if requires_grad:
            self.requires_grad_(True)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()

    def __reduce_ex__(self, protocol):
        # Pickle as (array on the host, device name, requires_grad): a checkpoint written on a
        # GPU loads on a CPU-only machine once moved with .to().
        return (_rebuild_parameter,
                (self.device.backend.to_host(self.data), str(self.device), self.requires_grad))


def _rebuild_parameter(array, device, requires_grad):
    dev = B.loadable_device(device)
    return Parameter(dev.backend.asarray(array, index=dev.index), requires_grad)


class StateDictError(RuntimeError):
    """A state_dict does not fit the module: missing, unexpected or mis-shaped keys (named)."""


class IncompatibleKeys(NamedTuple):
    """What `load_state_dict(strict=False)` skipped."""
    missing_keys: list
    unexpected_keys: list


class Module:
    """Base class of every layer and model: holds Parameters, buffers and sub-modules.

    Subclasses set attributes in `__init__` (Parameters, Modules, or buffers through
    `register_buffer`) and define `forward`. Attributes are registered in insertion order, so
    `parameters()`, `state_dict()` and the optimizer's state keep a stable order.

    Example:
        >>> class TwoLayer(gf.nn.Module):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.fc1 = gf.nn.Linear(4, 8)
        ...         self.fc2 = gf.nn.Linear(8, 2)
        ...     def forward(self, x):
        ...         return self.fc2(self.fc1(x).relu())
        >>> model = TwoLayer()
        >>> [name for name, _ in model.named_parameters()]
        ['fc1.weight', 'fc1.bias', 'fc2.weight', 'fc2.bias']
    """

    training: bool

    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_non_persistent", set())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)

    # --- forward --------------------------------------------------------------------------------
    def forward(self, *args, **kwargs):
        """The computation; every subclass defines it. Call the module, not forward."""
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    # --- registration ---------------------------------------------------------------------------
    def _check_init(self):
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"{type(self).__name__}: call super().__init__() before "
                                 "assigning parameters or sub-modules")

    def __setattr__(self, name: str, value) -> None:
        if isinstance(value, Parameter):
            self._check_init()
            self._remove_from(name, self._modules, self._buffers)
            self.__dict__.pop(name, None)
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._check_init()
            self._remove_from(name, self._parameters, self._buffers)
            self.__dict__.pop(name, None)
            self._modules[name] = value
        elif "_parameters" in self.__dict__ and name in self._parameters:
            if value is not None:
                raise TypeError(f"cannot assign {type(value).__name__} to parameter '{name}' "
                                f"of {type(self).__name__}: use a gf.nn.Parameter (or None)")
            self._parameters[name] = None
        elif "_modules" in self.__dict__ and name in self._modules:
            if value is not None:
                raise TypeError(f"cannot assign {type(value).__name__} to sub-module '{name}': "
                                "use a Module (or None)")
            self._modules[name] = None
        elif "_buffers" in self.__dict__ and name in self._buffers:
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(f"cannot assign {type(value).__name__} to buffer '{name}': "
                                "use a Tensor (or None)")
            self._buffers[name] = value
        else:
            object.__setattr__(self, name, value)

    @staticmethod
    def _remove_from(name, *dicts):
        for d in dicts:
            d.pop(name, None)

    def __getattr__(self, name: str):
        # Only reached when normal lookup fails: registered things live in the three dicts.
        d = self.__dict__
        for store in ("_parameters", "_buffers", "_modules"):
            if store in d and name in d[store]:
                return d[store][name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name: str) -> None:
        for store in (self._parameters, self._buffers, self._modules):
            if name in store:
                del store[name]
                self._non_persistent.discard(name)
                return
        object.__delattr__(self, name)

    def __dir__(self):
        return sorted(set(super().__dir__()) | set(self._parameters) | set(self._buffers) |
                      set(self._modules))

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        """Register `param` under `name` (None registers a slot, e.g. a Linear without bias)."""
        self._check_init()
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"register_parameter('{name}'): expected a Parameter or None, got "
                            f"{type(param).__name__}")
        _check_name(name, self, "parameter")
        self._parameters[name] = param

    def register_buffer(self, name: str, tensor: Tensor | None, persistent: bool = True) -> None:
        """Register a Tensor that is state but not trained (BatchNorm's running mean).

        Buffers move with `to()`; persistent ones are saved in `state_dict()`.
        """
        self._check_init()
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(f"register_buffer('{name}'): expected a Tensor or None, got "
                            f"{type(tensor).__name__}")
        _check_name(name, self, "buffer")
        self._buffers[name] = tensor
        if persistent:
            self._non_persistent.discard(name)
        else:
            self._non_persistent.add(name)

    def add_module(self, name: str, module: "Module | None") -> None:
        """Register a sub-module under `name` (what `self.name = module` does)."""
        self._check_init()
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"add_module('{name}'): expected a Module, got "
                            f"{type(module).__name__}")
        _check_name(name, self, "module")
        self._modules[name] = module

    # --- traversal ------------------------------------------------------------------------------
    def named_modules(self, prefix: str = "", _seen=None) -> Iterator[tuple[str, "Module"]]:
        """Yield (name, module) for this module and every sub-module, depth first, once each."""
        seen = set() if _seen is None else _seen
        stack = [(prefix, self)]
        while stack:
            name, mod = stack.pop()
            if id(mod) in seen:
                continue
            seen.add(id(mod))
            yield name, mod
            children = [(f"{name}.{k}" if name else k, m) for k, m in mod._modules.items()
                        if m is not None]
            stack.extend(reversed(children))

    def modules(self) -> Iterator["Module"]:
        """Every module in the tree, this one first."""
        for _, m in self.named_modules():
            yield m

    def named_children(self) -> Iterator[tuple[str, "Module"]]:
        """Yield (name, module) for the direct sub-modules."""
        for k, m in self._modules.items():
            if m is not None:
                yield k, m

    def children(self) -> Iterator["Module"]:
        """The direct sub-modules, in registration order."""
        for _, m in self.named_children():
            yield m

    def _named_members(self, store: str, prefix: str, recurse: bool):
        seen = set()
        mods = self.named_modules(prefix) if recurse else [(prefix, self)]
        for mname, mod in mods:
            for k, v in getattr(mod, store).items():
                if v is None or id(v) in seen:
                    continue
                seen.add(id(v))
                yield (f"{mname}.{k}" if mname else k), v

    def named_parameters(self, prefix: str = "", recurse: bool = True
                         ) -> Iterator[tuple[str, Parameter]]:
        """Yield (dotted name, Parameter) for every parameter, each shared one once.

        Example:
            >>> [n for n, _ in gf.nn.Linear(2, 3).named_parameters()]
            ['weight', 'bias']
        """
        return self._named_members("_parameters", prefix, recurse)

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        """Every Parameter of this module and its sub-modules (what an optimizer takes)."""
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix: str = "", recurse: bool = True
                      ) -> Iterator[tuple[str, Tensor]]:
        """Yield (dotted name, Tensor) for every buffer."""
        return self._named_members("_buffers", prefix, recurse)

    def buffers(self, recurse: bool = True) -> Iterator[Tensor]:
        """Every buffer of this module and its sub-modules."""
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    def num_parameters(self, trainable_only: bool = False) -> int:
        """The number of scalar parameters (each shared Parameter counted once)."""
        return sum(p.size for p in self.parameters() if p.requires_grad or not trainable_only)

    # --- modes and gradients --------------------------------------------------------------------
    def train(self, mode: bool = True) -> "Module":
        """Set training mode (Dropout drops, BatchNorm uses batch statistics); returns self."""
        if not isinstance(mode, bool):
            raise TypeError(f"train(mode): mode must be a bool, got {type(mode).__name__}")
        for m in self.modules():
            object.__setattr__(m, "training", mode)
        return self

    def eval(self) -> "Module":
        """Set evaluation mode (same as `train(False)`); returns self."""
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True) -> "Module":
        """Freeze (False) or unfreeze (True) every parameter; returns self."""
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget every parameter's gradient (.grad = None, like PyTorch's default).

        With set_to_none=False the gradients are zeroed in place instead.
        """
        for p in self.parameters():
            if p.grad is None:
                continue
            if set_to_none:
                p.grad = None
            else:
                with p.device.backend.use(p.device.index):
                    p.grad.data[...] = 0

    def apply(self, fn) -> "Module":
        """Call fn(module) on every sub-module, then on self (e.g. custom init); returns self."""
        for m in reversed(list(self.modules())):
            fn(m)
        return self

    # --- devices and dtypes ---------------------------------------------------------------------
    def to(self, device=None, dtype=None) -> "Module":
        """Move every parameter and buffer to `device` and/or cast floating ones to `dtype`.

        The Parameter objects stay the same (their arrays are replaced), so an optimizer made
        before the move keeps working: its state (Adam's moments, momentum buffers) is moved
        to each parameter's new device and dtype by its next `step()` (see Optimizer). Returns
        self.

        Example:
            >>> model = gf.nn.Linear(4, 2).to("cpu", dtype=gf.float64)
        """
        dev = B.get_device(device) if device is not None else None
        dt = B.dtype(dtype) if dtype is not None else None
        if dt is not None and dt.kind != "f":
            raise TypeError(f"Module.to: dtype must be floating point, got {dt}")

        def convert(t):
            arr, src = t.data, t.device
            if dev is not None:
                arr = B.move(arr, dev, src)
            if dt is not None and arr.dtype.kind == "f" and arr.dtype != dt:
                arr = arr.astype(dt)
            return arr

        with no_grad():
            for m in self.modules():
                for store in (m._parameters, m._buffers):
                    for t in store.values():
                        if t is None:
                            continue
                        arr = convert(t)
                        if arr is not t.data:
                            t.data = arr
                            t.device = B.device_of(arr)
                            t._version += 1
                        if t.grad is not None:
                            g = convert(t.grad)
                            if g is not t.grad.data:
                                t.grad = Tensor._make(g, B.device_of(g), False, None)
        return self

    def cpu(self) -> "Module":
        """Move to the CPU; returns self."""
        return self.to("cpu")

    def cuda(self, index: int = 0) -> "Module":
        """Move to CUDA device `index`; returns self."""
        return self.to(f"cuda:{index}")

    def float(self) -> "Module":
        """Cast floating parameters and buffers to float32; returns self."""
        return self.to(dtype=B.float32)

    def double(self) -> "Module":
        """Cast floating parameters and buffers to float64; returns self."""
        return self.to(dtype=B.float64)

    # --- saving and loading ---------------------------------------------------------------------
    def state_dict(self, prefix: str = "") -> "OrderedDict[str, Tensor]":
        """An ordered dict from dotted names to the parameters' and persistent buffers' values.

        The values are detached Tensors sharing the parameters' arrays, like PyTorch's: save
        them (or copy them) to keep a snapshot, since the next optimizer step changes them.

        Example:
            >>> sd = gf.nn.Linear(3, 2).state_dict()
            >>> list(sd)
            ['weight', 'bias']
        """
        out = OrderedDict()
        for mname, mod in self.named_modules(prefix.rstrip(".")):
            head = f"{mname}." if mname else ""
            for k, p in mod._parameters.items():
                if p is not None:
                    out[head + k] = p.detach()
            for k, b in mod._buffers.items():
                if b is not None and k not in mod._non_persistent:
                    out[head + k] = b.detach()
        return out

    def load_state_dict(self, state_dict, strict: bool = True) -> IncompatibleKeys:
        """Copy values from `state_dict` into this module's parameters and buffers, in place.

        Every key is checked before anything is copied, so a failed load leaves the module as
        it was. Values may be Tensors or NumPy/CuPy arrays on any device; they are copied to each
        parameter's device and dtype.

        Args:
            state_dict: a mapping from dotted names to values, e.g. from `state_dict()`.
            strict: require exactly the module's keys (default). With False, missing and
                unexpected keys are skipped and reported; mis-shaped values still raise.

        Returns:
            IncompatibleKeys(missing_keys, unexpected_keys).

        Raises:
            StateDictError: naming every missing, unexpected or mis-shaped key (with shapes).
        """
        if not hasattr(state_dict, "keys") or not hasattr(state_dict, "__getitem__"):
            raise TypeError(f"load_state_dict expects a mapping of names to tensors, got "
                            f"{type(state_dict).__name__}")
        own = self.state_dict()
        targets = {}
        for mname, mod in self.named_modules():
            head = f"{mname}." if mname else ""
            for store in (mod._parameters, mod._buffers):
                for k, t in store.items():
                    if t is not None and (head + k) in own:
                        targets[head + k] = t
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict.keys() if k not in own]
        mismatched = []
        for k, t in targets.items():
            if k in state_dict:
                v = state_dict[k]
                shape = tuple(getattr(v, "shape", ()))
                if not (isinstance(v, Tensor) or B.is_array(v)):
                    mismatched.append(f"'{k}' is a {type(v).__name__}, not a tensor")
                elif shape != t.shape:
                    mismatched.append(f"'{k}' has shape {shape} in the state_dict but "
                                      f"{t.shape} in the model")
        errors = []
        if strict and missing:
            errors.append("missing key(s): " + ", ".join(f"'{k}'" for k in missing))
        if strict and unexpected:
            errors.append("unexpected key(s): " + ", ".join(f"'{k}'" for k in unexpected))
        errors.extend(mismatched)
        if errors:
            raise StateDictError(f"error(s) loading state_dict into {type(self).__name__}: " +
                                 "; ".join(errors) +
                                 " (was it saved from another architecture?)")
        with no_grad():
            for k, t in targets.items():
                if k not in state_dict:
                    continue
                v = state_dict[k]
                dev = t.device
                arr = B.move(v.data, dev, v.device) if isinstance(v, Tensor) else B.move(v, dev)
                with dev.backend.use(dev.index):
                    t.data[...] = arr  # in place: optimizers keep references to the owners
                t._version += 1
        return IncompatibleKeys(missing, unexpected)

    # --- printing -------------------------------------------------------------------------------
    def extra_repr(self) -> str:
        """The text inside this module's parentheses in repr (layers override it)."""
        return ""

    def __repr__(self) -> str:
        lines = []
        for name, m in self._modules.items():
            body = repr(m).replace("\n", "\n  ")
            lines.append(f"({name}): {body}")
        extra = self.extra_repr()
        head = type(self).__name__
        if self._parameters or self._modules:
            n = self.num_parameters()
            count = f"  # {n:,} parameter{'s' if n != 1 else ''}"
        else:
            count = ""
        if not lines:
            return f"{head}({extra}){count}"
        inner = "\n  ".join(([extra] if extra else []) + lines)
        return f"{head}({count}\n  {inner}\n)"


def _check_name(name, module, what):
    if not isinstance(name, str) or not name or "." in name:
        raise KeyError(f"{what} name must be a non-empty string without '.', got {name!r}")
    if name in module.__dict__ and not any(
            name in d for d in (module._parameters, module._buffers, module._modules)):
        raise KeyError(f"attribute '{name}' already exists on {type(module).__name__}")

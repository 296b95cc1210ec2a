"""Data parallelism: `DistributedDataParallel` trains one model on several processes.

Every rank holds the same model and runs it on its own share of each batch. After `backward()`
each rank's gradients are averaged over all ranks, so every rank's optimizer makes the same
update: that of one process that saw the whole batch. The average takes one allreduce of one
flat buffer holding every gradient (ChainerMN's "flat" communicator), not one per parameter.
"""
from __future__ import annotations

import contextlib

from .. import autograd
from ..autograd import no_grad
from ..tensor import Tensor
from .module import Module

__all__ = ["DistributedDataParallel"]


class DistributedDataParallel(Module):
    """Wrap `module` so that training it on N processes equals training it on one.

    At construction every rank checks that its module has the same parameters and buffers
    (names, shapes, dtypes) as the others, then takes rank 0's values. Calling the wrapper runs
    the module. After `loss.backward()` the gradients are averaged over the ranks: N ranks with
    batch B each then make the update of one process with batch N*B (up to float rounding), with
    any gradflow optimizer, and with gradient clipping after backward as usual.

    Differences from PyTorch's, and what is the same:
      * The wrapper is transparent: its `parameters()`, `named_parameters()` and `state_dict()`
        are the module's own, with no "module." prefix, so a checkpoint saved through the
        wrapper loads into the bare model and back. `load_state_dict` also takes a state whose
        keys all start with "module." (saved from a PyTorch-style wrapper).
      * Unused parameters are always handled (PyTorch's find_unused_parameters=True, at the
        cost of one small allreduce of flags per step, which also checks that every rank is in
        the same step): a parameter that got no gradient on some rank gets the average over
        all ranks (its gradient counts as zero there); one unused on every rank keeps grad None.
      * All gradients go in one flat buffer per dtype and one allreduce each; nothing overlaps
        with the backward pass.
      * Buffers (BatchNorm's running statistics) are copied from rank 0 before each forward
        with grad enabled (`broadcast_buffers`), as in PyTorch.
      * `no_sync()` skips the averaging for the backward of a forward run inside it (gradient
        accumulation); the next synchronised backward averages the accumulated gradients.
      * `gf.grad(...)` does not average anything: only `backward()` fills `.grad`.

    Every rank must call it alike: the same number of forward/backward steps, batches of the
    same size (DistributedSampler gives every rank as many samples).

    Args:
        module: the model; all its parameters and buffers on one device (this rank's GPU with
            the "nccl" backend, the CPU with "mpi").
        device_ids: PyTorch's; None or [the module's device] (a device, its name or a GPU index).
        output_device: PyTorch's; None or the module's device.
        broadcast_buffers: copy rank 0's buffers to every rank before each forward (default).
        find_unused_parameters: accepted for PyTorch code; unused parameters are always handled.

    Raises:
        DistributedError: no process group, or the ranks' modules differ (naming the first
            parameter that differs on each rank).
        ValueError: parameters on several devices, or device_ids naming another device.

    Example (under `mpiexec -n 2`):
        >>> dist.init_process_group()
        >>> model = DistributedDataParallel(gf.nn.MLP([784, 100, 10]))
        >>> opt = gf.optim.Adam(model.parameters())
        >>> loss = gf.nn.functional.cross_entropy(model(x), y)    # x, y: this rank's share
        >>> loss.backward()                                         # gradients averaged here
        >>> opt.step()
    """

    def __init__(self, module: Module, device_ids=None, output_device=None,
                 broadcast_buffers: bool = True, find_unused_parameters: bool = False) -> None:
        from .. import distributed as dist  # here, not on import: mpi4py is an extra
        super().__init__()
        if not isinstance(module, Module):
            raise TypeError(f"DistributedDataParallel wraps a gf.nn.Module, got "
                            f"{type(module).__name__}")
        if not dist.is_initialized():
            raise dist.DistributedError("DistributedDataParallel needs a process group: call "
                                        "gradflow.distributed.init_process_group() first")
        self._dist = dist
        self.module = module
        self.broadcast_buffers = bool(broadcast_buffers)
        self.require_backward_grad_sync = True
        self.device = _one_device(module, device_ids, output_device)
        self._queued = False
        self._check_same_module()
        self._buckets = _Buckets([p for p in module.parameters() if p.requires_grad])
        with no_grad():
            _broadcast_from_rank0(dist, list(module.parameters()) + list(module.buffers()))

    # --- running ------------------------------------------------------------------------------
    def forward(self, *args, **kwargs):
        """Run the module (first copying rank 0's buffers, when it has any and grad is on).

        Each output that requires grad gets a hook: when a backward pass reaches it, the
        averaging is queued for the end of that pass (unless the forward ran in `no_sync()`).
        """
        if self.broadcast_buffers and autograd.is_grad_enabled():
            buffers = list(self.module.buffers())
            if buffers:
                with no_grad():
                    _broadcast_from_rank0(self._dist, buffers)
        output = self.module(*args, **kwargs)
        self._queued = False  # even if a failed backward left it set
        if self.require_backward_grad_sync:
            for t in _tensors(output):
                if t.requires_grad:
                    t.register_hook(self._on_output_gradient)
        return output

    def _on_output_gradient(self, grad) -> None:
        # A hook on the output, not on each parameter: a parameter's hook would make the engine
        # copy that parameter's gradient (a hook may keep what it is shown), 7 MB per MLP step.
        if not self._queued:
            self._queued = True
            autograd.queue_callback(self._average_gradients)

    @contextlib.contextmanager
    def no_sync(self):
        """Inside it, forward passes lead to backward passes that do not average gradients.

        Example:
            >>> with model.no_sync():
            ...     model(x1).sum().backward()         # accumulated locally
            >>> model(x2).sum().backward()             # both averaged over the ranks here
        """
        before, self.require_backward_grad_sync = self.require_backward_grad_sync, False
        try:
            yield
        finally:
            self.require_backward_grad_sync = before

    def _average_gradients(self) -> None:
        # Queued by the output's hook during a backward; runs once all of .grad is in place.
        self._queued = False
        dist, buckets, dev = self._dist, self._buckets, self.device
        world = dist.get_world_size()
        if world == 1:  # alone, the average is the gradient itself
            return
        used = dist._check_same_call(dist._require("DistributedDataParallel"), buckets.signature,
                                     [p.grad is not None for p in buckets.params])
        with dev.backend.use(dev.index):  # on this rank's GPU, whichever is current
            for flat, members in buckets.flats(dev):
                members = [(p, part) for p, part in members if used[buckets.position[id(p)]]]
                for p, part in members:  # a parameter unused here counts as a zero gradient
                    part[...] = p.grad.data.reshape(part.shape) if p.grad is not None else 0
                dist._all_reduce_array(flat, "sum", f"gradients of {len(members)} parameters")
                for p, part in members:
                    _set_average(p, part.reshape(p.shape), 1.0 / world)

    # --- a transparent wrapper ----------------------------------------------------------------
    def named_modules(self, prefix: str = "", _seen=None):
        """This wrapper, then the module's tree under the same names (no "module." prefix)."""
        seen = set() if _seen is None else _seen
        seen.add(id(self))
        yield prefix, self
        yield from self.module.named_modules(prefix, seen)

    def load_state_dict(self, state_dict, strict: bool = True):
        """The module's `load_state_dict`; a state whose keys all start with "module." (saved
        through a PyTorch-style wrapper) has that prefix removed first."""
        keys = list(state_dict.keys()) if hasattr(state_dict, "keys") else []
        if keys and all(isinstance(k, str) and k.startswith("module.") for k in keys):
            state_dict = {k[len("module."):]: state_dict[k] for k in keys}
        return self.module.load_state_dict(state_dict, strict=strict)

    def extra_repr(self) -> str:
        return f"world_size={self._dist.get_world_size()}, device={self.device}"

    def _check_same_module(self) -> None:
        lines = [f"DistributedDataParallel of a {type(self.module).__name__}"]
        for store in ("parameter", "buffer"):
            for name, t in getattr(self.module, f"named_{store}s")():
                lines.append(f"{store} '{name}' {t.shape} {t.dtype}")
        group = self._dist._require("DistributedDataParallel")
        self._dist._check_same_call(group, "\n".join(lines))


def _tensors(output) -> list:
    """The Tensors in a module's output: itself, or those in a tuple, list or dict."""
    if isinstance(output, Tensor):
        return [output]
    if isinstance(output, dict):
        output = list(output.values())
    if isinstance(output, (tuple, list)):
        return [t for item in output for t in _tensors(item)]
    return []


def _set_average(p, total, scale: float) -> None:
    # The sum times 1/N, written straight into the gradient: one pass over it, not two.
    if p.grad is None:  # unused here, used elsewhere: the others' average
        p.grad = Tensor._make(total * scale, p.device)
    else:  # in place: the engine gives every leaf a gradient array of its own
        p.device.xp.multiply(total, scale, out=p.grad.data)
        p.grad._version += 1


class _Buckets:
    """The trainable parameters grouped by dtype, each group laid out in one flat buffer."""

    def __init__(self, params: list) -> None:
        self.params = params
        self.position = {id(p): i for i, p in enumerate(params)}
        self.signature = (f"DistributedDataParallel gradients of {len(params)} parameters, "
                          f"{sum(p.size for p in params)} values")
        self._flats = None

    def flats(self, device):
        """[(flat buffer, [(parameter, its slice of the buffer)...]) per dtype], made once."""
        if self._flats is None:
            groups: dict = {}
            for p in self.params:
                groups.setdefault(p.dtype, []).append(p)
            self._flats = []
            with device.backend.use(device.index):
                for dtype, members in groups.items():
                    flat = device.xp.zeros(sum(p.size for p in members), dtype=dtype)
                    self._flats.append((flat, _slices(flat, members)))
        return self._flats


def _slices(flat, tensors):
    out, offset = [], 0
    for t in tensors:
        out.append((t, flat[offset:offset + t.size]))
        offset += t.size
    return out


def _broadcast_from_rank0(dist, tensors) -> None:
    """Give every rank rank 0's values of `tensors`: one broadcast of a flat copy per dtype."""
    groups: dict = {}
    for t in tensors:
        groups.setdefault(t.dtype, []).append(t)
    for dtype, members in groups.items():
        dev = members[0].device
        with dev.backend.use(dev.index):
            flat = dev.xp.concatenate([t.data.reshape(-1) for t in members])
            dist.broadcast(Tensor._make(flat, dev), src=0)
            for t, part in _slices(flat, members):
                t.data[...] = part.reshape(t.shape)
                t._version += 1


def _one_device(module, device_ids, output_device):
    devices = {t.device for t in list(module.parameters()) + list(module.buffers())}
    if len(devices) > 1:
        raise ValueError(f"DistributedDataParallel: the module's parameters and buffers are on "
                         f"{', '.join(sorted(map(str, devices)))}; put them on one device")
    if not devices:
        raise ValueError("DistributedDataParallel: the module has no parameters or buffers")
    device = devices.pop()
    named = list(device_ids or []) + ([] if output_device is None else [output_device])
    for d in named:  # PyTorch's arguments, checked: gradflow keeps the module where it is
        name = f"cuda:{d}" if isinstance(d, int) and not isinstance(d, bool) else str(d)
        if name != str(device):
            raise ValueError(f"DistributedDataParallel: device_ids={device_ids!r}, "
                             f"output_device={output_device!r}, but the module is on {device}; "
                             "move it there first (model.to(...))")
    return device

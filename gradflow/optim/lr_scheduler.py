"""Learning-rate schedulers: StepLR, CosineAnnealingLR, LinearLR (linear warm-up), LambdaLR,
SequentialLR (warm-up then decay), with PyTorch's names and call pattern.

Each scheduler computes the rate of epoch k in closed form from the groups' initial rates, so
resuming from a state_dict lands on exactly the same values. Call `scheduler.step()` once per
epoch (or per iteration for warm-up), after `optimizer.step()`.
"""
from __future__ import annotations

import bisect
import math

from .optimizer import Optimizer

__all__ = ["LRScheduler", "LambdaLR", "StepLR", "CosineAnnealingLR", "LinearLR", "SequentialLR"]


def _positive_int(sched, name, value):
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{sched}: {name} must be a positive int, got {value!r}")


class LRScheduler:
    """Base class: sets each group's 'lr' to `lr_at(epoch)` on every `step()`.

    Args:
        optimizer: the Optimizer whose groups' 'lr' is scheduled.
        last_epoch: the index of the last epoch done (-1: start afresh, recording each group's
            current lr as its 'initial_lr').
    """

    def __init__(self, optimizer: Optimizer, last_epoch: int = -1) -> None:
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(self).__name__} needs a gradflow Optimizer, got "
                            f"{type(optimizer).__name__}")
        self.optimizer = optimizer
        if last_epoch == -1:
            for g in optimizer.param_groups:
                g.setdefault("initial_lr", g["lr"])
        else:
            for i, g in enumerate(optimizer.param_groups):
                if "initial_lr" not in g:
                    raise KeyError(f"{type(self).__name__}: last_epoch={last_epoch} resumes a "
                                   f"schedule, but param group {i} has no 'initial_lr'")
        self.base_lrs = [g["initial_lr"] for g in optimizer.param_groups]
        self.last_epoch = last_epoch
        self._last_lr: list = []
        self.step()

    def lr_at(self, epoch: int) -> list:
        """The learning rate of each group at `epoch` (subclasses)."""
        raise NotImplementedError

    def step(self) -> None:
        """Advance one epoch and set each group's lr."""
        self.last_epoch += 1
        lrs = self.lr_at(self.last_epoch)
        for g, lr in zip(self.optimizer.param_groups, lrs):
            g["lr"] = lr
        self._last_lr = list(lrs)

    def get_last_lr(self) -> list:
        """The learning rates set by the last step(), one per group."""
        return list(self._last_lr)

    def state_dict(self) -> dict:
        """Everything but the optimizer (and functions, which do not pickle)."""
        return {k: v for k, v in self.__dict__.items()
                if k not in ("optimizer", "lr_lambdas", "schedulers")}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore a state from `state_dict()`."""
        self.__dict__.update(state_dict)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(last_epoch={self.last_epoch}, lr={self._last_lr})"


class LambdaLR(LRScheduler):
    """lr = initial_lr * lr_lambda(epoch), one function or one per group.

    Example:
        >>> sched = gf.optim.lr_scheduler.LambdaLR(opt, lambda epoch: 0.95 ** epoch)
    """

    def __init__(self, optimizer: Optimizer, lr_lambda, last_epoch: int = -1) -> None:
        n = len(optimizer.param_groups)
        fns = list(lr_lambda) if isinstance(lr_lambda, (list, tuple)) else [lr_lambda] * n
        if len(fns) != n or not all(callable(f) for f in fns):
            raise ValueError(f"LambdaLR: expected one callable or {n} callables (one per group), "
                             f"got {lr_lambda!r}")
        self.lr_lambdas = fns
        super().__init__(optimizer, last_epoch)

    def lr_at(self, epoch: int) -> list:
        return [base * f(epoch) for base, f in zip(self.base_lrs, self.lr_lambdas)]


class StepLR(LRScheduler):
    """lr = initial_lr * gamma ** (epoch // step_size): decay by gamma every step_size epochs.

    Example:
        >>> sched = gf.optim.lr_scheduler.StepLR(opt, step_size=30, gamma=0.1)
        >>> for epoch in range(100):
        ...     train(...); sched.step()
    """

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1,
                 last_epoch: int = -1) -> None:
        _positive_int("StepLR", "step_size", step_size)
        if not gamma > 0:
            raise ValueError(f"StepLR: gamma must be > 0, got {gamma!r}")
        self.step_size, self.gamma = step_size, float(gamma)
        super().__init__(optimizer, last_epoch)

    def lr_at(self, epoch: int) -> list:
        return [base * self.gamma ** (epoch // self.step_size) for base in self.base_lrs]


class CosineAnnealingLR(LRScheduler):
    """lr = eta_min + (initial_lr - eta_min) (1 + cos(pi epoch / T_max)) / 2 (SGDR without
    restarts): from initial_lr at epoch 0 down to eta_min at epoch T_max.

    Example:
        >>> sched = gf.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=10, eta_min=1e-5)
    """

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0,
                 last_epoch: int = -1) -> None:
        _positive_int("CosineAnnealingLR", "T_max", T_max)
        if not eta_min >= 0:
            raise ValueError(f"CosineAnnealingLR: eta_min must be >= 0, got {eta_min!r}")
        self.T_max, self.eta_min = T_max, float(eta_min)
        super().__init__(optimizer, last_epoch)

    def lr_at(self, epoch: int) -> list:
        c = (1.0 + math.cos(math.pi * epoch / self.T_max)) / 2.0
        return [self.eta_min + (base - self.eta_min) * c for base in self.base_lrs]


class LinearLR(LRScheduler):
    """Linear warm-up (or decay): lr = initial_lr * factor, with factor going linearly from
    start_factor at epoch 0 to end_factor at epoch total_iters, then staying there.

    Example (5 warm-up steps from lr/10 to lr):
        >>> sched = gf.optim.lr_scheduler.LinearLR(opt, start_factor=0.1, total_iters=5)
    """

    def __init__(self, optimizer: Optimizer, start_factor: float = 1.0 / 3,
                 end_factor: float = 1.0, total_iters: int = 5, last_epoch: int = -1) -> None:
        if not 0 < start_factor <= 1:
            raise ValueError(f"LinearLR: start_factor must be in (0, 1], got {start_factor!r}")
        if not 0 <= end_factor <= 1:
            raise ValueError(f"LinearLR: end_factor must be in [0, 1], got {end_factor!r}")
        _positive_int("LinearLR", "total_iters", total_iters)
        self.start_factor, self.end_factor = float(start_factor), float(end_factor)
        self.total_iters = total_iters
        super().__init__(optimizer, last_epoch)

    def lr_at(self, epoch: int) -> list:
        k = min(epoch, self.total_iters)
        f = self.start_factor + (self.end_factor - self.start_factor) * k / self.total_iters
        return [base * f for base in self.base_lrs]


class SequentialLR(LRScheduler):
    """Run schedulers one after another: schedulers[i] from milestones[i-1] on, each counting
    its epochs from 0. The usual warm-up-then-decay:

    Example:
        >>> warm = gf.optim.lr_scheduler.LinearLR(opt, start_factor=0.1, total_iters=5)
        >>> cos = gf.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=95)
        >>> sched = gf.optim.lr_scheduler.SequentialLR(opt, [warm, cos], milestones=[5])
    """

    def __init__(self, optimizer: Optimizer, schedulers, milestones, last_epoch: int = -1
                 ) -> None:
        schedulers = list(schedulers)
        milestones = list(milestones)
        if len(schedulers) < 1 or len(milestones) != len(schedulers) - 1:
            raise ValueError(f"SequentialLR: expected len(milestones) == len(schedulers) - 1, "
                             f"got {len(milestones)} milestones for {len(schedulers)} schedulers")
        if milestones != sorted(milestones) or any(m <= 0 for m in milestones):
            raise ValueError(f"SequentialLR: milestones must be increasing positive ints, got "
                             f"{milestones}")
        for s in schedulers:
            if getattr(s, "optimizer", None) is not optimizer:
                raise ValueError("SequentialLR: every scheduler must drive the same optimizer "
                                 "as SequentialLR")
        self.schedulers = schedulers
        self.milestones = milestones
        super().__init__(optimizer, last_epoch)

    def lr_at(self, epoch: int) -> list:
        i = bisect.bisect_right(self.milestones, epoch)
        start = self.milestones[i - 1] if i > 0 else 0
        return self.schedulers[i].lr_at(epoch - start)

    def state_dict(self) -> dict:
        d = super().state_dict()
        d["schedulers"] = [s.state_dict() for s in self.schedulers]
        return d

    def load_state_dict(self, state_dict: dict) -> None:
        state_dict = dict(state_dict)
        subs = state_dict.pop("schedulers", [])
        super().load_state_dict(state_dict)
        for s, sd in zip(self.schedulers, subs):
            s.load_state_dict(sd)


_LRScheduler = LRScheduler  # PyTorch's older name

"""DistributedSampler: each rank of a process group reads its own, equal share of a dataset."""
from __future__ import annotations

import math
import numbers

from .. import backend as B

__all__ = ["DistributedSampler"]


def _integer(value) -> bool:
    # bool is an Integral, but rank=True is a mistake, not rank 1.
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


class DistributedSampler:
    """The sample indices of one rank: a disjoint share of the dataset, the same length on all.

    This is PyTorch's `torch.utils.data.DistributedSampler`, index for index given the same
    permutations. Every rank builds the same epoch order (a permutation seeded by
    `seed + epoch`, or index order without `shuffle`), pads it by repeating its first indices
    until it divides evenly among the ranks (or, with `drop_last`, cuts the tail that does not),
    and takes every `num_replicas`-th index starting at its `rank`. So the ranks' shares are
    disjoint (but for the padding) and have `len(sampler)` indices each: every rank runs the same
    number of batches, and no collective waits for a rank that has run out.

    Pass it to `DataLoader(dataset, sampler=...)` (not with `shuffle=True`: the sampler shuffles)
    and call `set_epoch(epoch)` before each epoch; without that every epoch has the same order.

    The permutation comes from NumPy's `default_rng(seed + epoch)`, not from torch's generator,
    so the indices match PyTorch's algorithm but not a torch run's shuffled order.

    Args:
        dataset: anything with `__len__`; its length is read once, here.
        num_replicas: the number of ranks sharing the dataset; default: the world size of the
            initialized process group (`gradflow.distributed`).
        rank: this process's rank, in [0, num_replicas); default: the process group's rank.
        shuffle: permute the indices each epoch; else ranks take them in strided index order.
        seed: the base of the permutation's seed; must be the same on all ranks.
        drop_last: cut the tail that does not divide evenly instead of padding it with
            repeated indices; then no sample is seen twice in an epoch, and some not at all.

    Raises:
        TypeError: the dataset has no `__len__`.
        ValueError: num_replicas is not a positive integer, rank is outside [0, num_replicas),
            or seed is not a non-negative integer.
        RuntimeError: num_replicas or rank left out and no process group is initialized.
        ImportError: num_replicas or rank left out and mpi4py is not installed.

    Example:
        >>> sampler = DistributedSampler(ds, num_replicas=4, rank=1, seed=0)
        >>> loader = DataLoader(ds, batch_size=32, sampler=sampler)
        >>> for epoch in range(10):
        ...     sampler.set_epoch(epoch)          # a new order each epoch, alike on all ranks
        ...     for x, y in loader:
        ...         ...
    """

    def __init__(self, dataset, num_replicas: int | None = None, rank: int | None = None,
                 shuffle: bool = True, seed: int = 0, drop_last: bool = False) -> None:
        if not hasattr(dataset, "__len__"):
            raise TypeError(f"DistributedSampler needs a dataset with __len__, got "
                            f"{type(dataset).__name__}")
        if num_replicas is None or rank is None:
            # Imported only here: gradflow.distributed needs mpi4py, which a sampler given
            # both values (a single process, a test) does not.
            from .. import distributed as dist
            if not dist.is_initialized():
                raise RuntimeError(
                    "DistributedSampler: num_replicas/rank not given and no process group is "
                    "initialized: call gradflow.distributed.init_process_group() first (under "
                    "mpiexec), or pass num_replicas= and rank=")
            num_replicas = dist.get_world_size() if num_replicas is None else num_replicas
            rank = dist.get_rank() if rank is None else rank
        if not _integer(num_replicas) or num_replicas < 1:
            raise ValueError(f"DistributedSampler: num_replicas must be a positive integer, got "
                             f"{num_replicas!r}")
        if not _integer(rank) or not 0 <= rank < num_replicas:
            raise ValueError(f"Invalid rank {rank!r}, rank should be in the interval "
                             f"[0, {num_replicas - 1}]")
        if not _integer(seed) or seed < 0:
            # NumPy's default_rng takes no negative seeds (torch's generator would wrap them).
            raise ValueError(f"DistributedSampler: seed must be a non-negative integer, got "
                             f"{seed!r}")
        self.dataset = dataset
        self.num_replicas = int(num_replicas)
        self.rank = int(rank)
        self.epoch = 0
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.drop_last = bool(drop_last)
        n = len(dataset)
        if self.drop_last and n % self.num_replicas != 0:
            # Cut to the largest multiple of num_replicas below n, so no rank gets padding.
            self.num_samples = math.ceil((n - self.num_replicas) / self.num_replicas)
        else:
            self.num_samples = math.ceil(n / self.num_replicas)
        self.total_size = self.num_samples * self.num_replicas
        self._dataset_len = n

    def set_epoch(self, epoch: int) -> None:
        """Set the epoch whose order the next pass yields (the permutation's seed is seed + epoch).

        Call it before each epoch, with the same value on every rank: the ranks' shares are
        disjoint only when all of them permute with the same seed.

        Args:
            epoch: a non-negative integer, usually the epoch's number.

        Returns:
            None.

        Example:
            >>> sampler.set_epoch(3)
            >>> list(sampler) == list(sampler)    # the same order until the epoch changes
            True
        """
        if not _integer(epoch) or epoch < 0:
            raise ValueError(f"DistributedSampler.set_epoch: epoch must be a non-negative "
                             f"integer, got {epoch!r}")
        self.epoch = int(epoch)

    def __iter__(self):
        """This rank's indices for the current epoch, as Python ints.

        Returns:
            An iterator over `len(self)` indices into the dataset.

        Raises:
            RuntimeError: the dataset's length changed since the sampler was made (the shares,
                sized then, would no longer cover it).

        Example:
            >>> list(DistributedSampler(range(10), num_replicas=3, rank=0, shuffle=False))
            [0, 3, 6, 9]
        """
        n = len(self.dataset)
        if n != self._dataset_len:
            raise RuntimeError(f"DistributedSampler: the dataset has {n} samples, but had "
                               f"{self._dataset_len} when the sampler was made; make a new one")
        if self.shuffle:
            perm = B.host_numpy().random.default_rng(self.seed + self.epoch).permutation(n)
            indices = perm.tolist()
        else:
            indices = list(range(n))
        if not self.drop_last:
            padding = self.total_size - n
            # With more ranks than samples the padding outgrows the list: repeat it whole.
            repeats = math.ceil(padding / n) if padding > n else 1
            indices += (indices * repeats)[:padding]
        else:
            indices = indices[:self.total_size]
        return iter(indices[self.rank:self.total_size:self.num_replicas])

    def __len__(self) -> int:
        """The number of indices this rank yields per epoch, the same on every rank.

        Returns:
            `num_samples`: ceil(len(dataset) / num_replicas), or with `drop_last` the floor.

        Example:
            >>> len(DistributedSampler(range(10), num_replicas=3, rank=0))
            4
        """
        return self.num_samples

    def __repr__(self) -> str:
        return (f"DistributedSampler({type(self.dataset).__name__} of {self._dataset_len}, "
                f"num_replicas={self.num_replicas}, rank={self.rank}, shuffle={self.shuffle}, "
                f"seed={self.seed}, drop_last={self.drop_last}, epoch={self.epoch})")

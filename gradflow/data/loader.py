"""DataLoader: batches from a dataset, shuffled reproducibly, each moved to its device whole."""
from __future__ import annotations

import math
import numbers

from .. import backend as B
from ..tensor import Tensor
from .dataset import TensorDataset

__all__ = ["DataLoader", "default_collate"]

_STATE_VERSION = 1
_SEED_BOUND = 2 ** 63  # epoch seeds are drawn in [0, 2**63): they fit a signed 64-bit integer


class DataLoader:
    """Iterate over a dataset in batches of tensors on a target device.

    Each pass (`for batch in loader`) is one epoch. With `shuffle=True` the sample order of an
    epoch is a permutation drawn from a generator seeded by a 64-bit *epoch seed*; the epoch seed
    comes from gradflow's CPU generator (so `gf.manual_seed(s)` makes the order reproducible, and
    the order is the same whichever device the batches go to), or from the loader's own generator
    when `seed` is given (then the order does not depend on other random draws, such as weight
    initialisation).

    How batches are made:
      * a `TensorDataset` is indexed a whole batch at a time (one gather per tensor). When its
        tensors already live on the target device, the gather runs there and nothing crosses the
        bus; otherwise the batch is gathered on the host and copied to the device once, whole.
      * any other `Dataset` is read sample by sample, stacked by `default_collate`, then copied.

    With a `sampler` (such as `DistributedSampler`, which gives each rank of a process group its
    own share of the dataset) the sampler decides which samples an epoch has and in what order:
    the loader takes `list(sampler)` when a pass starts and batches those indices, in both ways
    above. The loader then draws no order of its own, so `shuffle` must stay False.

    `state_dict()` records where the loader is (the epoch seed and the number of batches already
    handed out) and, with `seed`, its generator; `load_state_dict` on a fresh loader then yields
    exactly the remaining batches of that epoch and the same epochs after it. With the default
    generator, save gradflow's CPU generator state as well (the training example does) to get the
    same later epochs. With a sampler the state holds only the batches done: the resumed pass
    takes the sampler's order again and skips them, so give the sampler the same epoch first
    (`sampler.set_epoch(epoch)`, as on every epoch).

    Args:
        dataset: a `Dataset` (anything with `__len__` and `__getitem__`).
        batch_size: samples per batch (the last one may be smaller unless `drop_last`).
        shuffle: draw a new sample order each epoch; else samples come in index order.
        drop_last: drop the last batch when it has fewer than `batch_size` samples.
        device: where batches go; default: gradflow's default device (GRADFLOW_DEVICE), read
            at the start of each epoch.
        seed: give the loader its own generator seeded with this; default: draw epoch seeds
            from gradflow's CPU generator.
        sampler: an iterable of sample indices with `__len__` (e.g. a `DistributedSampler`);
            each pass batches `list(sampler)` in its order, and `len(loader)` counts batches of
            `len(sampler)` samples. Mutually exclusive with `shuffle=True`.

    Yields:
        For a TensorDataset, a tuple with one Tensor per dataset tensor; otherwise the collated
        sample structure (a tuple, list, dict or single Tensor).

    Example:
        >>> gf.manual_seed(0)
        >>> ds = TensorDataset(gf.randn(1000, 784), gf.randint(0, 10, (1000,)))
        >>> loader = DataLoader(ds, batch_size=100, shuffle=True)
        >>> for x, y in loader:
        ...     print(x.shape, y.shape)      # (100, 784) (100,)
    """

    def __init__(self, dataset, batch_size: int = 1, shuffle: bool = False,
                 drop_last: bool = False, device=None, seed: int | None = None,
                 sampler=None) -> None:
        if not (hasattr(dataset, "__len__") and hasattr(dataset, "__getitem__")):
            raise TypeError(f"DataLoader needs a dataset with __len__ and __getitem__, got "
                            f"{type(dataset).__name__}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) \
                or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        if sampler is not None:
            if shuffle:
                raise ValueError("sampler option is mutually exclusive with shuffle")
            if not (hasattr(sampler, "__iter__") and hasattr(sampler, "__len__")):
                raise TypeError(f"DataLoader: sampler must be an iterable of indices with "
                                f"__len__, got {type(sampler).__name__}")
        self.dataset = dataset
        self.sampler = sampler
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.device = B.get_device(device) if device is not None else None
        self._generator = None
        if seed is not None:
            self._generator = B.host_numpy().random.default_rng(int(seed))
        self._epoch_seed: int | None = None
        self._batches_done = 0
        self._in_epoch = False
        self._resume: tuple[int | None, int] | None = None

    def __len__(self) -> int:
        return self._num_batches(len(self.dataset if self.sampler is None else self.sampler))

    def _num_batches(self, n: int) -> int:
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    # --- order and state --------------------------------------------------------------------
    def _draw_epoch_seed(self) -> int:
        gen = self._generator if self._generator is not None else B.get_device("cpu").backend.rng()
        return int(gen.integers(0, _SEED_BOUND))

    @staticmethod
    def _order(n: int, epoch_seed: int):
        return B.host_numpy().random.default_rng(epoch_seed).permutation(n)

    def state_dict(self) -> dict:
        """Where the loader stands: enough for `load_state_dict` to continue exactly.

        Returns:
            A dict of plain Python values (saveable with `gf.save`): the current epoch's seed and
            the number of its batches already handed out (when an epoch is under way), the
            loader's own generator state (with `seed`), and the sizes it was made with. With a
            sampler, "sampler" is True and "sampler_len" its length, and there is no epoch seed
            (the sampler's epoch is the caller's to restore).
        """
        return {
            "version": _STATE_VERSION,
            "in_epoch": self._in_epoch,
            "epoch_seed": self._epoch_seed if self._in_epoch else None,
            "batches_done": self._batches_done if self._in_epoch else 0,
            "generator": (None if self._generator is None
                          else self._generator.bit_generator.state),
            "num_samples": len(self.dataset),
            "batch_size": self.batch_size,
            "shuffle": self.shuffle,
            "drop_last": self.drop_last,
            "sampler": self.sampler is not None,
            "sampler_len": None if self.sampler is None else len(self.sampler),
        }

    def load_state_dict(self, state: dict) -> None:
        """Continue from `state` (from `state_dict`): the next pass yields the rest of that epoch.

        Raises:
            ValueError: the state was made for another dataset size, batch size, shuffling or
                drop_last setting, or with a sampler (of another length) where this loader has
                none or one of another length (the batches would not line up), or is not a
                loader state.
        """
        if not isinstance(state, dict) or state.get("version") != _STATE_VERSION:
            what = f"keys {sorted(map(str, state))}" if isinstance(state, dict) \
                else type(state).__name__
            raise ValueError(f"not a DataLoader state of version {_STATE_VERSION}: got {what}")
        mine = {"num_samples": len(self.dataset), "batch_size": self.batch_size,
                "shuffle": self.shuffle, "drop_last": self.drop_last,
                "sampler": self.sampler is not None,
                "sampler_len": None if self.sampler is None else len(self.sampler)}
        # States saved before samplers existed have neither key: they were made without one.
        saved = {"sampler": False, "sampler_len": None, **state}
        diff = {k: (saved.get(k), v) for k, v in mine.items() if saved.get(k) != v}
        if diff:
            desc = ", ".join(f"{k}: saved {a!r}, this loader {b!r}" for k, (a, b) in diff.items())
            raise ValueError(f"DataLoader state does not fit this loader ({desc})")
        gen = state.get("generator")
        if (gen is None) != (self._generator is None):
            raise ValueError("DataLoader state: one of the saved loader and this one has its own "
                             "generator (seed=...) and the other does not; make both alike")
        if gen is not None:
            self._generator.bit_generator.state = gen
        if state["in_epoch"]:
            self._resume = (state["epoch_seed"], int(state["batches_done"]))
        else:
            self._resume = None
        self._in_epoch = False
        self._epoch_seed = None
        self._batches_done = 0

    # --- iteration ----------------------------------------------------------------------------
    def __iter__(self):
        if self._resume is not None:
            epoch_seed, start = self._resume
            self._resume = None
        else:
            epoch_seed = self._draw_epoch_seed() if self.shuffle else None
            start = 0
        if self.sampler is not None:
            order = self._sampler_order()
            n = len(order)
        else:
            n = len(self.dataset)
            order = self._order(n, epoch_seed) if self.shuffle else None
        target = self.device if self.device is not None else B.default_device()
        fetch = self._fetcher(order, target)
        self._epoch_seed, self._batches_done, self._in_epoch = epoch_seed, start, True
        nb, bs = self._num_batches(n), self.batch_size
        for b in range(start, nb):
            batch = fetch(b * bs, min(b * bs + bs, n))
            # Counted before the yield: once the caller holds batch b, a checkpoint it writes
            # must resume at b + 1.
            self._batches_done = b + 1
            yield batch
        self._in_epoch = False
        self._batches_done = 0

    def _sampler_order(self):
        np = B.host_numpy()
        order = np.asarray(list(self.sampler), dtype=B.int64)
        if order.ndim != 1:  # a sampler of batches (lists of indices) is not a sampler
            raise TypeError(f"DataLoader: the sampler must yield single indices, got items of "
                            f"shape {order.shape[1:]}")
        n = len(self.dataset)
        # A negative index would wrap around in the tensor gather instead of failing.
        bad = order[(order < 0) | (order >= n)]
        if bad.size:
            raise IndexError(f"DataLoader: the sampler yielded index {int(bad[0])}, out of range "
                             f"for a dataset of {n}")
        return order

    def _fetcher(self, order, target: B.Device):
        if isinstance(self.dataset, TensorDataset):
            return _tensor_fetcher(self.dataset.tensors, order, target)
        dataset = self.dataset

        def fetch(lo, hi):
            idx = range(lo, hi) if order is None else order[lo:hi].tolist()
            return default_collate([dataset[i] for i in idx], target)
        return fetch

    def __repr__(self) -> str:
        dev = self.device if self.device is not None else "default"
        return (f"DataLoader({type(self.dataset).__name__} of {len(self.dataset)}, "
                f"batch_size={self.batch_size}, shuffle={self.shuffle}, "
                f"drop_last={self.drop_last}, device={dev}, batches={len(self)}"
                + ("" if self.sampler is None else f", sampler={type(self.sampler).__name__}")
                + ")")


def _tensor_fetcher(tensors, order, target: B.Device):
    src = tensors[0].device
    arrays = [t.data for t in tensors]
    make = Tensor._make
    if src is target:
        # Gather on the device; the epoch's order is copied there once, not once per batch.
        idx = None if order is None else target.backend.asarray(order, index=target.index)

        def fetch(lo, hi):
            with target.backend.use(target.index):  # new arrays on this GPU, not the current
                if idx is None:
                    return tuple(make(a[lo:hi].copy(), target, False, None) for a in arrays)
                sel = idx[lo:hi]
                return tuple(make(a[sel], target, False, None) for a in arrays)
        return fetch

    def fetch(lo, hi):
        out = []
        for a in arrays:
            with src.backend.use(src.index):
                part = a[lo:hi] if order is None else a[order[lo:hi]] if src.type == "cpu" \
                    else a[src.backend.asarray(order[lo:hi], index=src.index)]
                host = src.backend.to_host(part)
            # One copy of the whole batch per tensor (asarray copies host slices too).
            out.append(make(target.backend.asarray(host, index=target.index), target, False,
                            None))
        return tuple(out)
    return fetch


def _stack(fields: list, target: B.Device, where: str):
    first = fields[0]
    if isinstance(first, Tensor):
        devs = {f.device for f in fields if isinstance(f, Tensor)}
        if len(devs) != 1 or not all(isinstance(f, Tensor) for f in fields):
            raise TypeError(f"default_collate: {where} mixes tensors from "
                            f"{', '.join(sorted(map(str, devs)))} or tensors and other values")
        dev = devs.pop()
        try:
            with dev.backend.use(dev.index):
                arr = dev.xp.stack([f.data for f in fields])
        except ValueError:
            shapes = sorted({tuple(f.shape) for f in fields})
            raise ValueError(f"default_collate: {where} has samples of different shapes "
                             f"{shapes}; they cannot be stacked into a batch") from None
        arr = B.move(arr, target, dev)
        return Tensor._make(arr, target, False, None)
    np = B.host_numpy()
    if isinstance(first, bool):
        dtype = B.bool_
    elif isinstance(first, numbers.Integral):
        dtype = B.int64
    elif isinstance(first, numbers.Real):
        dtype = B.float32
    elif B.is_array(first):
        dtype = None
        fields = [B.device_of(f).backend.to_host(f) for f in fields]
    else:
        raise TypeError(f"default_collate: {where} is a {type(first).__name__}; samples may hold "
                        "Tensors, arrays, numbers, or tuples/lists/dicts of them")
    try:
        host = np.stack([np.asarray(f, dtype=dtype) for f in fields])
    except ValueError:
        raise ValueError(f"default_collate: {where} has samples of different shapes; they cannot "
                         "be stacked into a batch") from None
    return Tensor._make(target.backend.asarray(host, index=target.index), target, False, None)


def default_collate(samples: list, device=None):
    """Stack a list of samples into one batch, field by field, on `device`.

    Tensors are stacked on their device and then moved in one copy; numbers become int64,
    float32 or bool tensors; tuples, lists and dicts are collated field by field.

    Args:
        samples: samples of one structure, e.g. `[(x0, y0), (x1, y1), ...]`.
        device: where the batch goes (default: gradflow's default device).

    Returns:
        The batch, with the samples' structure: e.g. `(X, Y)` with a new leading axis.

    Example:
        >>> default_collate([(1.0, 2), (3.0, 4)])       # (tensor([1., 3.]), tensor([2, 4]))
    """
    target = B.get_device(device)
    if not samples:
        raise ValueError("default_collate: no samples")
    return _collate(samples, target, "sample")


def _collate(samples, target, where):
    first = samples[0]
    if isinstance(first, (tuple, list)):
        if any(len(s) != len(first) for s in samples):
            raise ValueError(f"default_collate: {where}s have different lengths "
                             f"{sorted({len(s) for s in samples})}")
        out = [_collate([s[i] for s in samples], target, f"{where}[{i}]")
               for i in range(len(first))]
        return tuple(out) if isinstance(first, tuple) else out
    if isinstance(first, dict):
        return {k: _collate([s[k] for s in samples], target, f"{where}[{k!r}]") for k in first}
    return _stack(list(samples), target, where)

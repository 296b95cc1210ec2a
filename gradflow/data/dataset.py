"""Datasets: the `Dataset` protocol and `TensorDataset`, samples held as tensors side by side."""
from __future__ import annotations

from .. import backend as B
from ..tensor import Tensor

__all__ = ["Dataset", "TensorDataset"]


class Dataset:
    """A collection of samples that knows its length and returns sample `i` on `dataset[i]`.

    Subclass it and define `__len__` and `__getitem__`; a sample is a Tensor, an array, a number,
    or a tuple/list/dict of those. `DataLoader` stacks samples into batches. Datasets whose samples
    already sit in a few big tensors should use `TensorDataset`, which the loader indexes a whole
    batch at a time instead of sample by sample.

    Example:
        >>> class Squares(Dataset):
        ...     def __len__(self):
        ...         return 10
        ...     def __getitem__(self, i):
        ...         return float(i), float(i * i)
    """

    def __len__(self) -> int:
        raise NotImplementedError(f"{type(self).__name__} must define __len__")

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__} must define __getitem__")


def _as_dataset_tensor(t, i: int) -> Tensor:
    if isinstance(t, Tensor):
        return t
    if B.is_array(t):
        return Tensor._make(t, B.device_of(t), False, None)  # shared, not copied
    try:
        return Tensor(t)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"TensorDataset: argument {i} is a {type(t).__name__}, not a tensor or "
                        f"array ({exc})") from None


class TensorDataset(Dataset):
    """Samples stored as rows of tensors of equal length: sample i is `(t[i] for t in tensors)`.

    The tensors are kept as given (arrays are wrapped without a copy), on their device. A
    `DataLoader` over a TensorDataset gathers each batch with one indexing operation per tensor,
    on the device where the tensors live, so a dataset moved to the GPU with `.to("cuda")` is
    batched without any host-to-device traffic.

    Args:
        *tensors: Tensors (or NumPy/CuPy arrays) with the same first dimension, on one device.

    Raises:
        ValueError: no tensors, a 0-d tensor, lengths that differ, or tensors on several devices.

    Example:
        >>> x, y = gf.randn(100, 3), gf.randint(0, 2, (100,))
        >>> ds = TensorDataset(x, y)
        >>> len(ds), ds[0][0].shape
        (100, (3,))
    """

    def __init__(self, *tensors) -> None:
        if not tensors:
            raise ValueError("TensorDataset needs at least one tensor")
        ts = tuple(_as_dataset_tensor(t, i) for i, t in enumerate(tensors))
        for i, t in enumerate(ts):
            if t.ndim == 0:
                raise ValueError(f"TensorDataset: tensor {i} is 0-d; every tensor needs a first "
                                 "dimension indexing the samples")
        lengths = [t.shape[0] for t in ts]
        if len(set(lengths)) != 1:
            shapes = ", ".join(str(t.shape) for t in ts)
            raise ValueError(f"TensorDataset: tensors have different numbers of samples (first "
                             f"dimensions {lengths}; shapes {shapes})")
        devices = {t.device for t in ts}
        if len(devices) != 1:
            raise ValueError(f"TensorDataset: tensors live on several devices "
                             f"({', '.join(sorted(map(str, devices)))}); move them to one")
        self.tensors: tuple[Tensor, ...] = ts

    def __len__(self) -> int:
        return self.tensors[0].shape[0]

    def __getitem__(self, index):
        n = len(self)
        if isinstance(index, int) and not -n <= index < n:
            raise IndexError(f"sample index {index} is out of range for a dataset of {n} samples")
        return tuple(t[index] for t in self.tensors)

    @property
    def device(self) -> B.Device:
        """The device the tensors live on."""
        return self.tensors[0].device

    def to(self, device) -> "TensorDataset":
        """This dataset with its tensors on `device` (itself when they already are there).

        Moving a data set that fits in GPU memory once, before training, is the fastest way to
        feed a GPU: batches are then gathered on the device, with no copy per batch.
        """
        dev = B.get_device(device)
        if dev is self.device:
            return self
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        new.tensors = tuple(t.detach().to(dev) for t in self.tensors)
        return new

    def __repr__(self) -> str:
        parts = ", ".join(f"{tuple(t.shape)} {t.dtype}" for t in self.tensors)
        return f"{type(self).__name__}({len(self)} samples: {parts}; device='{self.device}')"

"""Feeding models: `Dataset`, `TensorDataset`, `DataLoader`, `DistributedSampler`, and the IDX
file reader.

    >>> from gradflow.data import TensorDataset, DataLoader
    >>> loader = DataLoader(TensorDataset(x, y), batch_size=100, shuffle=True)
"""
from .dataset import Dataset, TensorDataset
from .loader import DataLoader, default_collate
from .sampler import DistributedSampler
from .idx import IDXError, read_idx, write_idx, IMAGES_MAGIC, LABELS_MAGIC

__all__ = ["Dataset", "TensorDataset", "DataLoader", "DistributedSampler", "default_collate",
           "IDXError", "read_idx", "write_idx", "IMAGES_MAGIC", "LABELS_MAGIC"]

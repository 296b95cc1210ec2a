"""Ready-made data sets: `MNIST`, `FashionMNIST` and `MNISTSample` (5,000 digits, no download).

    >>> train = gf.datasets.MNISTSample(train=True)          # shipped with gradflow
    >>> train = gf.datasets.MNIST(train=True)                # found on disk or downloaded
"""
from .mnist import (
    MNIST, FashionMNIST, MNISTSample, DatasetNotFoundError, default_root, SAMPLE_DIR,
)
from ._download import DownloadError, ChecksumError, download

__all__ = ["MNIST", "FashionMNIST", "MNISTSample", "DatasetNotFoundError", "default_root",
           "SAMPLE_DIR", "DownloadError", "ChecksumError", "download"]

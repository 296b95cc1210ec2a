"""DataLoader and TensorDataset: batching, seeded shuffling, exact resume, devices, collation."""
import numpy as np
import pytest

import gradflow as gf
from gradflow.backend import numpy_backend
from gradflow.data import DataLoader, Dataset, TensorDataset, default_collate


def _dataset(n=23, device=None):
    x = gf.tensor(np.arange(n * 3, dtype=np.float32).reshape(n, 3), device=device)
    # Without `device`, x stays where its NumPy array is, not on the default device: y goes
    # with x, so the dataset is on one device whatever GRADFLOW_DEVICE is.
    y = gf.arange(n, device=x.device)
    return TensorDataset(x, y)


def _ids(loader):
    return [y.numpy().tolist() for _, y in loader]


# --- TensorDataset ----------------------------------------------------------------------------
def test_tensor_dataset_items_and_errors(device):
    ds = _dataset(5, device)
    assert len(ds) == 5 and ds.device is device
    x, y = ds[2]
    assert x.tolist() == [6.0, 7.0, 8.0] and y.item() == 2
    with pytest.raises(IndexError, match="sample index 5 is out of range for a dataset of 5"):
        ds[5]
    with pytest.raises(ValueError, match=r"different numbers of samples.*\[5, 4\]"):
        TensorDataset(gf.zeros(5, 2), gf.zeros(4))
    with pytest.raises(ValueError, match="at least one"):
        TensorDataset()
    with pytest.raises(ValueError, match="0-d"):
        TensorDataset(gf.tensor(1.0))


def test_tensor_dataset_wraps_arrays_without_copy():
    arr = np.arange(6, dtype=np.float32).reshape(3, 2)
    ds = TensorDataset(arr)
    assert ds.tensors[0].data is arr


def test_tensor_dataset_to_device(device):
    ds = _dataset(4)
    moved = ds.to(device)
    assert moved.device is device and ds.to(ds.device) is ds
    np.testing.assert_array_equal(moved.tensors[0].numpy(), ds.tensors[0].numpy())


# --- batching ---------------------------------------------------------------------------------
@pytest.mark.parametrize("drop_last,sizes", [(False, [5, 5, 5, 5, 3]), (True, [5, 5, 5, 5])])
def test_batch_sizes_and_order_without_shuffle(device, drop_last, sizes):
    loader = DataLoader(_dataset(23), batch_size=5, drop_last=drop_last, device=device)
    assert len(loader) == len(sizes)
    batches = list(loader)
    assert [len(y) for _, y in batches] == sizes
    assert sum(_ids(loader), []) == list(range(sum(sizes)))
    x, y = batches[1]
    assert x.device is device and y.device is device
    assert x.dtype == gf.float32 and y.dtype == gf.int64 and x.shape == (5, 3)
    np.testing.assert_array_equal(x.numpy()[:, 0], 3 * y.numpy())


def test_batches_are_copies_not_views_of_the_dataset():
    # Dataset and batches on the CPU: a batch on the dataset's own device could be a view.
    ds = _dataset(6, "cpu")
    x, _ = next(iter(DataLoader(ds, batch_size=3, device="cpu")))
    x.data[...] = -1
    assert ds.tensors[0].numpy().min() == 0


def test_shuffle_is_a_permutation_each_epoch_and_differs_between_epochs(device):
    loader = DataLoader(_dataset(23, device), batch_size=4, shuffle=True, device=device)
    e1, e2 = sum(_ids(loader), []), sum(_ids(loader), [])
    assert sorted(e1) == sorted(e2) == list(range(23))
    assert e1 != e2 and e1 != list(range(23))


def test_shuffle_reproducible_with_manual_seed_and_same_on_every_device(device):
    gf.manual_seed(123)
    a = _ids(DataLoader(_dataset(50), batch_size=7, shuffle=True, device="cpu"))
    gf.manual_seed(123)
    b = _ids(DataLoader(_dataset(50, device), batch_size=7, shuffle=True, device=device))
    gf.manual_seed(124)
    c = _ids(DataLoader(_dataset(50), batch_size=7, shuffle=True, device="cpu"))
    assert a == b and a != c


def test_own_seed_is_independent_of_other_draws():
    gf.manual_seed(0)
    a = _ids(DataLoader(_dataset(30), batch_size=5, shuffle=True, seed=7))
    gf.manual_seed(99)
    gf.randn(10, device="cpu")  # a draw from the generator a seedless loader would use
    b = _ids(DataLoader(_dataset(30), batch_size=5, shuffle=True, seed=7))
    assert a == b


def test_default_device_is_gradflows_default(device):
    prev = gf.default_device()
    gf.set_default_device(device)
    try:
        x, _ = next(iter(DataLoader(_dataset(4, "cpu"), batch_size=2)))
    finally:
        gf.set_default_device(prev)
    assert x.device is device


def test_resident_dataset_is_gathered_in_place_without_per_batch_copies(monkeypatch):
    calls = []
    real = numpy_backend.asarray
    monkeypatch.setattr(numpy_backend, "asarray", lambda *a, **k: calls.append(1) or real(*a, **k))
    loader = DataLoader(_dataset(100, "cpu"), batch_size=10, shuffle=True, device="cpu")
    assert len(list(loader)) == 10
    assert len(calls) == 1  # the epoch's order, copied to the device once


def test_validation_errors():
    with pytest.raises(ValueError, match="batch_size must be a positive integer, got 0"):
        DataLoader(_dataset(), batch_size=0)
    with pytest.raises(ValueError, match="got 2.5"):
        DataLoader(_dataset(), batch_size=2.5)
    with pytest.raises(TypeError, match="__len__ and __getitem__"):
        DataLoader(object())


# --- state and exact resume -------------------------------------------------------------------
def _take(it, k):
    return [next(it)[1].numpy().tolist() for _ in range(k)]


@pytest.mark.parametrize("seed", [None, 5])
def test_resume_mid_epoch_continues_exactly(seed):
    gf.manual_seed(3)
    ref = DataLoader(_dataset(23), batch_size=4, shuffle=True, seed=seed)
    full = [_ids(ref) for _ in range(3)]

    gf.manual_seed(3)
    first = DataLoader(_dataset(23), batch_size=4, shuffle=True, seed=seed)
    _ids(first)                                 # epoch 0, whole
    it = iter(first)
    got = _take(it, 2)                          # epoch 1, two of six batches, then "crash"
    state = first.state_dict()
    rng_state = numpy_backend.rng().bit_generator.state
    assert state["in_epoch"] and state["batches_done"] == 2

    gf.manual_seed(1000)                        # a new process: other random state
    resumed = DataLoader(_dataset(23), batch_size=4, shuffle=True, seed=seed)
    resumed.load_state_dict(state)
    numpy_backend.rng().bit_generator.state = rng_state
    rest = _ids(resumed)
    assert got + rest == full[1]
    assert _ids(resumed) == full[2]


def test_state_at_epoch_boundary_and_round_trip_through_save(tmp_path):
    loader = DataLoader(_dataset(10), batch_size=3, shuffle=True, seed=1)
    _ids(loader)
    state = loader.state_dict()
    assert not state["in_epoch"] and state["epoch_seed"] is None and state["batches_done"] == 0
    gf.save(state, tmp_path / "s.gf")
    assert gf.load(tmp_path / "s.gf") == state
    nxt = _ids(loader)
    other = DataLoader(_dataset(10), batch_size=3, shuffle=True, seed=1)
    other.load_state_dict(gf.load(tmp_path / "s.gf"))
    assert _ids(other) == nxt


def test_load_state_dict_rejects_another_configuration():
    state = DataLoader(_dataset(10), batch_size=3, shuffle=True).state_dict()
    with pytest.raises(ValueError, match="batch_size: saved 3, this loader 4"):
        DataLoader(_dataset(10), batch_size=4, shuffle=True).load_state_dict(state)
    with pytest.raises(ValueError, match="num_samples: saved 10, this loader 11"):
        DataLoader(_dataset(11), batch_size=3, shuffle=True).load_state_dict(state)
    with pytest.raises(ValueError, match="own generator"):
        DataLoader(_dataset(10), batch_size=3, shuffle=True, seed=1).load_state_dict(state)
    with pytest.raises(ValueError, match="not a DataLoader state"):
        DataLoader(_dataset(10), batch_size=3).load_state_dict({"epoch": 1})


# --- generic datasets and collation -----------------------------------------------------------
class _Squares(Dataset):
    def __len__(self):
        return 7

    def __getitem__(self, i):
        return {"x": gf.tensor([float(i), 1.0]), "y": i * i, "w": 0.5, "ok": i % 2 == 0}


def test_generic_dataset_is_collated_field_by_field(device):
    loader = DataLoader(_Squares(), batch_size=3, device=device)
    batches = list(loader)
    assert [b["x"].shape for b in batches] == [(3, 2), (3, 2), (1, 2)]
    b = batches[1]
    assert b["x"].device is device and b["y"].device is device
    assert b["y"].dtype == gf.int64 and b["w"].dtype == gf.float32 and b["ok"].dtype == gf.bool
    assert b["y"].tolist() == [9, 16, 25] and b["ok"].tolist() == [False, True, False]


def test_collate_errors_name_the_field():
    with pytest.raises(ValueError, match=r"sample\[0\] has samples of different shapes"):
        default_collate([(gf.zeros(2),), (gf.zeros(3),)], "cpu")
    with pytest.raises(TypeError, match=r"sample\[1\] is a str"):
        default_collate([(1, "a"), (2, "b")], "cpu")
    with pytest.raises(ValueError, match="different lengths"):
        default_collate([(1, 2), (1,)], "cpu")


def test_base_dataset_must_be_subclassed():
    with pytest.raises(NotImplementedError, match="must define __len__"):
        len(Dataset())

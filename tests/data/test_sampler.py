"""DistributedSampler: PyTorch's shares, padding and epochs; DataLoader(sampler=...) and resume."""
import math
import sys
import types

import numpy as np
import pytest

import gradflow
import gradflow as gf
from gradflow.data import DataLoader, Dataset, DistributedSampler, TensorDataset


def _shards(n, replicas, **kw):
    return [list(DistributedSampler(range(n), num_replicas=replicas, rank=r, **kw))
            for r in range(replicas)]


# --- shares -----------------------------------------------------------------------------------
@pytest.mark.parametrize("shuffle", [False, True])
def test_shares_are_disjoint_and_cover_the_dataset_when_it_divides(shuffle):
    shards = _shards(12, 4, shuffle=shuffle)
    assert [len(s) for s in shards] == [3, 3, 3, 3]
    assert len(DistributedSampler(range(12), num_replicas=4, rank=0)) == 3
    flat = sum(shards, [])
    assert sorted(flat) == list(range(12))  # no index twice, none missing
    assert all(type(i) is int for i in flat)


def test_padding_repeats_the_first_indices_when_it_does_not_divide():
    shards = _shards(10, 3, shuffle=False)
    # num_samples = ceil(10 / 3) = 4, total 12: the order 0..9 padded with 0, 1.
    assert shards == [[0, 3, 6, 9], [1, 4, 7, 0], [2, 5, 8, 1]]
    flat = sum(shards, [])
    assert len(flat) == 12 and set(flat) == set(range(10))
    assert sorted(flat) == sorted(list(range(10)) + [0, 1])


def test_shuffled_padding_repeats_the_first_indices_of_the_permutation():
    shards = _shards(10, 3, shuffle=True, seed=4)
    perm = np.random.default_rng(4).permutation(10).tolist()
    padded = perm + perm[:2]
    assert shards == [padded[0:12:3], padded[1:12:3], padded[2:12:3]]
    assert set(sum(shards, [])) == set(range(10))


def test_drop_last_cuts_the_tail():
    shards = _shards(10, 3, shuffle=False, drop_last=True)
    # num_samples = ceil((10 - 3) / 3) = 3, total 9: sample 9 is dropped.
    assert shards == [[0, 3, 6], [1, 4, 7], [2, 5, 8]]
    assert len(set(sum(shards, []))) == 9
    s = DistributedSampler(range(10), num_replicas=3, rank=0, drop_last=True)
    assert len(s) == s.num_samples == 3 and s.total_size == 9
    # When it divides, drop_last changes nothing.
    assert _shards(9, 3, shuffle=False, drop_last=True) == _shards(9, 3, shuffle=False)


def test_padding_longer_than_the_dataset_repeats_it_whole():
    # n=2, 5 replicas: total 5, padding 3 > 2, so [0, 1] + ([0, 1] * 2)[:3].
    assert _shards(2, 5, shuffle=False) == [[0], [1], [0], [1], [0]]
    perm = np.random.default_rng(9).permutation(2).tolist()
    padded = perm + (perm * 2)[:3]
    assert _shards(2, 5, seed=9) == [[i] for i in padded]
    # drop_last with fewer samples than ranks: ceil((2 - 5) / 5) = 0 samples each.
    assert _shards(2, 5, drop_last=True) == [[]] * 5


def test_matches_pytorchs_algorithm_for_a_shuffled_case():
    # n=7, 3 replicas, seed 5, epoch 2: permutation seeded 7, num_samples 3, total 9.
    s = DistributedSampler(range(7), num_replicas=3, rank=2, seed=5)
    s.set_epoch(2)
    perm = np.random.default_rng(7).permutation(7).tolist()
    assert list(s) == (perm + perm[:2])[2:9:3]


def test_shuffle_false_is_the_strided_order():
    assert list(DistributedSampler(range(20), num_replicas=4, rank=3, shuffle=False)) == \
        [3, 7, 11, 15, 19]


# --- epochs -----------------------------------------------------------------------------------
def test_set_epoch_changes_the_order_and_same_seed_and_epoch_agree():
    a = DistributedSampler(range(50), num_replicas=2, rank=0, seed=3)
    b = DistributedSampler(range(50), num_replicas=2, rank=0, seed=3)
    e0 = list(a)
    assert list(a) == e0 == list(b)  # the same until the epoch changes
    a.set_epoch(1)
    e1 = list(a)
    assert e1 != e0 and a.epoch == 1
    b.set_epoch(1)
    assert list(b) == e1
    c = DistributedSampler(range(50), num_replicas=2, rank=0, seed=4)
    assert list(c) != e0
    # Every epoch the two ranks still split the dataset.
    other = DistributedSampler(range(50), num_replicas=2, rank=1, seed=3)
    other.set_epoch(1)
    assert sorted(e1 + list(other)) == list(range(50))


# --- errors -----------------------------------------------------------------------------------
def test_validation_errors():
    with pytest.raises(ValueError,
                       match=r"Invalid rank 3, rank should be in the interval \[0, 1\]"):
        DistributedSampler(range(4), num_replicas=2, rank=3)
    with pytest.raises(ValueError, match=r"Invalid rank -1, .*\[0, 1\]"):
        DistributedSampler(range(4), num_replicas=2, rank=-1)
    with pytest.raises(ValueError, match="num_replicas must be a positive integer, got 0"):
        DistributedSampler(range(4), num_replicas=0, rank=0)
    with pytest.raises(ValueError, match="num_replicas must be a positive integer, got 1.5"):
        DistributedSampler(range(4), num_replicas=1.5, rank=0)
    with pytest.raises(ValueError, match="seed must be a non-negative integer, got -1"):
        DistributedSampler(range(4), num_replicas=1, rank=0, seed=-1)
    with pytest.raises(TypeError, match="__len__, got object"):
        DistributedSampler(object(), num_replicas=1, rank=0)
    s = DistributedSampler(range(4), num_replicas=1, rank=0)
    with pytest.raises(ValueError, match="epoch must be a non-negative integer, got 1.0"):
        s.set_epoch(1.0)


def test_a_dataset_that_changed_length_is_refused():
    data = list(range(6))
    s = DistributedSampler(data, num_replicas=2, rank=0)
    data.append(6)
    with pytest.raises(RuntimeError, match="has 7 samples, but had 6"):
        list(s)


def _fake_dist(monkeypatch, initialized, world=4, rank=2):
    fake = types.ModuleType("gradflow.distributed")
    fake.is_initialized = lambda: initialized
    fake.get_world_size = lambda: world
    fake.get_rank = lambda: rank
    # `from .. import distributed` reads the package attribute first, then sys.modules.
    monkeypatch.setitem(sys.modules, "gradflow.distributed", fake)
    monkeypatch.setattr(gradflow, "distributed", fake, raising=False)


def test_no_process_group_is_an_error(monkeypatch):
    _fake_dist(monkeypatch, initialized=False)
    with pytest.raises(RuntimeError, match=r"no process group is initialized: call "
                       r"gradflow\.distributed\.init_process_group\(\) first"):
        DistributedSampler(range(8))
    with pytest.raises(RuntimeError, match="pass num_replicas= and rank="):
        DistributedSampler(range(8), num_replicas=2)


def test_defaults_come_from_the_process_group(monkeypatch):
    _fake_dist(monkeypatch, initialized=True, world=4, rank=2)
    s = DistributedSampler(range(8), shuffle=False)
    assert (s.num_replicas, s.rank) == (4, 2) and list(s) == [2, 6]
    s = DistributedSampler(range(8), rank=1, shuffle=False)
    assert (s.num_replicas, s.rank) == (4, 1)
    _fake_dist(monkeypatch, initialized=True, world=2, rank=5)
    with pytest.raises(ValueError, match="Invalid rank 5"):
        DistributedSampler(range(8))


def test_explicit_values_need_no_process_group(monkeypatch):
    monkeypatch.setitem(sys.modules, "gradflow.distributed", None)  # as if it could not import
    monkeypatch.delattr(gradflow, "distributed", raising=False)
    assert len(DistributedSampler(range(8), num_replicas=2, rank=0)) == 4
    with pytest.raises(ImportError):
        DistributedSampler(range(8))


# --- DataLoader with a sampler ----------------------------------------------------------------
def _dataset(n, device=None):
    x = gf.tensor(np.arange(n * 3, dtype=np.float32).reshape(n, 3), device=device)
    return TensorDataset(x, gf.arange(n, device=x.device))


class _Squares(Dataset):
    def __len__(self):
        return 11

    def __getitem__(self, i):
        return float(i), i * i


def _chunks(seq, size):
    return [seq[i:i + size] for i in range(0, len(seq), size)]


def test_loader_batches_a_tensor_dataset_in_the_samplers_order(device):
    ds = _dataset(23, device)
    sampler = DistributedSampler(ds, num_replicas=3, rank=2, shuffle=False)
    loader = DataLoader(ds, batch_size=4, sampler=sampler, device=device)
    assert len(loader) == 2
    batches = list(loader)
    # Rank 2 of 3 over 23 samples (padded to 24 with index 0).
    assert [y.numpy().tolist() for _, y in batches] == [[2, 5, 8, 11], [14, 17, 20, 0]]
    x, y = batches[1]
    assert x.device is device and y.device is device and x.shape == (4, 3)
    np.testing.assert_array_equal(x.numpy()[:, 0], 3 * y.numpy())


@pytest.mark.parametrize("drop_last", [False, True])
def test_loader_follows_a_shuffled_sampler_each_epoch(device, drop_last):
    ds = _dataset(50, device)
    sampler = DistributedSampler(ds, num_replicas=4, rank=1, seed=2)
    loader = DataLoader(ds, batch_size=5, sampler=sampler, device=device, drop_last=drop_last)
    assert len(sampler) == 13 and len(loader) == (2 if drop_last else 3)
    for epoch in range(2):
        sampler.set_epoch(epoch)
        want = _chunks(list(sampler), 5)[:len(loader)]
        got = [y.numpy().tolist() for _, y in loader]
        assert got == want and [len(b) for b in got] == ([5, 5] if drop_last else [5, 5, 3])


def test_loader_reads_a_plain_dataset_in_the_samplers_order(device):
    sampler = DistributedSampler(_Squares(), num_replicas=2, rank=1, seed=1)
    loader = DataLoader(_Squares(), batch_size=4, sampler=sampler, device=device)
    assert len(loader) == math.ceil(6 / 4) == 2
    order = list(sampler)
    batches = list(loader)
    assert [b[0].shape for b in batches] == [(4,), (2,)]
    assert sum((b[0].tolist() for b in batches), []) == [float(i) for i in order]
    assert sum((b[1].tolist() for b in batches), []) == [i * i for i in order]
    assert batches[0][0].device is device


def test_a_plain_list_of_indices_is_a_sampler():
    loader = DataLoader(_dataset(10), batch_size=2, sampler=[9, 0, 4])
    assert [y.numpy().tolist() for _, y in loader] == [[9, 0], [4]]
    assert "sampler=list" in repr(loader)


def test_loader_sampler_errors():
    ds = _dataset(10)
    sampler = DistributedSampler(ds, num_replicas=2, rank=0)
    with pytest.raises(ValueError, match="sampler option is mutually exclusive with shuffle"):
        DataLoader(ds, batch_size=2, shuffle=True, sampler=sampler)
    with pytest.raises(TypeError, match="iterable of indices with __len__, got int"):
        DataLoader(ds, sampler=3)
    with pytest.raises(IndexError, match="index 10, out of range for a dataset of 10"):
        list(DataLoader(ds, sampler=[1, 10]))
    with pytest.raises(IndexError, match="index -1"):
        list(DataLoader(ds, sampler=[-1]))


# --- resume -----------------------------------------------------------------------------------
def _ids(loader):
    return [y.numpy().tolist() for _, y in loader]


@pytest.mark.parametrize("tensor_dataset", [True, False])
def test_resume_mid_epoch_yields_exactly_the_remaining_batches(tensor_dataset):
    def make():
        ds = _dataset(23) if tensor_dataset else _Squares()
        sampler = DistributedSampler(ds, num_replicas=2, rank=1, seed=8)
        return sampler, DataLoader(ds, batch_size=2, sampler=sampler)

    def ids(loader):
        return [b[1].numpy().tolist() for b in loader]

    sampler, ref = make()
    sampler.set_epoch(5)
    full = ids(ref)
    assert len(full) == len(ref) >= 3

    sampler, first = make()
    sampler.set_epoch(5)
    it = iter(first)
    got = [next(it)[1].numpy().tolist() for _ in range(2)]  # two batches, then "crash"
    state = first.state_dict()
    assert state["in_epoch"] and state["batches_done"] == 2 and state["epoch_seed"] is None
    assert state["sampler"] is True and state["sampler_len"] == len(sampler)

    sampler, resumed = make()
    resumed.load_state_dict(state)
    sampler.set_epoch(5)                        # the user restores the sampler's epoch
    assert got + ids(resumed) == full
    assert ids(resumed) == full                 # the next pass is whole again


def test_state_with_a_sampler_is_refused_by_a_loader_without_one_and_vice_versa():
    ds = _dataset(10)
    with_sampler = DataLoader(ds, batch_size=2,
                              sampler=DistributedSampler(ds, num_replicas=2, rank=0))
    state = with_sampler.state_dict()
    with pytest.raises(ValueError, match="sampler: saved True, this loader False"):
        DataLoader(ds, batch_size=2).load_state_dict(state)
    with pytest.raises(ValueError, match="sampler: saved False, this loader True"):
        with_sampler.load_state_dict(DataLoader(ds, batch_size=2).state_dict())
    other_len = DataLoader(ds, batch_size=2,
                           sampler=DistributedSampler(ds, num_replicas=5, rank=0))
    with pytest.raises(ValueError, match="sampler_len: saved 5, this loader 2"):
        other_len.load_state_dict(state)


def test_a_state_saved_before_samplers_still_loads():
    state = DataLoader(_dataset(10), batch_size=3).state_dict()
    del state["sampler"], state["sampler_len"]
    loader = DataLoader(_dataset(10), batch_size=3)
    loader.load_state_dict(state)
    assert len(_ids(loader)) == 4

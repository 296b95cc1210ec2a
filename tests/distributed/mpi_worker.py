"""One rank of the distributed tests: `mpiexec -n 2 python mpi_worker.py SCENARIO OUT_DIR`.

Each rank writes what it saw to OUT_DIR/rank{r}.json; test_distributed.py reads both and checks
them. The scenarios: collectives, sampler, ddp (training equals one process on the whole batch),
ddp_details (unused parameters, no_sync, checkpoints, mismatched models), nccl_fake (the NCCL
group on two fake GPUs), timeout, uncaught.
"""
import json
import os
import sys
import time
import types
from pathlib import Path

import numpy as np
from pytest import MonkeyPatch

import gradflow as gf
import gradflow.distributed as dist
from gradflow.data import DataLoader, DistributedSampler, TensorDataset
from gradflow.nn.parallel import DistributedDataParallel as DDP

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for the fake GPU
import _fake_gpu  # noqa: E402

F = gf.nn.functional


def _error(fn):
    """Run fn; return (exception type name, message), or None when it raised nothing."""
    try:
        fn()
    except Exception as exc:  # noqa: BLE001 - the test inspects whatever was raised
        return [type(exc).__name__, str(exc)]
    return None


def collectives(r, n):
    out = {}
    t = gf.tensor([r + 1.0, -(r + 1.0)])
    dist.all_reduce(t)
    out["sum"] = t.tolist()
    for op in ("max", "min", "product", "avg"):
        t = gf.tensor([r + 2.0], dtype=gf.float64)
        dist.all_reduce(t, op=op)
        out[op] = t.tolist()
    t = gf.tensor([r + 1, 10], dtype=gf.int64)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    out["int_sum"] = t.tolist()
    t = gf.full((2, 3), float(r))
    dist.broadcast(t, src=n - 1)
    out["broadcast"] = t.tolist()
    base = gf.zeros(6)
    view = base[::2]
    view.data[...] = r + 1.0
    dist.all_reduce(view)
    out["strided"] = base.tolist()
    x = gf.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    dist.all_reduce(x)
    out["stale_backward"] = _error(y.backward)
    dist.barrier()
    box = [{"from": r}, r]
    dist.broadcast_object_list(box, src=0)
    out["objects"] = box
    out["shape_mismatch"] = _error(lambda: dist.all_reduce(gf.zeros(2 + r)))
    out["dtype_mismatch"] = _error(
        lambda: dist.all_reduce(gf.zeros(2, dtype=gf.float32 if r == 0 else gf.float64)))
    out["call_mismatch"] = _error(
        lambda: dist.all_reduce(gf.zeros(2)) if r == 0 else dist.broadcast(gf.zeros(2)))
    out["bool"] = _error(lambda: dist.all_reduce(gf.zeros(2, dtype=gf.bool_)))
    out["avg_int"] = _error(lambda: dist.all_reduce(gf.zeros(2, dtype=gf.int64), op="avg"))
    out["bad_op"] = _error(lambda: dist.all_reduce(gf.zeros(2), op="mean"))
    out["bad_src"] = _error(lambda: dist.broadcast(gf.zeros(2), src=n))
    out["not_tensor"] = _error(lambda: dist.all_reduce([1.0, 2.0]))
    t = gf.ones(3)
    dist.all_reduce(t)  # the group still works after all those errors
    out["after_errors"] = t.tolist()
    out["rank"], out["world"], out["backend"] = dist.get_rank(), dist.get_world_size(), \
        dist.get_backend()
    return out


class _Items(gf.data.Dataset):
    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return gf.tensor(float(i))


def sampler(r, n):
    out = {}
    for size in (10, 12, 13):
        for drop_last in (False, True):
            s = DistributedSampler(range(size), shuffle=True, seed=3, drop_last=drop_last)
            s.set_epoch(1)
            mine = list(s)
            counts = gf.zeros(size, dtype=gf.int64)
            np.add.at(counts.data, mine, 1)
            dist.all_reduce(counts)
            lengths = gf.zeros(n, dtype=gf.int64)
            lengths.data[r] = len(mine)
            dist.all_reduce(lengths)
            out[f"{size}/{drop_last}"] = {"counts": counts.tolist(), "lengths": lengths.tolist(),
                                          "len": len(s)}
    s = DistributedSampler(_Items(11), shuffle=False)
    loader = DataLoader(_Items(11), batch_size=2, sampler=s)
    out["loader"] = [b.tolist() for b in loader]
    return out


def _train(optimizer, r, n, steps=5, global_batch=16):
    """DDP on rank r's share of each batch, and one model on the whole batch, side by side."""
    gf.manual_seed(100 + r)  # each rank starts from other weights: DDP must take rank 0's
    model = gf.nn.MLP([6, 16, 16, 4])
    ddp = DDP(model)
    gf.manual_seed(100)
    ref = gf.nn.MLP([6, 16, 16, 4])
    opts = [optimizer(ddp.parameters()), optimizer(ref.parameters())]
    share = global_batch // n
    for step in range(steps):
        gf.manual_seed(7 + step)
        x, y = gf.randn(global_batch, 6), gf.randint(0, 4, (global_batch,))
        mine = slice(r * share, (r + 1) * share)
        for net, opt, xb, yb in ((ddp, opts[0], x[mine], y[mine]), (ref, opts[1], x, y)):
            opt.zero_grad()
            F.cross_entropy(net(xb), yb).backward()
            gf.optim.clip_grad_norm_(net.parameters(), max_norm=0.5)
            opt.step()
    ours = np.concatenate([p.numpy().ravel() for p in model.parameters()])
    theirs = np.concatenate([p.numpy().ravel() for p in ref.parameters()])
    rank0 = gf.tensor(ours.copy())
    dist.broadcast(rank0, src=0)
    return {"max_diff_to_one_process": float(np.abs(ours - theirs).max()),
            "max_diff_to_rank0": float(np.abs(ours - rank0.numpy()).max()),
            "moved": float(np.abs(theirs - _initial()).max())}


def _initial():
    gf.manual_seed(100)
    return np.concatenate([p.numpy().ravel() for p in gf.nn.MLP([6, 16, 16, 4]).parameters()])


def ddp(r, n):
    optimizers = {
        "Adam": lambda ps: gf.optim.Adam(ps, lr=1e-2),
        "AdamW": lambda ps: gf.optim.AdamW(ps, lr=1e-2, weight_decay=0.1),
        "SGD": lambda ps: gf.optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=1e-3),
        "RMSprop": lambda ps: gf.optim.RMSprop(ps, lr=1e-2),
    }
    return {name: _train(make, r, n) for name, make in optimizers.items()}


class _Branchy(gf.nn.Module):
    def __init__(self, use_extra):
        super().__init__()
        self.body = gf.nn.Linear(3, 2)
        self.extra = gf.nn.Linear(3, 2)
        self.never = gf.nn.Linear(3, 2)
        self.use_extra = use_extra

    def forward(self, x):
        y = self.body(x)
        return y + self.extra(x) if self.use_extra else y


def _grads(module):
    return {k: (None if p.grad is None else p.grad.tolist())
            for k, p in module.named_parameters()}


def ddp_details(r, n):
    out = {}
    gf.manual_seed(1)
    branchy = DDP(_Branchy(use_extra=(r == 0)))
    gf.manual_seed(20 + r)
    branchy(gf.randn(4, 3)).sum().backward()
    out["unused_grads"] = _grads(branchy)
    gf.manual_seed(1)
    alone = _Branchy(use_extra=True)
    gf.manual_seed(20)
    alone(gf.randn(4, 3)).sum().backward()
    out["rank0_local_extra_grad"] = alone.extra.weight.grad.tolist()

    gf.manual_seed(3)
    model = DDP(gf.nn.MLP([3, 5, 2]))
    gf.manual_seed(30 + r)
    x1, x2 = gf.randn(4, 3), gf.randn(4, 3)
    with model.no_sync():
        model(x1).sum().backward()
    out["after_no_sync"] = _grads(model)
    model(x2).sum().backward()
    out["after_sync"] = _grads(model)

    sd = model.state_dict()
    out["state_keys"] = list(sd)
    plain = gf.nn.MLP([3, 5, 2])
    plain.load_state_dict(sd)
    prefixed = {"module." + k: v * 2 for k, v in sd.items()}
    model.load_state_dict(prefixed)
    out["prefixed_loaded"] = bool(np.allclose(model.module[0].weight.numpy(),
                                              2 * plain[0].weight.numpy()))
    out["parameter_names"] = [k for k, _ in model.named_parameters()]

    gf.manual_seed(4)
    out["module_mismatch"] = _error(lambda: DDP(gf.nn.MLP([3, 5 + r, 2])))
    out["bad_device_ids"] = _error(lambda: DDP(gf.nn.Linear(2, 2), device_ids=[0]))
    return out


def timeout(r, n):
    if r == 1:
        time.sleep(60)  # never joins the barrier: rank 0's watchdog must end the run
    dist.barrier()
    return {}


def uncaught(r, n):
    if r == 1:
        raise ValueError("rank 1 fails on purpose")
    dist.barrier()  # would wait forever for rank 1 without the abort on uncaught exceptions
    return {}


class _FakeNCCL:
    """Stands in for gradflow.backend.nccl on fake GPUs: each call reduces the fake arrays'
    host memory over MPI, so the NCCL group's own logic runs on two real processes."""

    uids = []

    @staticmethod
    def unique_id():
        return os.urandom(128)

    class Communicator:
        def __init__(self, world_size, uid, rank, index):
            from mpi4py import MPI
            self.MPI, self.index = MPI, index
            _FakeNCCL.uids.append((world_size, uid.hex(), rank, index))

        def all_reduce(self, array, op):
            assert isinstance(array, _fake_gpu.FakeGPUArray) and array.device_id == self.index
            ops = {"sum": self.MPI.SUM, "max": self.MPI.MAX, "min": self.MPI.MIN,
                   "product": self.MPI.PROD}
            self.MPI.COMM_WORLD.Allreduce(self.MPI.IN_PLACE, array.view(np.ndarray), ops[op])

        def broadcast(self, array, root):
            assert isinstance(array, _fake_gpu.FakeGPUArray) and array.device_id == self.index
            self.MPI.COMM_WORLD.Bcast(array.view(np.ndarray), root=root)

        def destroy(self):
            pass


def _install_fake_nccl():
    import gradflow.backend
    _fake_gpu.install(MonkeyPatch())
    module = types.ModuleType("gradflow.backend.nccl")
    module.unique_id, module.Communicator = _FakeNCCL.unique_id, _FakeNCCL.Communicator
    sys.modules["gradflow.backend.nccl"] = module
    gradflow.backend.nccl = module
    os.environ["GRADFLOW_DEVICE"] = "cuda"  # every rank says cuda; each must get its own GPU


def nccl_fake(r, n):
    out = {"backend": dist.get_backend(), "default": str(gf.default_device()),
           "uid": _FakeNCCL.uids}
    t = gf.tensor([r + 1.0, 2.0])
    dist.all_reduce(t, op="avg")
    out["avg"], out["avg_device"] = t.tolist(), str(t.device)
    t = gf.full((3,), float(r))
    dist.broadcast(t, src=1)
    out["broadcast"] = t.tolist()
    out["cpu_tensor"] = _error(lambda: dist.all_reduce(gf.ones(2, device="cpu")))
    other = f"cuda:{1 - r}"
    out["other_gpu"] = _error(lambda: dist.all_reduce(gf.ones(2, device=other)))
    dist.barrier()
    gf.manual_seed(5 + r)
    model = DDP(gf.nn.MLP([3, 4, 2]))
    gf.manual_seed(6 + r)
    model(gf.randn(2, 3)).sum().backward()
    out["grads"] = _grads(model)
    out["param_device"] = str(next(model.parameters()).device)
    return out


def main():
    scenario, out_dir = sys.argv[1], Path(sys.argv[2])
    if scenario == "nccl_fake":
        _install_fake_nccl()
    dist.init_process_group(timeout=3 if scenario == "timeout" else 60)
    r, n = dist.get_rank(), dist.get_world_size()
    result = globals()[scenario](r, n)
    dist.destroy_process_group()
    (out_dir / f"rank{r}.json").write_text(json.dumps(result))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""The NCCL backend of gradflow.distributed on one GPU: a group of one process, no launcher.

Run by scripts/gpu-proof.sh (stage `nccl`). One GPU cannot hold two NCCL ranks, so this checks
what one rank can: NCCL's communicator made from a unique id sent over MPI, all_reduce (sum and
avg) and broadcast of CUDA tensors on the current stream, a CPU tensor refused, and a
DistributedDataParallel training step on the GPU. Prints PASS or FAIL (exit 1); prints
"NOT RUN: ..." and exits 0 where mpi4py or libnccl is missing.

    GRADFLOW_DEVICE=cuda python scripts/nccl_one_gpu.py
"""
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import gradflow as gf  # noqa: E402


def main() -> int:
    os.environ.setdefault("GRADFLOW_DEVICE", "cuda")
    try:
        import gradflow.distributed as dist
        dist.init_process_group("nccl", timeout=60)
    except ImportError as exc:  # no mpi4py
        print(f"NOT RUN: {exc}")
        return 0
    except Exception as exc:  # noqa: BLE001 - reported, as the stage's result
        if "NCCL is not usable" in str(exc):
            print(f"NOT RUN: {exc}")
            return 0
        raise
    failures = []
    t = gf.tensor([1.0, 2.0], device="cuda")
    dist.all_reduce(t)
    dist.all_reduce(t, op="avg")
    dist.broadcast(t, src=0)
    if t.device.type != "cuda" or t.tolist() != [1.0, 2.0]:
        failures.append(f"all_reduce/broadcast on one rank changed the values: {t.tolist()}")
    try:
        dist.all_reduce(gf.ones(2, device="cpu"))
        failures.append("a CPU tensor was accepted by the nccl backend")
    except gf.DeviceError:
        pass
    model = gf.nn.parallel.DistributedDataParallel(gf.nn.MLP([784, 100, 10], device="cuda"))
    opt = gf.optim.Adam(model.parameters())
    x, y = gf.randn(64, 784, device="cuda"), gf.randint(0, 10, (64,), device="cuda")
    for _ in range(3):
        opt.zero_grad()
        loss = gf.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
    if not loss.item() < 2.31:
        failures.append(f"the DDP step did not lower the loss: {loss.item()}")
    print(f"backend {dist.get_backend()}, world {dist.get_world_size()}, device "
          f"{gf.default_device()}, loss after 3 DDP steps {loss.item():.4f}")
    dist.destroy_process_group()
    for f in failures:
        print(f"FAIL: {f}")
    if not failures:
        print("PASS: NCCL all_reduce, broadcast and a DDP step on one GPU")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

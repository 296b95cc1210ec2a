"""A separate process that times contenders on request: PyTorch runs here, never beside NumPy.

Why a process of its own: on a machine with few cores, PyTorch's OpenMP threads and OpenBLAS's
threads both spin-wait for a while after each parallel region. In one process (or two running
at once) each library's spinning threads steal the cores the other one computes on, and a
matmul can take ten times as long; timings of either would be fiction. The report therefore runs
NumPy-backed contenders in its own process and PyTorch here, one after the other, with a pause
between them that lets the spinning stop.

Protocol: one JSON request per line on stdin, one JSON reply per line on stdout.
    request  {"mode", "group", "impl", "device", "rounds", "round_s", "warmup"}
    reply    {"timing": {...}} | {"unavailable": reason} | {"error": message}
    request  {"machine": true}  ->  {"machine": {...}}   (versions, threads of this process)
"""
from __future__ import annotations

import json
import sys
import traceback

from .timing import compare
from .workloads import Unavailable, workloads


def main() -> None:
    """Serve requests until stdin closes."""
    out = sys.stdout
    sys.stdout = sys.stderr  # nothing printed by a library may corrupt the protocol
    by_mode: dict = {}
    built: dict = {}
    numbers: dict = {}
    for line in sys.stdin:
        if not line.strip():
            continue
        req = json.loads(line)
        try:
            if req.get("machine"):
                from .machine import machine_info
                reply = {"machine": machine_info()}
            else:
                mode = req["mode"]
                if mode not in by_mode:
                    by_mode[mode] = {w.group: w for w in workloads(mode)}
                key = (mode, req["group"], req["impl"], req["device"])
                if key not in built:
                    built[key] = by_mode[mode][req["group"]].build(req["impl"], req["device"])
                name = f"{req['group']} {req['impl']}/{req['device']}"  # calibration cache key
                t = compare({name: built[key]}, rounds=req["rounds"], round_s=req["round_s"],
                            warmup=req.get("warmup", 1), numbers=numbers)[name]
                reply = {"timing": t.as_dict()}
        except Unavailable as exc:
            reply = {"unavailable": str(exc)}
        except Exception as exc:  # reported to the parent, which records it with the row
            reply = {"error": f"{type(exc).__name__}: {exc}",
                     "traceback": traceback.format_exc()}
        out.write(json.dumps(reply) + "\n")
        out.flush()


if __name__ == "__main__":
    main()

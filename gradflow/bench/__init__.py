"""gradflow.bench: the CPU-vs-GPU benchmark report and the workloads the pytest suite times.

Run it with `python -m gradflow.bench` (quick mode, a few minutes) or
`python -m gradflow.bench --mode full` (the sizes the issue names). It times each workload with
gradflow on every device present, with the same computation written by hand in NumPy (CuPy on a
GPU), and with PyTorch when installed; prints a table; and saves JSON and a PNG chart in
./bench-results/ (untracked), or where `--out DIR` says: `--out benchmarks/results` updates the
committed results on purpose.

    >>> from gradflow import bench
    >>> result = bench.run(mode="tiny", impls=("gradflow", "hand"), memory=False)
    >>> print(bench.format_table(result))
"""
from .report import (run, format_table, save_json, save_chart, chart_figure, targets,
                     default_out_dir)
from .timing import Timing, compare
from .workloads import MODES, Unavailable, Workload

# `gradflow.bench.workloads` is the module (its `workloads(mode)` lists a mode's problems).
__all__ = ["run", "format_table", "save_json", "save_chart", "chart_figure", "targets",
           "default_out_dir", "Timing", "compare", "MODES", "Unavailable", "Workload"]

"""Timing: interleaved rounds, so that every contender sees the same machine load.

A shared 2-core machine is noisy: a burst of load from elsewhere can slow one contender for a
second or two. Timing the contenders one after another would charge that burst to whoever ran
then; running them in alternating short rounds and keeping each one's best round charges it to
nobody. The best round (the minimum) is the estimate `timeit` recommends: noise only ever adds
time. The median is kept next to it for readers who want the typical figure.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import Callable

__all__ = ["Timing", "calibrate", "compare", "merge"]

_clock = time.perf_counter


@dataclass
class Timing:
    """Seconds per call of one contender.

    Attributes:
        best: the fastest round's seconds per call (the figure tables and ratios use).
        median: the median round's seconds per call.
        number: calls per round.
        rounds: seconds per call of every round, in the order they ran.
    """

    best: float
    median: float
    number: int
    rounds: list[float] = field(default_factory=list)

    def as_dict(self) -> dict:
        """A JSON-ready dict of the fields."""
        return {"best_s": self.best, "median_s": self.median, "number": self.number,
                "rounds_s": self.rounds}

    @classmethod
    def from_dict(cls, d: dict) -> "Timing":
        """The inverse of `as_dict`."""
        return cls(d["best_s"], d["median_s"], d["number"], list(d["rounds_s"]))


def merge(parts: list[Timing]) -> Timing:
    """One Timing from several runs of the same contender (their rounds pooled)."""
    if not parts:
        raise ValueError("merge: no timings to merge")
    rounds = [r for t in parts for r in t.rounds]
    return Timing(min(rounds), statistics.median(rounds), parts[-1].number, rounds)


def _time_calls(fn: Callable[[], object], number: int) -> float:
    t0 = _clock()
    for _ in range(number):
        fn()
    return _clock() - t0


def calibrate(fn: Callable[[], object], round_s: float, warmup: int = 1) -> int:
    """Calls of `fn` that fill about `round_s` seconds (at least 1), after `warmup` calls.

    Args:
        fn: the timed callable; it must do all its work before returning (a GPU workload
            synchronises its device inside `fn`).
        round_s: the wanted duration of one round.
        warmup: untimed calls first (allocator caches, BLAS thread pools, kernel compilation).
    """
    for _ in range(warmup):
        fn()
    number = 1
    while True:
        dt = _time_calls(fn, number)
        if dt >= round_s / 4 or number >= 1 << 20:
            break
        number *= 4
    return max(1, int(round(number * round_s / max(dt, 1e-9))))


def compare(contenders: dict[str, Callable[[], object]], rounds: int = 10,
            round_s: float = 0.05, warmup: int = 1,
            numbers: dict[str, int] | None = None) -> dict[str, Timing]:
    """Time several callables in interleaved rounds; return a `Timing` for each.

    Each round runs every contender `number` times back to back (its own `number`, calibrated
    to about `round_s`); the order of the contenders rotates from round to round.

    Args:
        contenders: name -> zero-argument callable doing one iteration of the workload.
        rounds: rounds per contender (at least 1).
        round_s: seconds one contender's round should take.
        warmup: untimed calls of each contender before calibration.
        numbers: a cache of calls per round by name: contenders found there are not calibrated
            again (nor warmed up), and new calibrations are stored in it.

    Returns:
        name -> Timing, in the order of `contenders`.

    Example:
        >>> t = compare({"sum": lambda: sum(range(100))}, rounds=3, round_s=0.01)
        >>> t["sum"].best > 0
        True
    """
    if rounds < 1:
        raise ValueError(f"compare: rounds must be at least 1, got {rounds}")
    names = list(contenders)
    numbers = {} if numbers is None else numbers
    for n in names:
        if n not in numbers:
            numbers[n] = calibrate(contenders[n], round_s, warmup)
    per_call: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        k = r % len(names)
        for n in names[k:] + names[:k]:
            per_call[n].append(_time_calls(contenders[n], numbers[n]) / numbers[n])
    return {n: Timing(min(v), statistics.median(v), numbers[n], v) for n, v in per_call.items()}

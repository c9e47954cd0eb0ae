"""What every bench target shares: a timed case, interleaved best-of timing, the table."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Case:
    """One timed implementation of a target: a name, a callable and the bytes it reads."""

    name: str
    fn: Callable[[], Any]
    nbytes: int
    ours: bool = False
    note: str = ""
    best: float = field(default=float("inf"))


def best_seconds(fn: Callable[[], Any], repeat: int,
                 sync: Callable[[], Any] = lambda: None) -> float:
    """Best wall seconds of ``repeat`` calls of ``fn`` after one warm-up call; ``sync`` runs
    after each call, inside the timing (a device synchronisation)."""
    fn()
    sync()
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        sync()
        best = min(best, time.perf_counter() - start)
    return best


def best_of(cases: list[Case], repeat: int, warm: bool = True) -> None:
    """Warm every case up once (unless ``warm`` is false), then time ``repeat`` interleaved
    rounds and keep each best."""
    for case in cases if warm else []:
        case.fn()
    for _ in range(repeat):
        for case in cases:
            start = time.perf_counter()
            case.fn()
            case.best = min(case.best, time.perf_counter() - start)


def print_table(title: str, cases: list[Case], out: Any) -> dict[str, float]:
    """Print one target's table; returns {name: seconds}."""
    ours = next((c for c in cases if c.ours), None)
    print(f"\n## {title}", file=out)
    print(f"{'implementation':<58} {'seconds':>9} {'GB/s':>7} {'peer/ours':>10}", file=out)
    for case in cases:
        ratio = f"{case.best / ours.best:10.2f}" if ours is not None and not case.ours else " " * 10
        gbs = case.nbytes / case.best / 1e9 if case.best > 0 else float("inf")
        label = case.name + (f" ({case.note})" if case.note else "")
        print(f"{label:<58} {case.best:9.4f} {gbs:7.2f} {ratio}", file=out)
    return {c.name: c.best for c in cases}


def skip(peer: str, why: Exception | str, out: Any) -> None:
    print(f"  [skipped {peer}: {why}]", file=out)


def interleaved_us(fns: dict[str, Callable[[], Any]], calls: int, block: int = 25,
                   budget_s: float = 30.0) -> tuple[dict[str, float], dict[str, float]]:
    """``(best, median)`` microseconds of single calls of each function.

    Timed in interleaved rounds: each round makes ``block`` consecutive calls of each function
    in turn (a stream's steady state: the same call again and again, caches warm), so a busy
    neighbour slows every implementation alike. Up to ``calls`` calls each (after one warm-up
    call each), stopping early once ``budget_s`` seconds are spent (at least 5 rounds)."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    deadline = time.perf_counter() + budget_s
    rounds = max(1, calls // block)
    for done in range(rounds):
        if done >= 5 and time.perf_counter() > deadline:
            break
        for name, fn in fns.items():
            spent = times[name]
            for _ in range(block):
                start = time.perf_counter()
                fn()
                spent.append(time.perf_counter() - start)
    best = {name: min(t) * 1e6 for name, t in times.items()}
    median = {name: sorted(t)[len(t) // 2] * 1e6 for name, t in times.items()}
    return best, median

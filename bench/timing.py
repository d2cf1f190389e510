"""Timing helpers: items per second of a repeated step after warm-up, on an injectable clock."""

from __future__ import annotations

import time
from collections.abc import Callable

Clock = Callable[[], float]


def items_per_second(
    step: Callable[[], int], warmup: int, repeats: int, clock: Clock = time.perf_counter
) -> float:
    """Call `step` `warmup` times untimed, then `repeats` times timed; items it returned per second of those."""
    if warmup < 0 or repeats < 1:
        raise ValueError(f"need warmup >= 0 and repeats >= 1, got warmup={warmup}, repeats={repeats}")
    for _ in range(warmup):
        step()
    start = clock()
    items = sum(step() for _ in range(repeats))
    elapsed = clock() - start
    if elapsed <= 0:
        raise ValueError(f"the clock did not advance over {repeats} steps: cannot compute a rate")
    return items / elapsed


def timed(call: Callable[[], object], clock: Clock = time.perf_counter) -> tuple[object, float]:
    """(`call()`'s result, seconds it took)."""
    start = clock()
    result = call()
    return result, clock() - start

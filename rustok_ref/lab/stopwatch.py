"""Timing on a shared machine: each sample on the wall clock and on this thread's CPU time,
and the figure taken from the CPU time when the timed code never waited.

On a loaded machine (a load average of 12 on 2 cores while other suites ran) wall time
charges a round during which another process held the core to whichever side was running,
and the longer side is preempted more often, so a ratio is pushed away from 1: a 1.7x cache
hit measured 5x to 9x. Preemption does not add to the thread's CPU time, so code that only
computes is judged on it. Code that waits (on Redis, PostgreSQL, another process or another
thread's GIL) gives the CPU up voluntarily, which the kernel counts; such code is judged on
the wall, where its waiting shows.
"""

from __future__ import annotations

import resource
import time

from rustok_ref.lab.benchrecord import Clock


def _voluntary_switches() -> int:
    return resource.getrusage(resource.RUSAGE_THREAD).ru_nvcsw


class Stopwatch:
    """`watch.start(); ...; watch.stop(ops)` per round; then `clock` and `samples()`."""

    def __init__(self) -> None:
        self.wall: list[float] = []
        self.cpu: list[float] = []
        self.waits = 0
        self._started = (0.0, 0.0, 0)

    def start(self) -> None:
        self._started = (time.perf_counter(), time.thread_time(), _voluntary_switches())

    def stop(self, ops: int) -> None:
        """End the round: `ops` operations since `start`, seconds per op on each clock."""
        waits, cpu, wall = _voluntary_switches(), time.thread_time(), time.perf_counter()
        wall_start, cpu_start, waits_start = self._started
        self.wall.append((wall - wall_start) / ops)
        self.cpu.append((cpu - cpu_start) / ops)
        self.waits += waits - waits_start

    @property
    def computed_only(self) -> bool:
        """Fewer voluntary switches than rounds: a stray one (a page read in) is tolerated,
        code that waits makes at least one per round."""
        return self.waits < len(self.wall)

    @property
    def clock(self) -> Clock:
        return "thread_cpu" if self.computed_only else "wall"

    def samples(self, clock: Clock | None = None) -> list[float]:
        """Seconds per op per round on `clock` (default: this watch's own)."""
        return self.cpu if (clock or self.clock) == "thread_cpu" else self.wall


def common_clock(*watches: Stopwatch) -> Clock:
    """CPU time only if every side only computed, so sides compared share one clock."""
    return "thread_cpu" if all(watch.computed_only for watch in watches) else "wall"

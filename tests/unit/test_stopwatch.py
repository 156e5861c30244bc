"""Code that only computes is judged on CPU time; code that waits, on the wall."""

from __future__ import annotations

import threading
import time

from rustok_ref.lab.stopwatch import Stopwatch, common_clock


def compute() -> int:
    return sum(range(20_000))


def timed(work, rounds: int = 5) -> Stopwatch:
    watch = Stopwatch()
    for _ in range(rounds):
        watch.start()
        work()
        watch.stop(1)
    return watch


def test_computation_is_judged_on_cpu_time() -> None:
    watch = timed(compute)
    assert watch.computed_only and watch.clock == "thread_cpu"
    assert watch.samples() is watch.cpu and len(watch.cpu) == 5


def test_waiting_is_judged_on_the_wall() -> None:
    watch = timed(lambda: time.sleep(0.002))
    assert watch.waits >= 5
    assert watch.clock == "wall" and watch.samples() is watch.wall


def test_waiting_on_another_thread_is_judged_on_the_wall() -> None:
    def join_a_worker() -> None:
        worker = threading.Thread(target=compute)
        worker.start()
        worker.join()

    assert timed(join_a_worker).clock == "wall"


def test_sides_compared_share_one_clock() -> None:
    computing, waiting = timed(compute), timed(lambda: time.sleep(0.002))
    assert common_clock(computing, computing) == "thread_cpu"
    assert common_clock(computing, waiting) == "wall"
    assert computing.samples("wall") is computing.wall

"""Crash points for test runs: `RUSTOK_CRASH_AT=<saga>:<step>:<before|after>:<execute|compensate>`
makes the process that runs the saga kill itself at that point.

Only test runs honour it: `crash_hook` returns a hook only when `RUSTOK_TEST_HOOKS=1` is set
as well, so a stray `RUSTOK_CRASH_AT` in a real deployment does nothing. The hook ends the
process with `os._exit`: no `finally` block, no commit, no connection close, no buffered
output flushed; as near to `kill -9` at a chosen line as a process can do to itself. The
exit status is `CRASH_EXIT_CODE`, so a test can tell the planned death from any other.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import NoReturn

from rustok_ref.crashpoints import CRASH_EXIT_CODE, RELAY, requested
from rustok_ref.saga.definition import CrashPoint


class CrashHook:
    """Called by the orchestrator at every crash point; exits at the configured one.

    `exit` is `os._exit` in a real run; an in-process test passes one that raises a
    `BaseException` to abandon the orchestrator mid-run instead.
    """

    def __init__(self, point: CrashPoint, *, exit: Callable[[int], NoReturn] = os._exit) -> None:
        self.point = point
        self._exit = exit

    def __call__(self, point: CrashPoint) -> None:
        if point == self.point:
            sys.stderr.write(f"crashing at {point} (RUSTOK_CRASH_AT)\n")
            sys.stderr.flush()
            self._exit(CRASH_EXIT_CODE)


def crash_hook(*, test_hooks: bool, crash_at: str | None) -> CrashHook | None:
    """The hook `RUSTOK_CRASH_AT` asks for, or None outside test runs (`RUSTOK_TEST_HOOKS`
    unset) or when no saga's point is named (`relay:<k>` is the relay's). The composition
    root passes both values."""
    point = requested(test_hooks=test_hooks, crash_at=crash_at)
    if point is None or point[0] == RELAY:
        return None
    return CrashHook(CrashPoint.parse(":".join(point)))

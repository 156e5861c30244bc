"""Crash points for test runs, shared by every component that can be killed on purpose.

`RUSTOK_CRASH_AT=<component>:<where>` names the point; it is honoured only when
`RUSTOK_TEST_HOOKS=1` is set as well, so a stray variable in a real deployment does nothing.
A planned death exits with `CRASH_EXIT_CODE`, so a test can tell it from any other.
"""

from __future__ import annotations

from typing import Final

CRASH_EXIT_CODE: Final = 86

RELAY = "relay"
"""The outbox relay's component name; any other component is a saga's name."""


def requested(*, test_hooks: bool, crash_at: str | None) -> tuple[str, str] | None:
    """(component, where) when a test run names a crash point, else None."""
    if not test_hooks or not crash_at:
        return None
    component, _, where = crash_at.partition(":")
    return component, where

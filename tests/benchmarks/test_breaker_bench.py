"""What a breaker costs per call, against its peers timed in the same rounds: pybreaker for
sync calls and rejections, purgatory's async breaker for coroutines, and a plain call or a
bare await (informational: what guarding costs at all). The review's breaker exists to make
a dead dependency cheap, so the rejection path matters as much as the closed one."""

from __future__ import annotations

import contextlib

import pybreaker
from purgatory import AsyncCircuitBreakerFactory
from purgatory.domain.model import OpenedState

from rustok_ref.errors import CircuitBreakerOpenError
from rustok_ref.lab.benchrecord import Target
from rustok_ref.resilience import BreakerConfig, CircuitBreaker

HALF = Target(value=0.5)


def answer() -> int:
    return 42


def down() -> int:
    raise ConnectionError("down")


async def answer_async() -> int:
    return 42


async def down_async() -> int:
    raise ConnectionError("down")


def closed_breaker() -> CircuitBreaker:
    return CircuitBreaker("bench", BreakerConfig(failure_threshold=5, timeout_s=3600))


def open_breaker() -> CircuitBreaker:
    breaker = closed_breaker()
    breaker.open()
    return breaker


def open_pybreaker() -> pybreaker.CircuitBreaker:
    theirs = pybreaker.CircuitBreaker(fail_max=1, reset_timeout=3600)
    # the tripping call raises the breaker's error, not ConnectionError
    with contextlib.suppress(pybreaker.CircuitBreakerError):
        theirs.call(down)
    assert theirs.current_state == pybreaker.STATE_OPEN
    return theirs


def rejection(breaker: CircuitBreaker) -> None:
    try:
        breaker.call(answer)
    except CircuitBreakerOpenError:
        return
    raise AssertionError("the breaker admitted a call while open")


def test_sync_closed_call_against_pybreaker(paired) -> None:
    ours, theirs = closed_breaker(), pybreaker.CircuitBreaker(fail_max=5, reset_timeout=3600)
    paired.sync(
        lambda: ours.call(answer),
        lambda: theirs.call(answer),
        labels=("CircuitBreaker.call, closed", "pybreaker call, closed"),
        target=HALF,
    )


def test_sync_closed_call_against_a_plain_call(paired) -> None:
    ours = closed_breaker()
    paired.sync(
        lambda: ours.call(answer),
        answer,
        labels=("CircuitBreaker.call, closed", "plain call"),
    )


def test_sync_rejection_against_pybreaker(paired) -> None:
    ours, theirs = open_breaker(), open_pybreaker()

    def pybreaker_rejection() -> None:
        try:
            theirs.call(answer)
        except pybreaker.CircuitBreakerError:
            return
        raise AssertionError("pybreaker admitted a call while open")

    paired.sync(
        lambda: rejection(ours),
        pybreaker_rejection,
        labels=("CircuitBreaker rejection", "pybreaker rejection"),
        target=HALF,
    )


def test_sync_rejection_against_a_plain_call(paired) -> None:
    ours = open_breaker()
    paired.sync(
        lambda: rejection(ours),
        answer,
        labels=("CircuitBreaker rejection", "plain call"),
    )


async def test_async_closed_call_against_purgatory(paired) -> None:
    ours, factory = closed_breaker(), AsyncCircuitBreakerFactory(default_threshold=5)
    theirs = factory("bench", ttl=3600)(answer_async)
    await paired.async_(
        lambda: ours.call_async(answer_async),
        theirs,
        labels=("CircuitBreaker.call_async, closed", "purgatory async breaker, closed"),
        target=HALF,
    )


async def test_async_closed_call_against_a_bare_await(paired) -> None:
    ours = closed_breaker()
    await paired.async_(
        lambda: ours.call_async(answer_async),
        answer_async,
        labels=("CircuitBreaker.call_async, closed", "bare await"),
    )


async def test_async_rejection_against_purgatory(paired) -> None:
    ours, factory = open_breaker(), AsyncCircuitBreakerFactory(default_threshold=1)
    theirs = factory("bench", ttl=3600)(down_async)
    with contextlib.suppress(ConnectionError):
        await theirs()  # trips it

    async def our_rejection() -> None:
        try:
            await ours.call_async(answer_async)
        except CircuitBreakerOpenError:
            return
        raise AssertionError("the breaker admitted a call while open")

    async def purgatory_rejection() -> None:
        try:
            await theirs()
        except OpenedState:
            return
        raise AssertionError("purgatory admitted a call while open")

    await paired.async_(
        our_rejection,
        purgatory_rejection,
        labels=("CircuitBreaker.call_async rejection", "purgatory async rejection"),
        target=HALF,
    )

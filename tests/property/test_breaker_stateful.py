"""The breaker against a reference model, step by step (hypothesis stateful testing).

Each call is split into `acquire` and `complete(ok|fail|slow)`, so trials overlap, finish
out of order, or never finish; the clock advances between steps. The model is a plain
re-statement of the documented rules (lists instead of rings and buckets, no lock, no
episodes objects), so a disagreement points at one or the other. After every step: trials
in flight never exceed `half_open_max_calls`, the counts add up, and the states agree; on
every call, a breaker whose open timeout has passed admits the caller.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from rustok_ref.errors import CircuitBreakerOpenError
from rustok_ref.resilience import BreakerConfig, CircuitBreaker, CircuitState, Permit


class Clock:
    def __init__(self) -> None:
        self.now = 1000.25

    def __call__(self) -> float:
        return self.now


@dataclass
class Token:
    """The model's view of one admitted call."""

    episode: int
    trial: bool
    started: float


@dataclass
class Model:
    config: BreakerConfig
    now: float
    state: str = "closed"
    episode: int = 0
    deadline: float = math.inf
    in_flight: int = 0
    half_open_successes: int = 0
    progress_at: float = 0.0
    consecutive: int = 0
    outcomes: list[tuple[float, bool, bool]] = field(default_factory=list)  # at, failed, slow
    successes: int = 0
    failures: int = 0
    rejected: int = 0
    transitions: int = 0

    def to(self, state: str) -> None:
        self.state = state
        self.episode += 1
        self.transitions += 1
        self.deadline = self.now + self.config.timeout_s if state == "open" else math.inf
        self.in_flight = self.half_open_successes = 0
        self.progress_at = self.now
        if state == "closed":
            self.consecutive = 0
            self.outcomes = []

    def acquire(self) -> Token | None:
        if self.state == "open" and self.now >= self.deadline:
            self.to("half_open")
        if self.state == "closed":
            return Token(self.episode, False, self.now)
        if self.state == "half_open":
            if self.in_flight < self.config.half_open_max_calls:
                self.in_flight += 1
                return Token(self.episode, True, self.now)
            if self.now - self.progress_at >= self.config.effective_half_open_max_wait_s:
                self.to("open")
        self.rejected += 1
        return None

    def window(self) -> list[tuple[float, bool, bool]]:
        if self.config.window == "count":
            return self.outcomes[-self.config.window_size :]
        horizon = math.floor(self.now) - self.config.window_size
        return [o for o in self.outcomes if math.floor(o[0]) > horizon]

    def complete(self, token: Token, failed: bool) -> None:
        slow_s = self.config.slow_call_duration_s
        slow = slow_s is not None and self.now - token.started >= slow_s
        if failed:
            self.failures += 1
        else:
            self.successes += 1
        current = token.episode == self.episode
        if token.trial and current:
            self.in_flight -= 1
            self.progress_at = self.now
        if not current:
            return
        if self.state == "closed":
            self.record_closed(failed, slow)
        elif token.trial:
            if failed or (slow and self.config.slow_call_rate_threshold is not None):
                self.to("open")
            else:
                self.half_open_successes += 1
                if self.half_open_successes >= self.config.success_threshold:
                    self.to("closed")

    def record_closed(self, failed: bool, slow: bool) -> None:
        config = self.config
        self.consecutive = self.consecutive + 1 if failed else 0
        if config.failure_threshold is not None and self.consecutive >= config.failure_threshold:
            self.to("open")
            return
        if not config.uses_window:
            return
        self.outcomes.append((self.now, failed, slow))
        window = self.window()
        calls = len(window)
        if calls < config.effective_minimum_calls:
            return
        failure_rate = sum(o[1] for o in window) * 100 / calls
        slow_rate = sum(o[2] for o in window) * 100 / calls
        tripped = [
            (config.failure_rate_threshold, failure_rate),
            (config.slow_call_rate_threshold, slow_rate),
        ]
        if any(threshold is not None and rate >= threshold for threshold, rate in tripped):
            self.to("open")


configs = (
    st.fixed_dictionaries(
        {
            "failure_threshold": st.none() | st.integers(1, 3),
            "success_threshold": st.integers(1, 3),
            "timeout_s": st.sampled_from([1.0, 5.0, 10.0]),
            "half_open_max_calls": st.integers(1, 3),
            "half_open_max_wait_s": st.none() | st.sampled_from([2.0, 7.5, 20.0]),
            "failure_rate_threshold": st.none() | st.sampled_from([25.0, 50.0, 100.0]),
            "slow_call_rate_threshold": st.none() | st.sampled_from([50.0, 100.0]),
            "slow_call_duration_s": st.sampled_from([0.5, 3.0]),
            "window": st.sampled_from(["count", "time"]),
            "window_size": st.integers(1, 5),
            "minimum_calls": st.integers(1, 5),
        }
    )
    .filter(
        lambda c: (
            c["failure_threshold"] is not None
            or c["failure_rate_threshold"] is not None
            or c["slow_call_rate_threshold"] is not None
        )
    )
    .map(lambda c: BreakerConfig(**c))
)


class BreakerMachine(RuleBasedStateMachine):
    breaker: CircuitBreaker
    model: Model

    def __init__(self) -> None:
        super().__init__()
        self.clock = Clock()
        self.permits: list[tuple[Permit, Token]] = []
        self.acquired = self.completed = self.refused = 0

    @initialize(config=configs)
    def build(self, config: BreakerConfig) -> None:
        self.breaker = CircuitBreaker("model", config, clock=self.clock)
        self.model = Model(config, self.clock.now, progress_at=self.clock.now)

    def advance(self, seconds: float) -> None:
        self.clock.now += seconds
        self.model.now = self.clock.now

    @rule(seconds=st.sampled_from([0.0, 0.25, 1.0, 2.5, 5.0, 12.0]))
    def tick(self, seconds: float) -> None:
        self.advance(seconds)

    @rule(calls=st.integers(1, 3))
    def acquire(self, calls: int) -> None:
        for _ in range(calls):
            self.acquire_one()

    def acquire_one(self) -> None:
        before = self.breaker.metrics()
        due = before.state is CircuitState.OPEN and before.retry_after_s == 0
        expected = self.model.acquire()
        try:
            permit = self.breaker.acquire()
        except CircuitBreakerOpenError as error:
            retry_after = error.retry_after
        else:
            retry_after = 0
        if retry_after:
            assert not due, "an open breaker past its timeout refused a caller"
            assert expected is None, "the breaker refused what the model admits"
            self.refused += 1
            return
        assert expected is not None, "the breaker admitted what the model refuses"
        assert permit.trial == expected.trial
        self.acquired += 1
        self.permits.append((permit, expected))

    @precondition(lambda self: self.permits)
    @rule(
        which=st.integers(0, 10**6),
        calls=st.integers(1, 3),
        outcome=st.sampled_from(["ok", "fail", "slow"]),
    )
    def complete(self, which: int, calls: int, outcome: str) -> None:
        for _ in range(min(calls, len(self.permits))):
            self.complete_one(self.permits.pop(which % len(self.permits)), outcome)

    def complete_one(self, call: tuple[Permit, Token], outcome: str) -> None:
        permit, token = call
        if outcome == "slow":
            slow_s = self.breaker.config.slow_call_duration_s
            assert slow_s is not None
            self.advance(max(0.0, token.started + slow_s - self.clock.now))
        failed = outcome == "fail"
        self.model.complete(token, failed)
        permit.complete(ConnectionError("down") if failed else None)
        self.completed += 1

    @rule(action=st.sampled_from(["force_open", "close"]))
    def manual(self, action: str) -> None:
        if action == "force_open":
            self.breaker.force_open()
            if self.model.state != "forced_open":
                self.model.to("forced_open")
            return
        self.breaker.close()
        if self.model.state != "closed":
            self.model.to("closed")
        else:
            self.model.consecutive = 0
            self.model.outcomes = []

    @invariant()
    def trials_in_flight_stay_within_the_limit(self) -> None:
        metrics = self.breaker.metrics()
        assert metrics.trials_in_flight <= self.breaker.config.half_open_max_calls
        if metrics.state is CircuitState.HALF_OPEN:
            assert metrics.trials_in_flight == self.model.in_flight

    @invariant()
    def counts_add_up(self) -> None:
        metrics = self.breaker.metrics()
        assert metrics.calls == self.completed
        assert self.acquired - self.completed == len(self.permits)
        assert metrics.not_permitted == self.refused == self.model.rejected
        assert (metrics.successes, metrics.failures) == (self.model.successes, self.model.failures)
        assert metrics.transitions == self.model.transitions

    @invariant()
    def states_agree(self) -> None:
        assert self.breaker.state.value == self.model.state


TestBreakerAgainstTheModel = BreakerMachine.TestCase

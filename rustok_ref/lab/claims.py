"""Every claim of the RusToK review, with the review's words and the rule that judges it.

A notebook checks a claim by id and reports a figure; the claim's rule turns the figure into
a verdict, so no verdict is ever typed in, a mistyped id fails loudly, and the scorecard can
list every claim nobody measured. The registry covers the review's two recommendation
tables, its Sprint 1 and code-base figures, its roadmap estimates, every row of its progress
table and the weak spots of its own sketches (`seed/README.md`).

Recommendation claims are measured on `rustok_ref`'s implementation of the recommendation;
figures about the Rust code are measured on a RusToK checkout at the reviewed commit
(ae9fd91); `weak.*` claims are measured on the review's sketch as ported, where "confirmed"
means the weakness is real.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Literal, TypeAlias


class Verdict(StrEnum):
    """What the evidence says about a claim."""

    CONFIRMED = "confirmed"
    REFUTED = "refuted"
    PARTIAL = "partial"
    NOT_MEASURABLE = "not-measurable"
    NOT_YET_MEASURED = "not-yet-measured"


def _finite(figure: float, what: str = "figure") -> float:
    if not math.isfinite(figure):
        raise ValueError(f"{what} must be a finite number, got {figure!r}")
    return figure


@dataclass(frozen=True, slots=True)
class AtMost:
    """Confirmed up to `limit`, partial up to `partial_limit` (if any), refuted above."""

    limit: float
    partial_limit: float | None = None

    def __post_init__(self) -> None:
        _finite(self.limit, "limit")
        if (
            self.partial_limit is not None
            and not _finite(self.partial_limit, "partial_limit") > self.limit
        ):
            raise ValueError(f"partial_limit {self.partial_limit} must exceed limit {self.limit}")

    def evaluate(self, figure: float) -> Verdict:
        if _finite(figure) <= self.limit:
            return Verdict.CONFIRMED
        if self.partial_limit is not None and figure <= self.partial_limit:
            return Verdict.PARTIAL
        return Verdict.REFUTED

    def describe(self, unit: str) -> str:
        partial = "" if self.partial_limit is None else f" (partial ≤ {self.partial_limit:g})"
        return f"≤ {self.limit:g} {unit}{partial}"


@dataclass(frozen=True, slots=True)
class AtLeast:
    """Confirmed from `limit` up, partial from `partial_limit` (if any), refuted below."""

    limit: float
    partial_limit: float | None = None

    def __post_init__(self) -> None:
        _finite(self.limit, "limit")
        if (
            self.partial_limit is not None
            and not _finite(self.partial_limit, "partial_limit") < self.limit
        ):
            raise ValueError(f"partial_limit {self.partial_limit} must be below limit {self.limit}")

    def evaluate(self, figure: float) -> Verdict:
        if _finite(figure) >= self.limit:
            return Verdict.CONFIRMED
        if self.partial_limit is not None and figure >= self.partial_limit:
            return Verdict.PARTIAL
        return Verdict.REFUTED

    def describe(self, unit: str) -> str:
        partial = "" if self.partial_limit is None else f" (partial ≥ {self.partial_limit:g})"
        return f"≥ {self.limit:g} {unit}{partial}"


@dataclass(frozen=True, slots=True)
class Equals:
    """Confirmed only at exactly `value` (counts: files, crates, tasks)."""

    value: float

    def __post_init__(self) -> None:
        _finite(self.value, "value")

    def evaluate(self, figure: float) -> Verdict:
        return Verdict.CONFIRMED if _finite(figure) == self.value else Verdict.REFUTED

    def describe(self, unit: str) -> str:
        return f"= {self.value:g} {unit}"


@dataclass(frozen=True, slots=True)
class WithinRatio:
    """For a stated figure such as "-74%": confirmed within `tolerance` of `target` (relative),
    partial within twice that, refuted beyond."""

    target: float
    tolerance: float

    def __post_init__(self) -> None:
        if _finite(self.target, "target") == 0:
            raise ValueError("target must not be 0: the deviation is relative to it")
        if not _finite(self.tolerance, "tolerance") > 0:
            raise ValueError(f"tolerance must be positive, got {self.tolerance}")

    def evaluate(self, figure: float) -> Verdict:
        deviation = abs(_finite(figure) - self.target) / abs(self.target)
        if deviation <= self.tolerance:
            return Verdict.CONFIRMED
        if deviation <= 2 * self.tolerance:
            return Verdict.PARTIAL
        return Verdict.REFUTED

    def describe(self, unit: str) -> str:
        return f"{self.target:g} {unit} ± {self.tolerance:.0%} (partial ± {2 * self.tolerance:.0%})"


@dataclass(frozen=True, slots=True)
class NotMeasurable:
    """No run of this project can measure the claim; `reason` says why."""

    reason: str

    def evaluate(self, figure: float) -> Verdict:
        _finite(figure)
        return Verdict.NOT_MEASURABLE

    def describe(self, unit: str) -> str:
        return f"not measurable: {self.reason}"


Rule: TypeAlias = AtMost | AtLeast | Equals | WithinRatio | NotMeasurable

MeasuredBy = Literal[
    "01_sprint_metrics",
    "02_tenant_cache",
    "03_circuit_breaker",
    "04_events_backpressure",
    "05_outbox",
    "06_state_machines",
    "07_saga",
    "08_feature_flags",
    "09_telemetry",
    "10_errors",
    "scenario:redis_outage",
]

Unit = Literal[
    "apps",
    "calls",
    "compensations",
    "connections",
    "counterexamples",
    "crates",
    "cyclomatic complexity",
    "days",
    "defects",
    "entries",
    "error types",
    "events",
    "files",
    "lines",
    "loads",
    "methods",
    "mismatches",
    "percent",
    "points/10",
    "queries/request",
    "requests",
    "resolvers",
    "rows",
    "steps",
    "tasks",
    "tests",
    "transitions",
    "trips",
    "violations",
    "weeks",
]

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]*\.[a-z0-9-]+")


@dataclass(frozen=True, slots=True)
class ProgressValues:
    """A row of the review's progress table, as the review writes it."""

    now: str
    after_sprint_2: str
    goal: str


@dataclass(frozen=True, slots=True)
class Claim:
    """One claim: the review's words, its stated figure, and how a run judges it.

    `figure` is the review's own number (the goal, for a progress row); `method` says what
    the measuring notebook (`measured_by`) must compute, in `unit`.
    """

    id: str
    section: str
    words_en: str
    words_ru: str | None
    rule: Rule
    figure: float | None = None
    unit: Unit | None = None
    measured_by: MeasuredBy | None = None
    method: str = ""
    progress: ProgressValues | None = None

    def __post_init__(self) -> None:
        if not _ID.fullmatch(self.id):
            raise ValueError(f"claim id {self.id!r} is not of the form group.name")
        if self.measurable and not (self.unit and self.measured_by and self.method):
            raise ValueError(f"{self.id}: a measurable claim needs a unit, measured_by, method")
        if not self.measurable and (self.measured_by or self.method):
            raise ValueError(f"{self.id}: a claim nobody can measure has no measured_by, method")

    @property
    def measurable(self) -> bool:
        return not isinstance(self.rule, NotMeasurable)

    @property
    def expectation(self) -> str:
        """The rule in words, e.g. "≤ 0 connections"."""
        return self.rule.describe(self.unit or "")

    def verdict_for(self, figure: float | None) -> Verdict:
        """The verdict a figure earns; None means nobody measured it (yet)."""
        if isinstance(self.rule, NotMeasurable):
            if figure is None:
                return Verdict.NOT_MEASURABLE
            raise ValueError(f"{self.id} is not measurable ({self.rule.reason}); report no figure")
        if figure is None:
            return Verdict.NOT_YET_MEASURED
        return self.rule.evaluate(figure)


class UnknownClaimError(LookupError):
    """A claim id that is not in the registry; the message suggests close ids."""

    def __init__(self, claim_id: str, suggestions: Sequence[str]) -> None:
        self.claim_id = claim_id
        self.suggestions = tuple(suggestions)
        hint = (
            f"; did you mean {', '.join(map(repr, self.suggestions))}?"
            if self.suggestions
            else "; no registered claim id is close to it"
        )
        super().__init__(f"unknown claim id {claim_id!r}{hint}")


def _registry(claims: Iterable[Claim]) -> Mapping[str, Claim]:
    by_id: dict[str, Claim] = {}
    for claim in claims:
        if claim.id in by_id:
            raise ValueError(f"duplicate claim id {claim.id!r}")
        by_id[claim.id] = claim
    return MappingProxyType(by_id)


def get_claim(claim_id: str) -> Claim:
    """The registered claim, or UnknownClaimError naming the id and the closest ids."""
    try:
        return CLAIMS[claim_id]
    except KeyError:
        close = difflib.get_close_matches(claim_id, CLAIMS.keys(), n=3, cutoff=0.6)
        raise UnknownClaimError(claim_id, close) from None


# Sections, as the review's headings name them.
_HEAD = "Заголовок › Статус"
_CODEBASE = "Текущее состояние › Метрики кодовой базы"
_SPRINT1 = "Текущее состояние › Завершённые улучшения (Sprint 1)"
_MATURITY = "Архитектурная зрелость (Maturity) › Текущая ситуация"
_PROBLEMS = "Архитектурная зрелость (Maturity) › Проблемы"
_P11 = "P1.1: Упростить Tenant Caching с использованием Moka"
_P12 = "P1.2: Добавить Circuit Breaker для внешних зависимостей"
_P13 = "P1.3: Type-Safe State Machines для Order/Product статусов"
_P21 = "P2.1: OpenTelemetry Integration"
_P22 = "P2.2: Increase Test Coverage (31% → 50%+)"
_T1 = "Технические улучшения › 1. Разбить rustok-core на sub-crates"
_T2 = "Технические улучшения › 2. Стандартизировать Error Handling"
_T3 = "Технические улучшения › 3. Feature Flags System"
_A1 = "Дополнительные архитектурные улучшения › 1. Saga Pattern для распределённых транзакций"
_A2 = "Дополнительные архитектурные улучшения › 2. Command/Query Separation в GraphQL"
_A3 = "Дополнительные архитектурные улучшения › 3. Event Sourcing для критичных aggregates"
_ROADMAP = "Roadmap улучшений"
_PROGRESS = "Метрики прогресса"
_WEAK = "seed/README.md › Known weak spots in the review's own sketches"

_AT_REVIEW = "in a RusToK checkout at ae9fd91 (a notebook parameter)"

_EFFORT = NotMeasurable(
    "an effort estimate for the RusToK team; no run of this project can time their work"
)
_SCORE = NotMeasurable("a reviewer's score with no stated rubric or formula")
_READINESS = NotMeasurable("a percentage with no stated checklist behind it")
_MAINTAINABILITY = NotMeasurable(
    "no stated measure; the size and complexity it is argued from are claimed and measured "
    "separately (P1.1.loc-reduction, progress.code-complexity)"
)


def _effort(claim_id: str, section: str, words_ru: str, days: float, what: str) -> Claim:
    return Claim(claim_id, section, f"{what} takes {days:g} days", words_ru, _EFFORT, days, "days")


CLAIMS: Mapping[str, Claim] = _registry(
    (
        # -- the state the review reports ------------------------------------------------
        Claim(
            "state.rust-files",
            _CODEBASE,
            "370 Rust files",
            "Файлов Rust: 370",
            Equals(370),
            370,
            "files",
            "01_sprint_metrics",
            f"*.rs files {_AT_REVIEW}",
        ),
        Claim(
            "state.rust-loc",
            _CODEBASE,
            "43,637 lines of code",
            "Строк кода: 43,637",
            WithinRatio(43_637, 0.05),
            43_637,
            "lines",
            "01_sprint_metrics",
            f"physical lines of the *.rs files {_AT_REVIEW}; the review does not say "
            "whether blank and comment lines count, hence the tolerance",
        ),
        Claim(
            "state.crates",
            _CODEBASE,
            "23 crates",
            "Модулей (crates): 23",
            Equals(23),
            23,
            "crates",
            "01_sprint_metrics",
            f"folders with a Cargo.toml {_AT_REVIEW}, the workspace root excluded",
        ),
        Claim(
            "state.apps",
            _CODEBASE,
            "4 applications: server, admin, storefront, mcp",
            "Приложений: 4 (server, admin, storefront, mcp)",
            Equals(4),
            4,
            "apps",
            "01_sprint_metrics",
            f"crates under apps/ {_AT_REVIEW}",
        ),
        Claim(
            "state.outbox",
            _MATURITY,
            "event-driven architecture with a transactional outbox: an event committed "
            "with its change is never lost",
            "Event-Driven Architecture с Outbox Pattern",
            AtMost(0),
            None,
            "events",
            "05_outbox",
            "events committed with their change but never delivered, with the relay "
            "killed at random points and restarted",
        ),
        Claim(
            "state.cqrs-lite",
            _MATURITY,
            "CQRS-lite: writes go to the modules' models, reads to a denormalised index",
            "CQRS-lite для разделения чтения/записи",
            AtLeast(100),
            None,
            "percent",
            "05_outbox",
            "share of write-model changes visible in the read index once the relay and "
            "the projections have drained",
        ),
        Claim(
            "state.modular-monolith",
            _MATURITY,
            "a modular monolith with clear boundaries",
            "Modular Monolith с чёткими границами",
            AtMost(0),
            None,
            "violations",
            "01_sprint_metrics",
            "import-linter contract violations in rustok_ref (the contracts in pyproject.toml)",
        ),
        Claim(
            "state.tenant-isolation",
            _MATURITY,
            "multi-tenancy with isolation: no tenant sees another tenant's rows",
            "Multi-tenancy с isolation",
            AtMost(0),
            None,
            "rows",
            "02_tenant_cache",
            "rows of another tenant returned to a request, two tenants seeded in every "
            "tenant-owned table, row-level security on",
        ),
        Claim(
            "state.transactional-guarantees",
            _MATURITY,
            "transactional guarantees: a change and its events commit or roll back together",
            "Transactional guarantees",
            AtMost(0),
            None,
            "events",
            "05_outbox",
            "outbox events of rolled-back transactions plus committed changes missing their "
            "events, over transactions failed at random points",
        ),
        Claim(
            "state.inconsistent-style",
            _PROBLEMS,
            "modules are inconsistent: different code styles and DI patterns",
            "Несогласованность между модулями — разные стили кода, DI patterns",
            NotMeasurable(
                "a judgement of the Rust code's style with no stated measure; rustok_ref "
                "has one wiring pattern by design, so it says nothing about RusToK"
            ),
        ),
        Claim(
            "state.over-engineering",
            _PROBLEMS,
            "some abstractions are over-engineered",
            "Излишняя сложность — некоторые абстракции over-engineered",
            NotMeasurable("the review names no abstraction and no measure of over-engineering"),
        ),
        # -- Sprint 1 --------------------------------------------------------------------
        Claim(
            "sprint1.p0-complete",
            _HEAD,
            "Sprint 1 is done: 4 of 4 P0 tasks",
            "Sprint 1 завершён (4/4 P0 задачи ✅)",
            Equals(4),
            4,
            "tasks",
            "01_sprint_metrics",
            f"Sprint 1 deliverables present and wired into the server {_AT_REVIEW} "
            "(reference/rustok-behaviour.md §1, §3, §4)",
        ),
        Claim(
            "sprint1.architecture-score",
            _CODEBASE,
            "architecture score 8.5/10 before Sprint 1, 8.7/10 after",
            "Оценка архитектуры: 8.5/10 → 8.7/10 (после Sprint 1)",
            _SCORE,
            8.7,
            "points/10",
        ),
        Claim(
            "sprint1.production-readiness",
            _CODEBASE,
            "production readiness 75% before Sprint 1, 85% after (+10%)",
            "Production readiness: 75% → 85% (+10%)",
            _READINESS,
            85,
            "percent",
        ),
        Claim(
            "sprint1.test-coverage",
            _PROBLEMS,
            "test coverage is too low: 31% (target 50%+)",
            "Недостаточное покрытие тестами — 31% (цель: 50%+)",
            NotMeasurable(
                "coverage of the Rust workspace needs a Rust toolchain, cargo-llvm-cov and "
                "crates.io, none of which this project has; rustok_ref's own coverage is "
                "progress.test-coverage"
            ),
            31,
            "percent",
        ),
        Claim(
            "sprint1.event-validation.loc",
            _SPRINT1,
            "event validation framework: 260 lines",
            "Event Validation Framework (260 строк, 25+ тестов)",
            WithinRatio(260, 0.1),
            260,
            "lines",
            "01_sprint_metrics",
            f"physical lines of crates/rustok-core/src/events/validation.rs {_AT_REVIEW}",
        ),
        Claim(
            "sprint1.event-validation.tests",
            _SPRINT1,
            "event validation framework: 25+ tests",
            "Event Validation Framework (260 строк, 25+ тестов)",
            AtLeast(25),
            25,
            "tests",
            "01_sprint_metrics",
            f"Rust tests of the validation framework (events/validation.rs and the "
            f"validation tests in events/types.rs) {_AT_REVIEW}",
        ),
        Claim(
            "sprint1.event-validation.rejects-invalid",
            _SPRINT1,
            "the event validation framework rejects invalid events",
            "Event Validation Framework",
            AtLeast(100),
            None,
            "percent",
            "04_events_backpressure",
            "share of invalid events (the Rust tests' cases, reference §3.3, plus generated "
            "ones) that rustok_ref's validation rejects before publishing",
        ),
        Claim(
            "sprint1.tenant-sanitization.loc",
            _SPRINT1,
            "tenant identifier sanitization: 505 lines",
            "Tenant Identifier Sanitization (505 строк, 30+ тестов)",
            WithinRatio(505, 0.1),
            505,
            "lines",
            "01_sprint_metrics",
            f"physical lines of crates/rustok-core/src/tenant_validation.rs {_AT_REVIEW}",
        ),
        Claim(
            "sprint1.tenant-sanitization.tests",
            _SPRINT1,
            "tenant identifier sanitization: 30+ tests",
            "Tenant Identifier Sanitization (505 строк, 30+ тестов)",
            AtLeast(30),
            30,
            "tests",
            "01_sprint_metrics",
            f"Rust tests in crates/rustok-core/src/tenant_validation.rs {_AT_REVIEW}",
        ),
        Claim(
            "sprint1.tenant-sanitization.rejects-hostile",
            _SPRINT1,
            "tenant identifier sanitization rejects hostile identifiers",
            "Tenant Identifier Sanitization",
            AtLeast(100),
            None,
            "percent",
            "02_tenant_cache",
            "share of hostile identifiers (SQL injection, XSS, path traversal, control "
            "characters: reference §1.8 plus generated ones) that rustok_ref's validator rejects",
        ),
        Claim(
            "sprint1.backpressure.loc",
            _SPRINT1,
            "EventDispatcher backpressure control: 464 lines",
            "EventDispatcher Backpressure Control (464 строк)",
            WithinRatio(464, 0.1),
            464,
            "lines",
            "01_sprint_metrics",
            f"physical lines of crates/rustok-core/src/events/backpressure.rs {_AT_REVIEW}",
        ),
        Claim(
            "sprint1.backpressure.bounded",
            _SPRINT1,
            "backpressure control bounds the event queue: past its limit publishers are refused",
            "EventDispatcher Backpressure Control",
            AtMost(0),
            None,
            "events",
            "04_events_backpressure",
            "peak queue depth above max_queue_depth while concurrent publishers flood the "
            "dispatcher (the Rust check-then-increment can overshoot, reference §4.1)",
        ),
        Claim(
            "sprint1.eventbus-audit",
            _SPRINT1,
            "EventBus consistency audit: 100% pass",
            "EventBus Consistency Audit (100% pass)",
            AtLeast(100),
            100,
            "percent",
            "04_events_backpressure",
            "share of the audit's checks passing when re-run on rustok_ref: every catalogued "
            "event type validates, goes through the outbox and reaches its subscribers",
        ),
        # -- P1.1 tenant cache -----------------------------------------------------------
        Claim(
            "P1.1.baseline-loc",
            f"{_P11} › Проблема",
            "the hand-written TenantCacheManager is 580+ lines of complex logic",
            "Текущая реализация `TenantCacheManager` содержит 580+ строк сложной логики",
            AtLeast(580),
            580,
            "lines",
            "02_tenant_cache",
            f"physical lines of the hand-written tenant cache the server wires {_AT_REVIEW} "
            "(apps/server/src/middleware/tenant.rs: no type is named TenantCacheManager, "
            "reference §2)",
        ),
        Claim(
            "P1.1.moka-loc",
            f"{_P11} › Выигрыш",
            "the moka-based cache is about 150 lines",
            "Сокращение кода: 580 строк → ~150 строк (-74%)",
            AtMost(165, partial_limit=300),
            150,
            "lines",
            "02_tenant_cache",
            f"physical lines of RusToK's moka-based tenant cache (tenant_cache_v2.rs) {_AT_REVIEW}",
        ),
        Claim(
            "P1.1.loc-reduction",
            f"{_P11} › Выигрыш",
            "a library cache instead of the hand-written one cuts the code by 74% "
            "(580 -> ~150 lines)",
            "Сокращение кода: 580 строк → ~150 строк (-74%)",
            WithinRatio(-74, 0.1),
            -74,
            "percent",
            "02_tenant_cache",
            "change in code lines (rustok_ref.lab.codemetrics) from rustok_ref's hand-written "
            "tenant cache to its moka-backed one, the two kept side by side",
        ),
        Claim(
            "P1.1.stampede",
            f"{_P11} › Выигрыш",
            "built-in stampede protection: concurrent misses for one tenant share one load",
            "Встроенная stampede protection (без ручной реализации)",
            AtMost(1),
            None,
            "loads",
            "02_tenant_cache",
            "database loads while many concurrent requests miss the same tenant at once "
            "(counted with RoundTrips)",
        ),
        Claim(
            "P1.1.eviction",
            f"{_P11} › Выигрыш",
            "automatic eviction (LRU/LFU): the cache never holds more than its capacity",
            "Автоматический eviction (LRU/LFU)",
            AtMost(0),
            None,
            "entries",
            "02_tenant_cache",
            "entries above max_capacity after loading more distinct tenants than the "
            "capacity, counted once the cache's pending work has run",
        ),
        Claim(
            "P1.1.fewer-bugs",
            f"{_P11} › Выигрыш",
            "fewer bugs (a proven library)",
            "Меньше багов (проверенная библиотека)",
            AtMost(0),
            None,
            "defects",
            "02_tenant_cache",
            "defect scenarios of the hand-written cache (reference §2.1: lost wake-up, "
            "serialised not-found stampede, 500s on a Redis outage) the moka-backed one shows",
        ),
        Claim(
            "P1.1.easier-to-maintain",
            f"{_P11} › Выигрыш",
            "easier to maintain and to test",
            "Легче поддерживать и тестировать",
            _MAINTAINABILITY,
        ),
        Claim(
            "P1.1.parallel-run",
            f"{_P11} › Риск",
            "low risk: the new cache can run beside the old code",
            "Риск: Низкий (можно запустить параллельно со старым кодом)",
            AtMost(0),
            None,
            "mismatches",
            "02_tenant_cache",
            "lookups where the hand-written and the moka-backed cache answer differently, "
            "both fed the same requests (hits, misses, unknown tenants, invalidations)",
        ),
        _effort("P1.1.effort", f"{_P11} › Усилия", "Усилия: 2 дня", 2, "the moka tenant cache"),
        # -- P1.2 circuit breaker --------------------------------------------------------
        Claim(
            "P1.2.no-cascading-failures",
            f"{_P12} › Выигрыш",
            "no cascading failures: a Redis outage does not fail the requests that use Redis",
            "Защита от cascading failures",
            AtMost(1, partial_limit=5),
            None,
            "percent",
            "03_circuit_breaker",
            "error rate of API requests (the application in process, a seeded tenant's reads "
            "and orders) while the fault proxy in front of its Redis is down",
        ),
        Claim(
            "P1.2.fail-fast",
            f"{_P12} › Выигрыш",
            "fail-fast: while the breaker is open, calls do not reach the failing dependency",
            "Быстрое восстановление (fail-fast)",
            AtMost(0),
            None,
            "connections",
            "03_circuit_breaker",
            "connections the fault proxy opens towards Redis while the breaker is open (its "
            "byte counter must stay flat too): shown by behaviour, not by timing",
        ),
        Claim(
            "P1.2.graceful-degradation",
            f"{_P12} › Выигрыш",
            "graceful degradation: reads are still answered while Redis is unavailable",
            "Graceful degradation",
            AtLeast(100),
            None,
            "percent",
            "03_circuit_breaker",
            "share of resilient-cache reads answered from the fallback while the breaker is open",
        ),
        Claim(
            "P1.2.observable-state",
            f"{_P12} › Выигрыш",
            "observability: the breaker's state is exposed as metrics",
            "Observability (метрики состояния)",
            AtMost(0),
            None,
            "transitions",
            "03_circuit_breaker",
            "state transitions missing from the breaker's metrics and listener events, over "
            "a run through Closed, Open, HalfOpen and back",
        ),
        _effort("P1.2.effort", f"{_P12} › Усилия", "Усилия: 3 дня", 3, "the circuit breaker"),
        # -- P1.3 state machines ---------------------------------------------------------
        Claim(
            "P1.3.invalid-transitions-rejected",
            f"{_P13} › Выигрыш",
            "an invalid state transition cannot be made",
            "Невозможно сделать invalid state transition",
            AtMost(0),
            None,
            "transitions",
            "06_state_machines",
            "(state, action) pairs outside the review's diagrams (Order: Draft -> "
            "PendingPayment -> Paid -> Shipped -> Delivered, cancel from Draft or "
            "PendingPayment; Product: Draft -> Published) that the persisted transitions accept",
        ),
        Claim(
            "P1.3.compile-time",
            f"{_P13} › Выигрыш",
            "compile-time guarantees that transitions are valid (in Python: the type checker)",
            "Compile-time гарантии правильности переходов",
            AtMost(0),
            None,
            "calls",
            "06_state_machines",
            "invalid transition calls on the type-state classes, one per pair outside the "
            "diagrams, that mypy --strict accepts in a generated probe module",
        ),
        Claim(
            "P1.3.paid-not-cancellable",
            f"{_P13} › код",
            "a paid order cannot be cancelled: only Draft and PendingPayment can",
            "НЕТ метода cancel() — нельзя отменить оплаченный заказ!",
            AtMost(0),
            None,
            "transitions",
            "06_state_machines",
            "cancellations accepted from Paid, Shipped or Delivered, at run time or by mypy",
        ),
        Claim(
            "P1.3.self-documenting",
            f"{_P13} › Выигрыш",
            "self-documenting: autocompletion offers only the actions valid in the state",
            "Саморедактирование (IDE autocomplete показывает только доступные действия)",
            AtMost(0),
            None,
            "methods",
            "06_state_machines",
            "public transition methods of each type-state class that are not valid from "
            "that state (introspection)",
        ),
        _effort(
            "P1.3.effort",
            f"{_P13} › Усилия",
            "Усилия: 4 дня (для Order + Product)",
            4,
            "the Order and Product state machines",
        ),
        # -- P2.1 OpenTelemetry ----------------------------------------------------------
        Claim(
            "P2.1.distributed-tracing",
            f"{_P21} › Выигрыш",
            "distributed tracing across services and modules",
            "Distributed tracing через микросервисы/модули",
            AtLeast(100),
            None,
            "percent",
            "09_telemetry",
            "share of the spans of an order flow (API request, service call, outbox write, "
            "relay, handler) that belong to the request's trace",
        ),
        Claim(
            "P2.1.correlation-id",
            f"{_P21} › Выигрыш",
            "events are linked through a correlation id",
            "Связь событий через correlation_id",
            AtLeast(100),
            None,
            "percent",
            "09_telemetry",
            "share of the events caused by a request that carry its correlation id after "
            "the outbox and the relay",
        ),
        Claim(
            "P2.1.span-attributes",
            f"{_P21} › код",
            "service methods get spans with tenant_id and product SKU attributes; the "
            "resource names the service and its version",
            None,
            AtLeast(100),
            None,
            "percent",
            "09_telemetry",
            "share of service-method spans with tenant_id (and product_sku on product "
            "operations) whose resource has service.name and service.version",
        ),
        Claim(
            "P2.1.visualisation",
            f"{_P21} › Выигрыш",
            "traces can be viewed in Jaeger, Zipkin or Honeycomb",
            "Визуализация в Jaeger/Zipkin/Honeycomb",
            NotMeasurable(
                "needs a Jaeger, Zipkin or Honeycomb backend; this project exports spans "
                "in-process only and sends nothing off the machine"
            ),
        ),
        Claim(
            "P2.1.bottleneck-analysis",
            f"{_P21} › Выигрыш",
            "performance profiling and bottleneck analysis from the traces",
            "Анализ bottlenecks",
            AtLeast(90, partial_limit=50),
            None,
            "percent",
            "09_telemetry",
            "share of a request's wall time covered by its child spans, so a slow step can "
            "be named (mean over the order flow's requests)",
        ),
        _effort(
            "P2.1.effort", f"{_P21} › Усилия", "Усилия: 5 дней", 5, "OpenTelemetry integration"
        ),
        # -- P2.2 tests ------------------------------------------------------------------
        Claim(
            "P2.2.coverage-target",
            _P22,
            "test coverage goes from 31% to 50% (+19 percentage points)",
            "Цель: 31% → 50% (+19 percentage points)",
            AtLeast(50),
            50,
            "percent",
            "01_sprint_metrics",
            "coverage of rustok_ref by the report's test phase (totals.percent_covered of "
            "its coverage JSON, subprocesses combined)",
        ),
        Claim(
            "P2.2.order-flow",
            f"{_P22} › Integration Tests для критических flows",
            "the order flow holds end to end: create a product, create an order (Draft), "
            "submit (PendingPayment), pay (Paid), OrderPaid emitted",
            "Integration Tests для критических flows",
            AtLeast(100),
            None,
            "percent",
            "06_state_machines",
            "share of the review's order-flow assertions that hold when the flow runs "
            "through the API against PostgreSQL",
        ),
        Claim(
            "P2.2.identifier-properties",
            f"{_P22} › Property-based tests для валидации",
            "every non-reserved [a-z0-9-]{1,64} slug is valid, and every string with a "
            "character other than alphanumerics and '-' is rejected",
            "Property-based tests для валидации",
            AtMost(0),
            None,
            "counterexamples",
            "02_tenant_cache",
            "counterexamples hypothesis finds to the two properties as the review writes "
            "them, against the validator that ports the Rust rules (reference §1.9)",
        ),
        _effort(
            "P2.2.effort",
            f"{_P22} › Усилия",
            "Усилия: 10 дней (continuous)",
            10,
            "raising coverage to 50%",
        ),
        # -- T1 sub-crates ---------------------------------------------------------------
        Claim(
            "T1.clear-boundaries",
            f"{_T1} › Выигрыш",
            "clearer separation of responsibilities",
            "Более чёткое разделение ответственности",
            AtMost(0),
            None,
            "violations",
            "01_sprint_metrics",
            "import cycles between rustok_ref's top-level packages (the Python counterparts "
            "of the proposed sub-crates), from the import graph",
        ),
        Claim(
            "T1.less-recompilation",
            f"{_T1} › Выигрыш",
            "less recompilation time",
            "Меньше recompilation time",
            NotMeasurable(
                "a Rust build-time claim: Python has no compile step, and the Rust workspace "
                "cannot be built here (no crates.io)"
            ),
        ),
        Claim(
            "T1.independent-versions",
            f"{_T1} › Выигрыш",
            "independent versions of the sub-crates; easier dependency management",
            "Независимые версии sub-crates",
            NotMeasurable("a release-process choice with no figure to measure"),
        ),
        # -- T2 errors -------------------------------------------------------------------
        Claim(
            "T2.one-error-type",
            f"{_T2} › Проблема",
            "one error type instead of each module's own (anyhow here, thiserror there)",
            "Разные модули используют разные error types (некоторые `anyhow`, некоторые "
            "`thiserror`)",
            AtMost(1),
            None,
            "error types",
            "10_errors",
            "exception hierarchies reaching the API's error mapping from the services "
            "(everything should derive from the one base in rustok_ref.errors)",
        ),
        Claim(
            "T2.http-mapping",
            f"{_T2} › Решение",
            "HTTP status per error: NotFound 404, PermissionDenied 403, Validation 400, "
            "RateLimitExceeded 429, CircuitBreakerOpen 503, anything else 500",
            None,
            AtLeast(100),
            None,
            "percent",
            "10_errors",
            "share of the review's explicit pairs that rustok_ref.errors gives; the "
            "catch-all 500 is checked for Database and Internal only",
        ),
        Claim(
            "T2.graphql-mapping",
            f"{_T2} › Решение",
            "GraphQL code per error: NOT_FOUND, FORBIDDEN, BAD_USER_INPUT, "
            "RATE_LIMIT_EXCEEDED, anything else INTERNAL_SERVER_ERROR",
            None,
            AtLeast(100),
            None,
            "percent",
            "10_errors",
            "share of the review's explicit pairs that rustok_ref.errors gives; the "
            "catch-all INTERNAL_SERVER_ERROR is checked for Database and Internal only",
        ),
        _effort(
            "T2.effort",
            _ROADMAP,
            "Task 2.4: Стандартизировать error handling (2 дня)",
            2,
            "standardising error handling (task 2.4)",
        ),
        # -- T3 feature flags ------------------------------------------------------------
        Claim(
            "T3.no-rebuild",
            f"{_T3} › Проблема",
            "features are switched per tenant without a rebuild or a restart",
            "Нет способа включать/выключать функции per-tenant без перекомпиляции",
            AtMost(0),
            None,
            "requests",
            "08_feature_flags",
            "requests answered with the old value after a flag change has committed "
            "through the service, with no restart",
        ),
        Claim(
            "T3.per-tenant",
            f"{_T3} › Проблема",
            "a flag is switched for one tenant only",
            "Нет способа включать/выключать функции per-tenant без перекомпиляции",
            AtMost(0),
            None,
            "requests",
            "08_feature_flags",
            "requests of other tenants whose answer changes when one tenant's flag flips",
        ),
        Claim(
            "T3.require-guard",
            f"{_T3} › код",
            "require() and the GraphQL guard refuse a disabled feature with FeatureNotEnabled",
            None,
            AtLeast(100),
            None,
            "percent",
            "08_feature_flags",
            "share of calls to a disabled feature refused with FeatureNotEnabled (HTTP 403, "
            "GraphQL FORBIDDEN), through the service and through the GraphQL guard",
        ),
        # -- A1 saga ---------------------------------------------------------------------
        Claim(
            "A1.reverse-compensation",
            f"{_A1} › код",
            "on a failure, the completed steps are compensated in reverse order",
            None,
            AtLeast(100),
            None,
            "percent",
            "07_saga",
            "share of runs, one per failing step, whose compensations ran in exact reverse "
            "order of the completed steps",
        ),
        Claim(
            "A1.consistency",
            _A1,
            "consistency without distributed transactions for order + payment + inventory "
            "+ shipping: each saga ends fully done or fully compensated",
            "Для complex workflows (например, order + payment + inventory + shipping)",
            AtLeast(100),
            None,
            "percent",
            "07_saga",
            "share of checkout sagas ending all done or all compensated, with a failure "
            "injected at each step and crashes between steps followed by recovery",
        ),
        # -- A2 command/query separation -------------------------------------------------
        Claim(
            "A2.query-reads-index",
            f"{_A2} › код",
            "Query resolvers read the index only",
            "Read-only operations (используют Index)",
            AtMost(0),
            None,
            "resolvers",
            "05_outbox",
            "Query resolvers that read write-model tables (each resolver's SQL recorded "
            "with the RoundTrips hook)",
        ),
        Claim(
            "A2.mutation-through-services",
            f"{_A2} › код",
            "mutations go through the domain services",
            "Write operations (используют Domain services)",
            AtMost(0),
            None,
            "resolvers",
            "05_outbox",
            "Mutation resolvers that write outside a domain service call",
        ),
        Claim(
            "A2.subscription-realtime",
            f"{_A2} › код",
            "subscriptions deliver real-time updates",
            "Real-time updates",
            AtLeast(100),
            None,
            "percent",
            "05_outbox",
            "share of committed mutations delivered to an open subscription once the relay "
            "has drained",
        ),
        # -- A3 event sourcing -----------------------------------------------------------
        Claim(
            "A3.full-history",
            _A3,
            "every change of Order and Payment is stored as an event",
            "Для Order, Payment — хранить все изменения как события",
            AtLeast(100),
            None,
            "percent",
            "06_state_machines",
            "share of order and payment state changes that have their event in the "
            "aggregate's stream",
        ),
        Claim(
            "A3.rebuild",
            f"{_A3} › код",
            "an aggregate is rebuilt by applying its events",
            None,
            AtLeast(100),
            None,
            "percent",
            "06_state_machines",
            "share of aggregates whose state rebuilt from the stream equals the stored "
            "state, over generated order histories",
        ),
        # -- roadmap estimates not tied to a recommendation above ------------------------
        _effort(
            "roadmap.distributed-tracing",
            _ROADMAP,
            "Task 3.2: Distributed tracing (3 дня)",
            3,
            "distributed tracing (task 3.2)",
        ),
        _effort(
            "roadmap.metrics-dashboard",
            _ROADMAP,
            "Task 3.3: Metrics dashboard (2 дня)",
            2,
            "metrics dashboard (task 3.3)",
        ),
        _effort(
            "roadmap.integration-tests",
            _ROADMAP,
            "Task 4.1: Integration tests (5 дней)",
            5,
            "integration tests (task 4.1)",
        ),
        _effort(
            "roadmap.property-tests",
            _ROADMAP,
            "Task 4.2: Property-based tests (3 дня)",
            3,
            "property-based tests (task 4.2)",
        ),
        _effort(
            "roadmap.benchmarks",
            _ROADMAP,
            "Task 4.3: Performance benchmarks (2 дня)",
            2,
            "performance benchmarks (task 4.3)",
        ),
        _effort(
            "roadmap.security-audit",
            _ROADMAP,
            "Task 4.4: Security audit (5 дней)",
            5,
            "security audit (task 4.4)",
        ),
        Claim(
            "roadmap.total-time",
            "Заключение › Целевая оценка: 9.5/10",
            "5-6 weeks to 9.5/10 with full focus",
            "Total time to 9.5/10: 5-6 недель при полной фокусировке",
            _EFFORT,
            None,
            "weeks",
        ),
        # -- the progress table ----------------------------------------------------------
        Claim(
            "progress.architecture-score",
            _PROGRESS,
            "architecture score: 8.7/10 now, 9.0/10 after Sprint 2, goal 9.5/10",
            "| Architecture Score | 8.7/10 | 9.0/10 | 9.5/10 |",
            _SCORE,
            9.5,
            "points/10",
            progress=ProgressValues("8.7/10", "9.0/10", "9.5/10"),
        ),
        Claim(
            "progress.test-coverage",
            _PROGRESS,
            "test coverage: 31% now, 40% after Sprint 2, goal 50%+",
            "| Test Coverage | 31% | 40% | 50%+ |",
            AtLeast(50, partial_limit=40),
            50,
            "percent",
            "01_sprint_metrics",
            "coverage of rustok_ref by the report's test phase (totals.percent_covered of "
            "its coverage JSON); partial at the after-Sprint-2 value",
            ProgressValues("31%", "40%", "50%+"),
        ),
        Claim(
            "progress.code-complexity",
            _PROGRESS,
            "code complexity: Medium now, Low-Medium after Sprint 2, goal Low",
            "| Code Complexity | Medium | Low-Medium | Low |",
            AtMost(5, partial_limit=10),
            None,
            "cyclomatic complexity",
            "01_sprint_metrics",
            "average cyclomatic complexity of rustok_ref outside lab/ (radon cc "
            "--total-average, via rustok_ref.lab.codemetrics); radon's ranks: A (≤ 5) low, "
            "B (≤ 10) low-medium, C (≤ 20) medium",
            ProgressValues("Medium", "Low-Medium", "Low"),
        ),
        Claim(
            "progress.production-readiness",
            _PROGRESS,
            "production readiness: 85% now, 90% after Sprint 2, goal 100%",
            "| Production Readiness | 85% | 90% | 100% |",
            _READINESS,
            100,
            "percent",
            progress=ProgressValues("85%", "90%", "100%"),
        ),
        Claim(
            "progress.maintainability",
            _PROGRESS,
            "maintainability: Good now, Excellent after Sprint 2, goal Excellent",
            "| Maintainability | Good | Excellent | Excellent |",
            _MAINTAINABILITY,
            progress=ProgressValues("Good", "Excellent", "Excellent"),
        ),
        Claim(
            "progress.scalability",
            _PROGRESS,
            "scalability: Good now, Excellent after Sprint 2, goal Excellent",
            "| Scalability | Good | Excellent | Excellent |",
            NotMeasurable("a grade with no stated workload, limit or measure"),
            progress=ProgressValues("Good", "Excellent", "Excellent"),
        ),
        Claim(
            "progress.security-score",
            _PROGRESS,
            "security score: 85% now, 90% after Sprint 2, goal 95%+",
            "| Security Score | 85% | 90% | 95%+ |",
            NotMeasurable(
                "a score with no stated checklist; the planned audit (task 4.4) is "
                "not part of the review"
            ),
            95,
            "percent",
            progress=ProgressValues("85%", "90%", "95%+"),
        ),
        # -- weak spots of the review's own sketches (confirmed = the weakness is real) --
        Claim(
            "weak.breaker-cumulative-failures",
            _WEAK,
            "the sketched breaker counts failures cumulatively while Closed: a success "
            "never resets them",
            None,
            AtLeast(1),
            None,
            "trips",
            "03_circuit_breaker",
            "times the sketch opens when failures are never consecutive (every 3rd of 300 "
            "calls fails, failure_threshold 5); a consecutive-failure breaker opens 0 times",
        ),
        Claim(
            "weak.breaker-closed-successes",
            _WEAK,
            "the sketched breaker keeps counting successes while Closed",
            None,
            AtMost(2),
            None,
            "calls",
            "03_circuit_breaker",
            "successes the sketch needs in HalfOpen to close after a Closed history of "
            "successes, with success_threshold 3 (a correct breaker needs 3)",
        ),
        Claim(
            "weak.breaker-half-open-unbounded",
            _WEAK,
            "the sketched breaker never enforces half_open_max_calls",
            None,
            AtLeast(2),
            None,
            "calls",
            "03_circuit_breaker",
            "trial calls admitted at once in HalfOpen with half_open_max_calls 1 and 10 "
            "concurrent callers",
        ),
        Claim(
            "weak.saga-crash-unrecoverable",
            _WEAK,
            "the sketched saga persists nothing: a crash mid-saga leaves no way to finish "
            "or undo it",
            None,
            AtMost(0),
            None,
            "percent",
            "07_saga",
            "share of sagas killed between steps that can be finished or compensated after "
            "a restart with the sketch",
        ),
        Claim(
            "weak.saga-no-step-data",
            _WEAK,
            "the sketched saga passes no data between steps",
            None,
            AtMost(0),
            None,
            "steps",
            "07_saga",
            "steps of the sketch that receive the previous step's output",
        ),
        Claim(
            "weak.saga-compensation-failure-logged",
            _WEAK,
            "the sketched saga only logs a failed compensation",
            None,
            AtMost(0),
            None,
            "compensations",
            "07_saga",
            "failed compensations the sketch keeps a durable record of, to retry or to "
            "hand to an operator",
        ),
        Claim(
            "weak.moka-caches-only-found",
            _WEAK,
            "the sketched moka loader caches only found tenants: a flood of unknown "
            "identifiers reaches the database every time",
            None,
            AtLeast(100),
            None,
            "percent",
            "02_tenant_cache",
            "share of repeated lookups of one unknown identifier, one after another, that "
            "reach the database through the sketched loader",
        ),
        Claim(
            "weak.flags-read-per-request",
            _WEAK,
            "the sketched feature flags are read from the database on every request",
            None,
            AtLeast(1),
            None,
            "queries/request",
            "08_feature_flags",
            "database queries per request for the flags with the sketch's load_for_tenant "
            "(RoundTrips)",
        ),
    )
)

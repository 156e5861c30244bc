"""Fault timelines: faults applied and removed at given offsets against named targets, each
step journaled with its monotonic and wall-clock time, everything still applied rolled back
when the timeline stops.

Why we wrote it: Chaos Toolkit's method is a list of actions and pauses run by its own
experiment loop, which would then have to own the load run too, and it skips rollbacks when
the method fails (chaostoolkit#195); Toxiproxy has no timeline at all. A load run needs
windows laid over load running in another process, a journal the report can shade, and a
rollback that always runs, so this small scheduler is ours.

A fault names a target and a toxic in Toxiproxy's vocabulary, plus `down` (the target's
enabled flag), `jitter` (Toxiproxy's latency toxic with its jitter attribute, which the
scenario vocabulary names apart) and `flush` (an instant action, applied once, no window):

- `postgres`, `redis`: the TCP fault proxies of `lab/faults.py`, every toxic and `down`;
- `payment`, `shipping`: the API's fake providers through their control endpoint, `down`
  (its toxicity is the share of calls that fail) and `latency`;
- `relay`: `down` kills the outbox relay at the start and restarts it at the end;
- `tenant_cache`: `flush` empties the API's tenant cache.

A target is anything with `apply(fault)` and `remove(fault)`; the proxies and providers are
here, the relay and the cache belong to the load driver that runs those processes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Annotated, Any, Literal, Protocol, Self

import httpx
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    FiniteFloat,
    StrictInt,
    ValidationInfo,
    field_validator,
)

from rustok_ref.lab.faults import FaultConfigError, FaultProxy, Stream, make_toxic
from rustok_ref.lab.thresholds import parse_duration_ms

log = logging.getLogger(__name__)

TargetName = Literal["postgres", "redis", "payment", "shipping", "relay", "tenant_cache"]
ToxicName = Literal[
    "latency", "jitter", "down", "timeout", "reset_peer", "bandwidth", "slicer", "flush"
]

PROXY_TARGETS = frozenset({"postgres", "redis"})
PROVIDER_TARGETS = frozenset({"payment", "shipping"})
# What each kind of target can do; a proxy's toxics take Toxiproxy's attributes.
_PROXY_TOXICS = frozenset({"latency", "jitter", "timeout", "reset_peer", "bandwidth", "slicer"})
TOXICS_BY_TARGET: Mapping[str, frozenset[str]] = {
    "postgres": _PROXY_TOXICS | {"down"},
    "redis": _PROXY_TOXICS | {"down"},
    "payment": frozenset({"down", "latency"}),
    "shipping": frozenset({"down", "latency"}),
    "relay": frozenset({"down"}),
    "tenant_cache": frozenset({"flush"}),
}
INSTANT_TOXICS = frozenset({"flush"})


def _to_seconds(value: object) -> object:
    return parse_duration_ms(value) / 1000 if isinstance(value, str) else value


Seconds = Annotated[FiniteFloat, BeforeValidator(_to_seconds)]
"""A number of seconds, or a duration string with its unit: `500ms`, `30s`, `2m`."""


class Fault(BaseModel):
    """One fault: `toxic` on `target` from `start` for `duration` seconds.

    `toxicity` is Toxiproxy's: the share of connections that get the toxic; on a provider's
    `down` it is the share of calls that fail. `attributes` are Toxiproxy's for the proxy
    toxics and `latency` (ms) for a provider's latency.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    target: TargetName
    toxic: ToxicName
    start: Seconds = Field(ge=0, description="Seconds from the start of the load.")
    duration: Seconds | None = Field(
        default=None, gt=0, validate_default=True, description="Seconds; none for `flush`."
    )
    stream: Stream | None = Field(default=None, validate_default=True)
    toxicity: float = Field(default=1.0, ge=0, le=1)
    attributes: dict[str, StrictInt] = Field(default_factory=dict, validate_default=True)

    @field_validator("toxic")
    @classmethod
    def _toxic_fits_the_target(cls, toxic: str, info: ValidationInfo) -> str:
        target = info.data.get("target")
        if target is not None and toxic not in TOXICS_BY_TARGET[target]:
            raise ValueError(
                f"target {target} takes the toxics {', '.join(sorted(TOXICS_BY_TARGET[target]))}"
            )
        return toxic

    @field_validator("duration")
    @classmethod
    def _window_unless_instant(cls, duration: float | None, info: ValidationInfo) -> float | None:
        toxic = info.data.get("toxic")
        if toxic in INSTANT_TOXICS and duration is not None:
            raise ValueError(f"{toxic} is instant: it takes no duration")
        if toxic is not None and toxic not in INSTANT_TOXICS and duration is None:
            raise ValueError("required: the fault's window in seconds (> 0)")
        return duration

    @field_validator("stream")
    @classmethod
    def _stream_only_for_proxy_toxics(
        cls, stream: Stream | None, info: ValidationInfo
    ) -> Stream | None:
        if not _is_proxy_toxic(info.data.get("target"), info.data.get("toxic")):
            if stream is not None:
                raise ValueError("only a toxic on postgres or redis (other than down) has a stream")
            return None
        return "downstream" if stream is None else stream

    @field_validator("toxicity")
    @classmethod
    def _toxicity_where_it_means_something(cls, toxicity: float, info: ValidationInfo) -> float:
        target, toxic = info.data.get("target"), info.data.get("toxic")
        meaningful = _is_proxy_toxic(target, toxic) or (
            target in PROVIDER_TARGETS and toxic == "down"
        )
        if target is not None and toxic is not None and not meaningful and toxicity != 1.0:
            raise ValueError(f"toxicity does not apply to {toxic} on {target}")
        return toxicity

    @field_validator("attributes")
    @classmethod
    def _attributes_fit_the_toxic(
        cls, attributes: dict[str, int], info: ValidationInfo
    ) -> dict[str, int]:
        target, toxic = info.data.get("target"), info.data.get("toxic")
        if target is None or toxic is None:
            return attributes
        if _is_proxy_toxic(target, toxic):
            if toxic == "jitter" and attributes.get("jitter", 0) <= 0:
                raise ValueError("jitter needs a jitter attribute > 0 (ms), and may set latency")
            toxic_type = _proxy_toxic_type(toxic)
            # Names checked first: one such as `name` would clash with make_toxic's parameters.
            known = set(make_toxic(toxic_type).attributes)
            unknown = sorted(set(attributes) - known)
            if unknown:
                raise ValueError(
                    f"unknown attribute(s) {', '.join(unknown)}; "
                    f"{toxic} takes {', '.join(sorted(known))}"
                )
            try:  # the proxy's own checks: whole numbers >= 0, slicer sizes
                make_toxic(toxic_type, None, "downstream", 1.0, **attributes)
            except FaultConfigError as exc:
                raise ValueError(str(exc)) from exc
            return attributes
        expected = {"latency"} if toxic == "latency" else set()
        if set(attributes) != expected:
            wanted = "latency (ms)" if expected else "none"
            raise ValueError(f"{toxic} on {target} takes the attributes: {wanted}")
        if any(value < 0 for value in attributes.values()):
            raise ValueError("latency must be >= 0 ms")
        return attributes

    @property
    def end(self) -> float:
        """When the fault is removed, in seconds from the start (its start, if instant)."""
        return self.start + (self.duration or 0.0)

    @property
    def toxic_name(self) -> str:
        """The toxic's name on a proxy (`<toxic>_<stream>`), or the toxic itself elsewhere."""
        return self.toxic if self.stream is None else f"{self.toxic}_{self.stream}"

    @property
    def label(self) -> str:
        return f"{self.target}/{self.toxic_name}"


def _is_proxy_toxic(target: object, toxic: object) -> bool:
    return target in PROXY_TARGETS and toxic in _PROXY_TOXICS


def _proxy_toxic_type(toxic: str) -> str:
    return "latency" if toxic == "jitter" else toxic


def overlapping(faults: Sequence[Fault]) -> list[tuple[int, int]]:
    """Pairs (earlier, later) of faults with the same label whose windows overlap: the later
    one would collide with the earlier (same toxic name, or one `down` undoing the other)."""
    pairs = []
    for later, fault in enumerate(faults):
        for earlier, other in enumerate(faults[:later]):
            if fault.label == other.label and fault.start < other.end and other.start < fault.end:
                pairs.append((earlier, later))
    return pairs


class FaultTarget(Protocol):
    """Something a timeline can fault: apply a fault, and remove it again."""

    def apply(self, fault: Fault) -> None: ...

    def remove(self, fault: Fault) -> None: ...


class FaultTargetError(RuntimeError):
    """A target could not apply or remove a fault (e.g. the API's control endpoint failed)."""


class ProxyTarget:
    """A fault proxy as a target: toxics added and removed by name, `down` as its enabled flag."""

    def __init__(self, proxy: FaultProxy) -> None:
        self.proxy = proxy

    def apply(self, fault: Fault) -> None:
        if fault.toxic == "down":
            self.proxy.disable()
            return
        assert fault.stream is not None  # the schema gives every proxy toxic a stream
        self.proxy.add_toxic(
            _proxy_toxic_type(fault.toxic),
            fault.toxic_name,
            fault.stream,
            fault.toxicity,
            **fault.attributes,
        )

    def remove(self, fault: Fault) -> None:
        if fault.toxic == "down":
            self.proxy.enable()
        else:
            self.proxy.remove_toxic(fault.toxic_name)


class ProviderTarget:
    """The API's fake payment or shipping provider, steered through its control endpoint:
    `PUT {api}/admin/providers/{provider}` with `{failure_rate, latency_ms}`.

    The endpoint holds one setting, so the target sends the sum of the faults in place: the
    failure rate of the `down` fault (its toxicity) and the latency of the `latency` one.
    """

    def __init__(
        self,
        api_url: str,
        provider: Literal["payment", "shipping"],
        *,
        headers: Mapping[str, str] | None = None,
        timeout_s: float = 5.0,
    ) -> None:
        self.provider = provider
        self._client = httpx.Client(
            base_url=api_url.rstrip("/"), headers=dict(headers or {}), timeout=timeout_s
        )
        self._active: dict[str, Fault] = {}

    def apply(self, fault: Fault) -> None:
        self._check(fault)
        self._put({**self._active, fault.label: fault})
        self._active[fault.label] = fault

    def remove(self, fault: Fault) -> None:
        remaining = {label: f for label, f in self._active.items() if label != fault.label}
        self._put(remaining)
        self._active = remaining

    def reset(self) -> None:
        """Back to a healthy provider: no failures, no latency (the `reset_providers` rollback)."""
        self._put({})
        self._active = {}

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _check(self, fault: Fault) -> None:
        if fault.target != self.provider:
            raise FaultTargetError(f"the {self.provider} target got a fault on {fault.target}")

    def _put(self, faults: Mapping[str, Fault]) -> None:
        body = {
            "failure_rate": sum(f.toxicity for f in faults.values() if f.toxic == "down"),
            "latency_ms": sum(f.attributes.get("latency", 0) for f in faults.values()),
        }
        path = f"/admin/providers/{self.provider}"
        try:
            response = self._client.put(path, json=body)
        except httpx.HTTPError as exc:
            raise FaultTargetError(f"PUT {path}: {exc}") from exc
        if response.is_error:
            raise FaultTargetError(f"PUT {path}: HTTP {response.status_code} {response.text[:200]}")


def proxy_targets(proxies: Iterable[FaultProxy]) -> dict[str, FaultTarget]:
    """Targets for the proxies named `postgres` and `redis` among these (e.g. a ProxySet)."""
    return {proxy.name: ProxyTarget(proxy) for proxy in proxies if proxy.name in PROXY_TARGETS}


class TimelineClock(Protocol):
    """Where a timeline reads the time and waits; tests inject a clock they advance."""

    def monotonic(self) -> float: ...

    def wall(self) -> datetime: ...

    def wait_until(self, deadline: float, stop: threading.Event) -> bool:
        """Wait until monotonic() >= deadline or stop is set; True if stop was set."""
        ...


class SystemClock:
    """The real clocks: `time.monotonic` for offsets, UTC wall time for the journal."""

    def monotonic(self) -> float:
        return time.monotonic()

    def wall(self) -> datetime:
        return datetime.now(UTC)

    def wait_until(self, deadline: float, stop: threading.Event) -> bool:
        while (left := deadline - time.monotonic()) > 0:
            if stop.wait(left):
                return True
        return stop.is_set()


Action = Literal["apply", "remove"]


@dataclass(frozen=True)
class TimelineEntry:
    """One step of a timeline, as the load journal records it."""

    action: Action
    fault: int  # the fault's index in the timeline
    label: str  # target/toxic name, e.g. redis/latency_downstream
    planned_s: float  # the offset the timeline asked for
    offset_s: float  # the offset when it was done, by the monotonic clock
    monotonic: float
    wall: str  # ISO 8601, UTC
    rollback: bool  # removed by the rollback, not at the end of its window
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, order=True)
class _Step:
    at: float
    order: int  # removals before applications at the same time: windows may touch
    fault: int
    action: Action


class FaultTimeline:
    """Applies each fault at its start and removes it at its end, in its own thread.

    Steps run in time order; at equal times removals come first, so touching windows do not
    overlap. A step that fails is journaled with its error and the timeline goes on. When the
    timeline ends, is stopped, or its thread is interrupted, every fault still applied is
    removed (latest first), journaled as a rollback.
    """

    def __init__(
        self,
        faults: Sequence[Fault],
        targets: Mapping[str, FaultTarget],
        *,
        clock: TimelineClock | None = None,
    ) -> None:
        missing = sorted({fault.target for fault in faults} - set(targets))
        if missing:
            raise FaultConfigError(f"no target for {', '.join(missing)} in this timeline")
        clashes = overlapping(faults)
        if clashes:
            earlier, later = clashes[0]
            raise FaultConfigError(
                f"fault {later} ({faults[later].label}) overlaps fault {earlier} in time"
            )
        self.faults = tuple(faults)
        self._targets = dict(targets)
        self._clock = clock or SystemClock()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._journal: list[TimelineEntry] = []
        self._applied: list[int] = []
        self._started_at: float | None = None
        self._thread: threading.Thread | None = None
        steps = [_Step(fault.start, 1, index, "apply") for index, fault in enumerate(faults)]
        steps += [
            _Step(fault.end, 0, index, "remove")
            for index, fault in enumerate(faults)
            if fault.duration is not None
        ]
        self._steps = sorted(steps)

    @property
    def journal(self) -> list[TimelineEntry]:
        """The steps done so far, in order."""
        with self._lock:
            return list(self._journal)

    @property
    def started_at(self) -> float | None:
        """The monotonic time the timeline started, which its offsets count from."""
        return self._started_at

    def run(self) -> None:
        """Run the whole timeline in the calling thread; roll back whatever way it ends."""
        self._started_at = self._clock.monotonic()
        try:
            for step in self._steps:
                if self._clock.wait_until(self._started_at + step.at, self._stop):
                    break
                if step.action == "apply":
                    self._apply(step)
                elif step.fault in self._applied:  # a fault that failed to apply stays out
                    self._applied.remove(step.fault)
                    self._record(step.fault, "remove", step.at, rollback=False)
        finally:
            self._rollback()

    def start(self) -> Self:
        """Run the timeline in a daemon thread from now."""
        if self._thread is not None:
            raise RuntimeError("this fault timeline has already been started")
        self._thread = threading.Thread(target=self.run, name="fault-timeline", daemon=True)
        self._thread.start()
        return self

    def join(self, timeout_s: float | None = None) -> bool:
        """Wait for the timeline's thread to end; True if it has."""
        if self._thread is None:
            return True
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    def stop(self) -> None:
        """Stop early: no further step, every applied fault removed; returns when done."""
        self._stop.set()
        self.join()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _apply(self, step: _Step) -> None:
        fault = self.faults[step.fault]
        if self._record(step.fault, "apply", step.at, rollback=False) and fault.duration:
            self._applied.append(step.fault)

    def _rollback(self) -> None:
        while self._applied:
            index = self._applied.pop()
            self._record(index, "remove", self.faults[index].end, rollback=True)

    def _record(self, index: int, action: Action, planned_s: float, *, rollback: bool) -> bool:
        """Do one step, journal it with its times; True if the target did it."""
        fault = self.faults[index]
        target = self._targets[fault.target]
        operation: Callable[[Fault], None] = target.apply if action == "apply" else target.remove
        error = None
        try:
            operation(fault)
        except Exception as exc:  # a failed step is journaled; the timeline and rollback go on
            error = f"{type(exc).__name__}: {exc}"
        now = self._clock.monotonic()
        assert self._started_at is not None
        entry = TimelineEntry(
            action=action,
            fault=index,
            label=fault.label,
            planned_s=planned_s,
            offset_s=now - self._started_at,
            monotonic=now,
            wall=self._clock.wall().isoformat(),
            rollback=rollback,
            error=error,
        )
        with self._lock:
            self._journal.append(entry)
        log.log(
            logging.WARNING if error else logging.INFO,
            "fault %s %s at %.3f s%s%s",
            action,
            fault.label,
            entry.offset_s,
            " (rollback)" if rollback else "",
            f": {error}" if error else "",
        )
        return error is None

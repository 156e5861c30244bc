"""Scenario files: what a load run does, in YAML, validated before anything starts.

A scenario has Chaos Toolkit's shape (a steady-state hypothesis checked before and after, a
method, rollbacks that always run) with the method split into load stages (Locust's users,
spawn rate, duration and user mix) and a fault timeline (`lab/timeline.py`), plus k6-style
thresholds (`lab/thresholds.py`) and the `RUSTOK_*` settings passed to the API and relay.
Each file holds two sizes, `smoke` (under a minute, for CI) and `full`, for the stages, the
seed data and the fault timeline; everything else is shared:

```yaml
name: redis_outage
description: ...
app: {RUSTOK_TENANT_CACHE_TTL_S: 30}
load:
  mix: {storefront_browser: 3, checkout_customer: 1}
  smoke: {seed: {tenants: 5, products: 50}, stages: [{users: 10, spawn_rate: 5, duration: 40s}]}
  full:  {seed: {tenants: 50, products: 500}, stages: [...]}
faults:
  smoke: [{target: redis, toxic: down, start: 15s, duration: 10s}]
  full:  [...]
steady_state:
  title: the API is ready
  probes: [{name: ready, http: /health/ready, tolerance: 200}]
thresholds: [p99 < 500ms, error_rate < 1%]
rollbacks: [clear_faults]
```

Errors name the file, the line and the field (`scenarios/x.yaml:14: faults.smoke[1].duration:
...`): the YAML is composed with PyYAML's node marks, and each pydantic error location is
mapped back to the line of its key. pydantic validates the plain dict the YAML loads into,
which has lost its lines; the YAML validators that keep them (strictyaml, Yamale) bring their
own schema languages instead of pydantic. The mapping is fifty lines, so it is here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from rustok_ref.config import Settings
from rustok_ref.lab.thresholds import Threshold, format_number, parse_threshold
from rustok_ref.lab.timeline import Fault, Seconds, overlapping

Profile = Literal["smoke", "full"]
PROFILES: tuple[Profile, ...] = ("smoke", "full")
SMOKE_LIMIT_S = 60.0
SETTINGS_PREFIX = "RUSTOK_"
# Each run gets its own database and Redis prefix from the load driver; a scenario cannot.
RUN_OWNED_SETTINGS = frozenset({"database_url", "redis_url", "redis_prefix", "backend"})
# Rollbacks run after every run, whatever happened (on top of the fault timeline's own):
# clear_faults: every proxy enabled, every toxic removed (ProxySet.reset); reset_providers:
# both providers healthy again (ProviderTarget.reset); flush_caches: the API's caches
# emptied; restart_relay: the relay running again.
Rollback = Literal["clear_faults", "reset_providers", "flush_caches", "restart_relay"]
Loc = tuple[str | int, ...]
AppValue = StrictBool | StrictInt | StrictFloat | StrictStr | list[StrictStr]

_NAME = re.compile(r"[a-z][a-z0-9_]*")
_LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="[^"]*"'
_METRIC = re.compile(rf"[a-zA-Z_:][a-zA-Z0-9_:]*(?:\{{{_LABEL}(?:,{_LABEL})*\}})?")


class LocatedError(ValueError):
    """Problems a validator found below the value it validates, each with its location
    relative to that value, so that the error points at the line of the key at fault."""

    def __init__(self, problems: list[tuple[Loc, str]]) -> None:
        super().__init__("; ".join(message for _, message in problems))
        self.problems = problems


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Stage(_Strict):
    """One step of the load: ramp to `users` at `spawn_rate` users/s, hold for `duration`."""

    users: int = Field(ge=0)
    spawn_rate: float = Field(gt=0, allow_inf_nan=False)
    duration: Seconds = Field(gt=0)


class Seed(_Strict):
    """How much data the run seeds before the load starts."""

    tenants: int = Field(ge=1)
    products: int = Field(ge=0, description="per tenant")


class UserMix(_Strict):
    """Locust weights of the user classes (`loadtests/locustfile.py`)."""

    storefront_browser: int = Field(default=0, ge=0)
    checkout_customer: int = Field(default=0, ge=0)
    admin_writer: int = Field(default=0, ge=0)
    identifier_prober: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _someone_runs(self) -> UserMix:
        if not any(self.weights().values()):
            raise ValueError("give at least one user class a weight above 0")
        return self

    def weights(self) -> dict[str, int]:
        return self.model_dump()


class LoadProfile(_Strict):
    """The stages and seed data of one size of the scenario."""

    seed: Seed
    stages: list[Stage] = Field(min_length=1)

    @field_validator("stages")
    @classmethod
    def _some_load(cls, stages: list[Stage]) -> list[Stage]:
        if not any(stage.users for stage in stages):
            raise ValueError("every stage has 0 users: nothing would run")
        return stages

    @property
    def duration(self) -> float:
        """Seconds from the first stage's start to the last one's end."""
        return sum(stage.duration for stage in self.stages)


class Load(_Strict):
    mix: UserMix
    smoke: LoadProfile
    full: LoadProfile

    @field_validator("smoke")
    @classmethod
    def _smoke_is_short(cls, smoke: LoadProfile) -> LoadProfile:
        if smoke.duration >= SMOKE_LIMIT_S:
            raise ValueError(
                f"the smoke stages last {format_number(smoke.duration)} s; "
                f"keep them under {format_number(SMOKE_LIMIT_S)} s"
            )
        return smoke

    def profile(self, profile: Profile) -> LoadProfile:
        return self.smoke if profile == "smoke" else self.full


class FaultTimelines(_Strict):
    """The fault timeline of each size, times in seconds from the start of the load."""

    smoke: list[Fault] = Field(default_factory=list)
    full: list[Fault] = Field(default_factory=list)


class Probe(_Strict):
    """A steady-state probe (Chaos Toolkit's): GET the API path `http` and expect the status
    `tolerance`, or read the sample `metric` from the API's /metrics and expect it within the
    `tolerance` range [low, high]."""

    name: str = Field(min_length=1)
    http: str | None = None
    metric: str | None = Field(default=None, validate_default=True)
    tolerance: int | tuple[float, float]

    @field_validator("metric")
    @classmethod
    def _one_kind(cls, metric: str | None, info: ValidationInfo) -> str | None:
        http = info.data.get("http")
        if metric is not None and http is not None:
            raise ValueError("a probe has either http or metric, not both")
        if metric is None and http is None:
            raise ValueError("a probe needs http (a path to GET) or metric (a /metrics sample)")
        if metric is not None and not _METRIC.fullmatch(metric):
            raise ValueError('a Prometheus sample name, e.g. rustok_breaker_state{name="redis"}')
        return metric

    @field_validator("tolerance", mode="before")
    @classmethod
    def _fits_the_kind(cls, tolerance: object, info: ValidationInfo) -> object:
        if info.data.get("http") is not None:
            if isinstance(tolerance, bool) or not isinstance(tolerance, int):
                raise ValueError("an http probe's tolerance is the expected status, e.g. 200")
            if not 100 <= tolerance <= 599:
                raise ValueError(f"not an HTTP status: {tolerance}")
        elif info.data.get("metric") is not None:
            numbers = tolerance if isinstance(tolerance, list | tuple) else ()
            if len(numbers) != 2 or not all(
                isinstance(n, int | float) and not isinstance(n, bool) for n in numbers
            ):
                raise ValueError("a metric probe's tolerance is a range [low, high]")
            if numbers[0] > numbers[1]:
                raise ValueError(f"the range [{numbers[0]}, {numbers[1]}] is empty")
            return tuple(numbers)
        return tolerance

    @model_validator(mode="after")
    def _a_path(self) -> Probe:
        # Checked here, not on the field, so that a bad path still counts as the probe's kind.
        if self.http is not None and not self.http.startswith("/"):
            raise LocatedError([(("http",), "a path on the API under test, starting with '/'")])
        return self

    def holds(self, observed: float) -> bool:
        """Whether an observed status (http) or value (metric) is within the tolerance."""
        if isinstance(self.tolerance, tuple):
            low, high = self.tolerance
            return low <= observed <= high
        return observed == self.tolerance


class SteadyState(_Strict):
    """The hypothesis checked before the load (as a gate) and after it (deviation)."""

    title: str = Field(min_length=1)
    probes: list[Probe] = Field(min_length=1)


def _threshold(value: object) -> Threshold:
    if isinstance(value, Threshold):
        return value
    if not isinstance(value, str):
        raise ValueError("a threshold is a string such as 'p95 < 200ms'")
    return parse_threshold(value)


ThresholdField = Annotated[
    Threshold, PlainValidator(_threshold), PlainSerializer(str, return_type=str)
]


class Scenario(_Strict):
    """A whole scenario file; load one with `load_scenario`."""

    name: str
    description: str = Field(min_length=1)
    app: dict[str, AppValue] = Field(
        default_factory=dict, description="RUSTOK_* settings for the API and relay"
    )
    load: Load
    faults: FaultTimelines = Field(default_factory=FaultTimelines)
    steady_state: SteadyState
    thresholds: list[ThresholdField] = Field(min_length=1)
    rollbacks: list[Rollback] = Field(default_factory=list)

    @field_validator("name")
    @classmethod
    def _a_name(cls, name: str) -> str:
        if not _NAME.fullmatch(name):
            raise ValueError("lower case letters, digits and _, starting with a letter")
        return name

    @field_validator("app")
    @classmethod
    def _known_settings(cls, app: dict[str, AppValue]) -> dict[str, AppValue]:
        problems: list[tuple[Loc, str]] = []
        normal: dict[str, AppValue] = {}
        for key, value in app.items():
            problem = _setting_problem(key, value)
            if problem is None and key.upper() in normal:
                problem = "set twice (names are case-insensitive)"
            if problem is not None:
                problems.append(((key,), problem))
            normal[key.upper()] = value
        if problems:
            raise LocatedError(problems)
        return normal

    @field_validator("rollbacks")
    @classmethod
    def _each_once(cls, rollbacks: list[Rollback]) -> list[Rollback]:
        repeated = sorted({r for r in rollbacks if rollbacks.count(r) > 1})
        if repeated:
            raise ValueError(f"listed more than once: {', '.join(repeated)}")
        return rollbacks

    @model_validator(mode="after")
    def _faults_fit_the_load(self) -> Scenario:
        problems: list[tuple[Loc, str]] = []
        for profile in PROFILES:
            faults = getattr(self.faults, profile)
            ends = self.load.profile(profile).duration
            for index, fault in enumerate(faults):
                loc: Loc = ("faults", profile, index)
                if fault.start >= ends:
                    problems.append(
                        (
                            (*loc, "start"),
                            f"starts at {format_number(fault.start)} s, when the {profile} "
                            f"load has ended ({format_number(ends)} s)",
                        )
                    )
                elif fault.end > ends:
                    problems.append(
                        (
                            (*loc, "duration"),
                            f"ends at {format_number(fault.end)} s, after the {profile} load "
                            f"stages end ({format_number(ends)} s)",
                        )
                    )
            for earlier, later in overlapping(faults):
                problems.append(
                    (
                        ("faults", profile, later, "start"),
                        f"overlaps faults.{profile}[{earlier}] ({faults[later].label}) in time",
                    )
                )
        if problems:
            raise LocatedError(problems)
        return self

    def faults_for(self, profile: Profile) -> list[Fault]:
        result: list[Fault] = getattr(self.faults, profile)
        return result

    def environment(self) -> dict[str, str]:
        """The `app:` settings as environment variables for the API and relay processes."""
        return {
            key: value if isinstance(value, str) else json.dumps(value)
            for key, value in self.app.items()
        }


def _setting_problem(key: str, value: AppValue) -> str | None:
    """Why `key: value` is not a setting a scenario may give, or None if it is."""
    if not key.upper().startswith(SETTINGS_PREFIX):
        return f"settings are named {SETTINGS_PREFIX}<NAME>, as in the environment"
    name = key[len(SETTINGS_PREFIX) :].lower()
    field = Settings.model_fields.get(name)
    if field is None:
        known = ", ".join(
            SETTINGS_PREFIX + other.upper()
            for other in Settings.model_fields
            if other not in RUN_OWNED_SETTINGS
        )
        return f"unknown setting; known: {known}"
    if name in RUN_OWNED_SETTINGS:
        return "set by the load driver for each run; a scenario cannot choose it"
    try:
        constrained: Any = Annotated[field.annotation, field]  # with its constraints
        TypeAdapter(constrained).validate_python(value)
    except ValidationError as exc:
        return str(exc.errors()[0]["msg"]).removeprefix("Value error, ")
    return None


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a scenario file, where it is."""

    source: str
    line: int
    path: str  # e.g. faults.smoke[1].duration; empty for the whole file
    message: str

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class ScenarioError(ValueError):
    """A scenario file that is not valid; `problems` says what and where."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(str(problem) for problem in problems))
        self.problems = tuple(problems)


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario file; OSError when it cannot be read."""
    raw = Path(path).read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ScenarioError([Problem(str(path), 1, "", f"not UTF-8 text: {exc}")]) from None
    return parse_scenario(text, str(path))


def parse_scenario(text: str, source: str = "<scenario>") -> Scenario:
    """Validate scenario YAML; `source` names it in the errors."""
    data, lines = _read_yaml(text, source)
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError(list(_locate(exc, lines, source))) from None


def _read_yaml(text: str, source: str) -> tuple[Any, dict[Loc, int]]:
    """The document's data and the line of each key and list item, by location."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise ScenarioError([Problem(source, 1, "", "empty file: a scenario is a mapping")])
        lines: dict[Loc, int] = {(): node.start_mark.line + 1}
        duplicates: list[Problem] = []
        _mark_lines(node, (), lines, duplicates, source)
        if duplicates:
            raise ScenarioError(duplicates)
        return loader.construct_document(node), lines
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        raise ScenarioError([Problem(source, line, "", f"not valid YAML: {exc.problem}")]) from None
    except yaml.YAMLError as exc:
        raise ScenarioError([Problem(source, 1, "", f"not valid YAML: {exc}")]) from None
    finally:
        loader.dispose()


def _mark_lines(
    node: yaml.Node, loc: Loc, lines: dict[Loc, int], duplicates: list[Problem], source: str
) -> None:
    if isinstance(node, yaml.MappingNode):
        first_seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge" or not isinstance(
                key_node, yaml.ScalarNode
            ):
                continue  # `<<: *anchor` merges keys whose lines are the anchor's
            key, line = key_node.value, key_node.start_mark.line + 1
            if key in first_seen:
                duplicates.append(
                    Problem(
                        source,
                        line,
                        _path((*loc, key)),
                        f"repeated (first at line {first_seen[key]})",
                    )
                )
            first_seen.setdefault(key, line)
            lines[(*loc, key)] = line
            _mark_lines(value_node, (*loc, key), lines, duplicates, source)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines[(*loc, index)] = item.start_mark.line + 1
            _mark_lines(item, (*loc, index), lines, duplicates, source)


def _locate(exc: ValidationError, lines: Mapping[Loc, int], source: str) -> Iterator[Problem]:
    for error in exc.errors():
        loc: Loc = tuple(error["loc"])
        located = error.get("ctx", {}).get("error")
        if isinstance(located, LocatedError):
            for below, message in located.problems:
                yield _problem((*loc, *below), message, lines, source)
        else:
            yield _problem(loc, _message(error, loc), lines, source)


def _problem(loc: Loc, message: str, lines: Mapping[Loc, int], source: str) -> Problem:
    """The problem at the line of `loc`, or of its nearest enclosing key (a missing field's
    mapping, a dict key added by validation)."""
    known = loc
    while known and known not in lines:
        known = known[:-1]
    return Problem(source, lines.get(known, 1), _path(loc), message)


def _path(loc: Loc) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else str(part)
    return text


def _message(error: Any, loc: Loc) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        model = _model_at(loc[:-1])
        fields = f"; expected one of: {', '.join(model.model_fields)}" if model else ""
        return f"unknown field{fields}"
    if kind == "missing":
        return "required"
    if kind == "literal_error":
        return f"{error['input']!r} is not one of {error['ctx']['expected']}"
    return str(error["msg"]).removeprefix("Value error, ")


def _model_at(loc: Loc) -> type[BaseModel] | None:
    """The model class validating the value at `loc`, to list its fields."""
    annotation: Any = Scenario
    for part in loc:
        model = _as_model(annotation)
        if model is not None and isinstance(part, str) and part in model.model_fields:
            annotation = model.model_fields[part].annotation
        elif get_origin(annotation) is list and isinstance(part, int):
            annotation = get_args(annotation)[0]
        else:
            return None
    return _as_model(annotation)


def _as_model(annotation: Any) -> type[BaseModel] | None:
    if get_origin(annotation) in (Annotated, Union, UnionType):
        models = [m for m in map(_as_model, get_args(annotation)) if m is not None]
        return models[0] if len(models) == 1 else None
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None

"""Scenario files and thresholds: every committed scenario is valid; every refusal names the
file, the line and the field; thresholds parse, print back and evaluate as written."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from rustok_ref.cli import app
from rustok_ref.lab.scenario import (
    Scenario,
    ScenarioError,
    load_scenario,
    parse_scenario,
)
from rustok_ref.lab.thresholds import (
    DURATION_UNITS,
    METRICS,
    OPERATORS,
    Threshold,
    ThresholdError,
    evaluate,
    format_number,
    parse_duration_ms,
    parse_threshold,
)

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
COMMITTED = sorted(SCENARIOS.glob("*.yaml"))
SOURCE = "scenarios/x.yaml"

VALID = textwrap.dedent(
    """\
    name: example
    description: a small valid scenario the refusals below are made from
    app:
      RUSTOK_TENANT_CACHE_TTL_S: 30
    load:
      mix:
        storefront_browser: 3
        checkout_customer: 1
      smoke:
        seed: {tenants: 2, products: 5}
        stages:
          - {users: 5, spawn_rate: 5, duration: 10s}
          - {users: 10, spawn_rate: 5, duration: 20s}
      full:
        seed: {tenants: 20, products: 50}
        stages:
          - {users: 50, spawn_rate: 10, duration: 5m}
    faults:
      smoke:
        - {target: redis, toxic: down, start: 5s, duration: 10s}
        - target: postgres
          toxic: latency
          start: 12s
          duration: 5s
          attributes: {latency: 100}
      full:
        - {target: payment, toxic: down, toxicity: 0.25, start: 1m, duration: 2m}
        - {target: tenant_cache, toxic: flush, start: 4m}
    steady_state:
      title: the API is ready
      probes:
        - {name: ready, http: /health/ready, tolerance: 200}
        - {name: idle, metric: rustok_dispatcher_depth, tolerance: [0, 10]}
    thresholds:
      - p95 < 200ms
      - error_rate < 1%
      - events_lost == 0
    rollbacks: [clear_faults, reset_providers]
    """
)


def problems(text: str) -> list[str]:
    with pytest.raises(ScenarioError) as raised:
        parse_scenario(text, SOURCE)
    return [str(problem) for problem in raised.value.problems]


def line_of(text: str, fragment: str, occurrence: int = 1) -> int:
    """The 1-based line of the n-th line containing fragment."""
    found = [n for n, line in enumerate(text.splitlines(), 1) if fragment in line]
    return found[occurrence - 1]


def changed(old: str, new: str, text: str = VALID) -> str:
    assert text.count(old) == 1, old
    return text.replace(old, new)


# The committed scenarios.


def test_the_nine_scenarios_of_the_issue_are_committed() -> None:
    assert {path.stem for path in COMMITTED} == {
        "steady_browse",
        "checkout_peak",
        "cache_stampede",
        "unknown_tenant_flood",
        "redis_outage",
        "postgres_latency",
        "relay_crash",
        "event_burst",
        "payment_failures",
    }


@pytest.mark.parametrize("path", COMMITTED, ids=[path.stem for path in COMMITTED])
def test_every_committed_scenario_is_valid_and_named_after_its_file(path: Path) -> None:
    scenario = load_scenario(path)
    assert scenario.name == path.stem
    assert scenario.load.smoke.duration < 60
    assert scenario.load.full.duration > scenario.load.smoke.duration
    assert scenario.steady_state.probes
    assert scenario.thresholds


def test_the_fault_scenarios_fault_what_they_are_named_after() -> None:
    faulted = {
        path.stem: {fault.target for fault in load_scenario(path).faults_for("smoke")}
        for path in COMMITTED
    }
    assert faulted["redis_outage"] == {"redis"}
    assert faulted["postgres_latency"] == {"postgres"}
    assert faulted["relay_crash"] == {"relay"}
    assert faulted["cache_stampede"] == {"tenant_cache"}
    assert "payment" in faulted["payment_failures"]


def test_the_cli_validates_the_committed_scenarios() -> None:
    result = CliRunner().invoke(app, ["scenario", "validate", *map(str, COMMITTED)])
    assert result.exit_code == 0, result.output
    assert result.output.count("OK ") == len(COMMITTED)


def test_the_cli_exits_2_with_located_problems_for_an_invalid_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(changed("p95 < 200ms", "p95 < soon"))
    result = CliRunner().invoke(app, ["scenario", "validate", str(COMMITTED[0]), str(bad)])
    assert result.exit_code == 2
    line = line_of(VALID, "p95 < 200ms")
    assert f"{bad}:{line}: thresholds[0]: cannot parse threshold 'p95 < soon'" in result.output


def test_the_cli_exits_1_when_a_file_cannot_be_read(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [")
    missing = tmp_path / "missing.yaml"
    result = CliRunner().invoke(app, ["scenario", "validate", str(bad), str(missing)])
    assert result.exit_code == 1
    assert f"error: {missing}: No such file or directory" in result.output


# The schema: what a valid file gives.


def test_a_valid_scenario_reads_as_written() -> None:
    scenario = parse_scenario(VALID, SOURCE)
    assert scenario.load.mix.weights() == {
        "storefront_browser": 3,
        "checkout_customer": 1,
        "admin_writer": 0,
        "identifier_prober": 0,
    }
    assert scenario.load.smoke.duration == 30
    assert scenario.load.full.duration == 300
    latency = scenario.faults_for("smoke")[1]
    assert (latency.start, latency.duration, latency.end) == (12, 5, 17)
    assert latency.stream == "downstream"
    assert latency.label == "postgres/latency_downstream"
    flush = scenario.faults_for("full")[1]
    assert (flush.duration, flush.end, flush.stream) == (None, 240, None)
    assert [str(threshold) for threshold in scenario.thresholds] == [
        "p95 < 200ms",
        "error_rate < 1%",
        "events_lost == 0",
    ]


def test_app_settings_become_the_environment_of_the_api() -> None:
    text = changed(
        "  RUSTOK_TENANT_CACHE_TTL_S: 30\n",
        "  RUSTOK_TENANT_CACHE_TTL_S: 30\n  rustok_default_tenant: acme\n"
        "  RUSTOK_TRUSTED_PROXIES: [10.0.0.0/8]\n  RUSTOK_REQUIRE_SERVICES: true\n",
    )
    assert parse_scenario(text).environment() == {
        "RUSTOK_TENANT_CACHE_TTL_S": "30",
        "RUSTOK_DEFAULT_TENANT": "acme",
        "RUSTOK_TRUSTED_PROXIES": '["10.0.0.0/8"]',
        "RUSTOK_REQUIRE_SERVICES": "true",
    }


def test_a_scenario_dumps_to_json_for_the_journal_and_back() -> None:
    scenario = parse_scenario(VALID)
    dumped = scenario.model_dump(mode="json")
    assert dumped["thresholds"] == ["p95 < 200ms", "error_rate < 1%", "events_lost == 0"]
    assert Scenario.model_validate(dumped) == scenario


def test_probes_hold_within_their_tolerance() -> None:
    ready, idle = parse_scenario(VALID).steady_state.probes
    assert ready.holds(200)
    assert not ready.holds(503)
    assert idle.holds(0)
    assert idle.holds(10)
    assert not idle.holds(10.5)


# Refusals, each with the file, the line and the field.


def test_an_unknown_field_is_refused_with_the_fields_expected() -> None:
    text = changed("      duration: 5s\n", "      durration: 5s\n")
    assert problems(text) == [
        f"{SOURCE}:{line_of(text, '- target: postgres')}: faults.smoke[1].duration: "
        "required: the fault's window in seconds (> 0)",
        f"{SOURCE}:{line_of(text, 'durration')}: faults.smoke[1].durration: unknown field; "
        "expected one of: target, toxic, start, duration, stream, toxicity, attributes",
    ]


def test_an_unknown_top_level_field_is_refused() -> None:
    text = VALID + "method: []\n"
    assert problems(text) == [
        f"{SOURCE}:{line_of(text, 'method')}: method: unknown field; expected one of: "
        "name, description, app, load, faults, steady_state, thresholds, rollbacks"
    ]


def test_an_unknown_user_class_is_refused() -> None:
    text = changed("checkout_customer: 1", "hacker: 1")
    assert problems(text) == [
        f"{SOURCE}:{line_of(text, 'hacker')}: load.mix.hacker: unknown field; expected one of: "
        "storefront_browser, checkout_customer, admin_writer, identifier_prober"
    ]


@pytest.mark.parametrize(
    ("old", "new", "path", "message"),
    [
        (
            "{users: 5, spawn_rate: 5, duration: 10s}",
            "{users: 5, spawn_rate: 5, duration: -10}",
            "load.smoke.stages[0].duration",
            "Input should be greater than 0",
        ),
        (
            "{users: 5, spawn_rate: 5, duration: 10s}",
            "{users: 5, spawn_rate: 5, duration: -10s}",
            "load.smoke.stages[0].duration",
            "not a duration: '-10s'; write a number with a unit among us, µs, ms, s, m, e.g. '30s'",
        ),
        (
            "start: 5s, duration: 10s}",
            "start: 5s, duration: -1}",
            "faults.smoke[0].duration",
            "Input should be greater than 0",
        ),
        (
            "start: 5s, duration: 10s}",
            "start: -5, duration: 10s}",
            "faults.smoke[0].start",
            "Input should be greater than or equal to 0",
        ),
    ],
)
def test_a_negative_duration_is_refused(old: str, new: str, path: str, message: str) -> None:
    text = changed(old, new)
    assert problems(text) == [f"{SOURCE}:{line_of(text, new)}: {path}: {message}"]


def test_an_unknown_toxic_is_refused() -> None:
    text = changed("toxic: latency", "toxic: packet_loss")
    assert problems(text) == [
        f"{SOURCE}:{line_of(text, 'packet_loss')}: faults.smoke[1].toxic: 'packet_loss' is not "
        "one of 'latency', 'jitter', 'down', 'timeout', 'reset_peer', 'bandwidth', 'slicer' "
        "or 'flush'"
    ]


def test_an_unknown_target_is_refused() -> None:
    text = changed("{target: redis,", "{target: mysql,")
    assert problems(text) == [
        f"{SOURCE}:{line_of(text, 'mysql')}: faults.smoke[0].target: 'mysql' is not one of "
        "'postgres', 'redis', 'payment', 'shipping', 'relay' or 'tenant_cache'"
    ]


@pytest.mark.parametrize(
    ("fault", "path", "message"),
    [
        (
            "{target: payment, toxic: slicer, start: 1s, duration: 1s}",
            "toxic",
            "target payment takes the toxics down, latency",
        ),
        (
            "{target: relay, toxic: down, toxicity: 0.5, start: 1s, duration: 1s}",
            "toxicity",
            "toxicity does not apply to down on relay",
        ),
        (
            "{target: redis, toxic: down, stream: upstream, start: 1s, duration: 1s}",
            "stream",
            "only a toxic on postgres or redis (other than down) has a stream",
        ),
        (
            "{target: tenant_cache, toxic: flush, start: 1s, duration: 1s}",
            "duration",
            "flush is instant: it takes no duration",
        ),
        (
            "{target: redis, toxic: jitter, start: 1s, duration: 1s}",
            "attributes",
            "jitter needs a jitter attribute > 0 (ms), and may set latency",
        ),
        (
            "{target: redis, toxic: latency, start: 1s, duration: 1s, attributes: {rate: 5}}",
            "attributes",
            "unknown attribute(s) rate; latency takes jitter, latency",
        ),
        (
            "{target: redis, toxic: bandwidth, start: 1s, duration: 1s, attributes: {rate: -5}}",
            "attributes",
            "bandwidth toxic 'bandwidth_downstream': attribute 'rate' must be a whole number >= 0,"
            " got -5",
        ),
        (
            "{target: redis, toxic: slicer, start: 1s, duration: 1s, "
            "attributes: {average_size: 10, size_variation: 20}}",
            "attributes",
            "slicer toxic 'slicer_downstream': size_variation (20) must not exceed "
            "average_size (10)",
        ),
        (
            "{target: shipping, toxic: latency, start: 1s, duration: 1s, attributes: {jitter: 5}}",
            "attributes",
            "latency on shipping takes the attributes: latency (ms)",
        ),
        (
            "{target: redis, toxic: latency, start: 1s, duration: 1s, attributes: {latency: 1.5}}",
            "attributes.latency",
            "Input should be a valid integer",
        ),
    ],
)
def test_a_toxic_must_fit_its_target_and_its_attributes(
    fault: str, path: str, message: str
) -> None:
    text = changed("{target: redis, toxic: down, start: 5s, duration: 10s}", fault)
    assert problems(text) == [f"{SOURCE}:{line_of(text, fault)}: faults.smoke[0].{path}: {message}"]


@pytest.mark.parametrize(
    ("threshold", "message"),
    [
        (
            "p95 <",
            "cannot parse threshold 'p95 <': expected <metric> <operator> <value>[unit] with an "
            "operator among < <= > >= == !=, e.g. 'p95 < 200ms', 'error_rate < 1%', "
            "'events_lost == 0', 'outbox_lag_p99 < 2s'",
        ),
        ("p95 < 200", "p95 is a duration: give its unit, one of us, µs, ms, s, m (got none)"),
        (
            "latency < 2s",
            "unknown metric 'latency'; known: p50, p95, p99, p99.9, avg, min, max, "
            "med, outbox_lag_p99, dispatcher_depth_p99, error_rate, events_lost, "
            "sagas_incomplete, rps",
        ),
        ("'events_lost == 0ms'", "events_lost is a plain number: it takes no unit, got 'ms'"),
        ("42", "a threshold is a string such as 'p95 < 200ms'"),
    ],
)
def test_a_threshold_that_does_not_parse_is_refused(threshold: str, message: str) -> None:
    text = changed("  - p95 < 200ms\n", f"  - {threshold}\n")
    assert problems(text) == [
        f"{SOURCE}:{line_of(text, f'- {threshold}')}: thresholds[0]: {message}"
    ]


def test_a_fault_window_beyond_the_end_of_the_stages_is_refused() -> None:
    text = changed("start: 12s\n      duration: 5s", "start: 12s\n      duration: 25s")
    assert problems(text) == [
        f"{SOURCE}:{line_of(text, 'duration: 25s')}: faults.smoke[1].duration: ends at 37 s, "
        "after the smoke load stages end (30 s)"
    ]


def test_a_fault_starting_after_the_stages_is_refused() -> None:
    text = changed(
        "{target: tenant_cache, toxic: flush, start: 4m}",
        "{target: tenant_cache, toxic: flush, start: 5m}",
    )
    assert problems(text) == [
        f"{SOURCE}:{line_of(text, 'start: 5m')}: faults.full[1].start: starts at 300 s, when the "
        "full load has ended (300 s)"
    ]


def test_overlapping_windows_of_the_same_fault_are_refused() -> None:
    text = changed(
        "{target: redis, toxic: down, start: 5s, duration: 10s}",
        "{target: redis, toxic: down, start: 5s, duration: 10s}\n"
        "    - {target: redis, toxic: down, start: 14s, duration: 1s}",
    )
    assert problems(text) == [
        f"{SOURCE}:{line_of(text, 'start: 14s')}: faults.smoke[1].start: overlaps "
        "faults.smoke[0] (redis/down) in time"
    ]


def test_touching_windows_and_different_streams_do_not_overlap() -> None:
    text = changed(
        "{target: redis, toxic: down, start: 5s, duration: 10s}",
        "{target: redis, toxic: down, start: 5s, duration: 10s}\n"
        "    - {target: redis, toxic: down, start: 15s, duration: 1s}\n"
        "    - {target: postgres, toxic: latency, stream: upstream, start: 12s, duration: 5s}",
    )
    assert len(parse_scenario(text).faults_for("smoke")) == 4


def test_smoke_stages_of_a_minute_or_more_are_refused() -> None:
    text = changed(
        "{users: 10, spawn_rate: 5, duration: 20s}", "{users: 10, spawn_rate: 5, duration: 50s}"
    )
    assert problems(text) == [
        f"{SOURCE}:{line_of(text, 'smoke:')}: load.smoke: the smoke stages last 60 s; keep "
        "them under 60 s"
    ]


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        (
            "RUSTOK_CACHE_SIZE: 5",
            "unknown setting; known: RUSTOK_REQUIRE_SERVICES, RUSTOK_DB_POOL_SIZE,",
        ),
        ("RUSTOK_REDIS_PREFIX: 'x:'", "set by the load driver for each run"),
        ("RUSTOK_DB_POOL_SIZE: 0", "Input should be greater than or equal to 1"),
        ("tenant_cache_ttl_s: 5", "settings are named RUSTOK_<NAME>, as in the environment"),
        ("rustok_tenant_cache_ttl_s: 5", "set twice (names are case-insensitive)"),
    ],
)
def test_app_settings_must_be_settings_fields(setting: str, message: str) -> None:
    text = changed(
        "  RUSTOK_TENANT_CACHE_TTL_S: 30\n", f"  RUSTOK_TENANT_CACHE_TTL_S: 30\n  {setting}\n"
    )
    (found,) = problems(text)
    key = setting.split(":")[0]
    assert found.startswith(f"{SOURCE}:{line_of(text, setting)}: app.{key}: {message}")


@pytest.mark.parametrize(
    ("probe", "path", "message"),
    [
        ("{name: p, http: health, tolerance: 200}", "http", "a path on the API under test"),
        ("{name: p, http: /x, tolerance: 2000}", "tolerance", "not an HTTP status: 2000"),
        ("{name: p, metric: 'x{a=1}', tolerance: [0, 1]}", "metric", "a Prometheus sample name"),
        ("{name: p, metric: x, tolerance: [3, 1]}", "tolerance", "the range [3, 1] is empty"),
        (
            "{name: p, metric: x, tolerance: 3}",
            "tolerance",
            "a metric probe's tolerance is a range",
        ),
        ("{name: p, tolerance: 3}", "metric", "a probe needs http (a path to GET) or metric"),
        ("{name: p, http: /x, metric: x, tolerance: 200}", "metric", "either http or metric"),
    ],
)
def test_probes_are_checked(probe: str, path: str, message: str) -> None:
    text = changed("{name: ready, http: /health/ready, tolerance: 200}", probe)
    (found,) = problems(text)
    assert found.startswith(f"{SOURCE}:{line_of(text, probe)}: steady_state.probes[0].{path}: ")
    assert message in found


def test_a_rollback_is_listed_once() -> None:
    text = changed("[clear_faults, reset_providers]", "[clear_faults, clear_faults]")
    assert problems(text) == [
        f"{SOURCE}:{line_of(text, 'rollbacks')}: rollbacks: listed more than once: clear_faults"
    ]


def test_a_repeated_key_is_refused_with_both_lines() -> None:
    text = VALID + "name: again\n"
    assert problems(text) == [
        f"{SOURCE}:{line_of(text, 'name: again')}: name: repeated (first at line 1)"
    ]


def test_yaml_that_does_not_parse_is_refused_at_its_line() -> None:
    text = changed("title: the API is ready", "title: [the API is ready")
    (found,) = problems(text)
    assert found.startswith(f"{SOURCE}:{line_of(text, 'probes:')}: not valid YAML: ")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty file: a scenario is a mapping"),
        ("- a\n- b\n", "Input should be a valid dictionary or instance of Scenario"),
        ("name: x\n", "load: required"),
    ],
)
def test_a_file_that_is_not_a_scenario_is_refused_at_line_1(text: str, message: str) -> None:
    assert any(found.startswith(f"{SOURCE}:1: ") and message in found for found in problems(text))


def test_load_scenario_names_the_file_and_refuses_other_encodings(tmp_path: Path) -> None:
    path = tmp_path / "latin.yaml"
    path.write_bytes("name: café".encode("latin-1"))
    with pytest.raises(ScenarioError, match=rf"^{path}:1: not UTF-8 text"):
        load_scenario(path)
    with pytest.raises(OSError, match="No such file"):
        load_scenario(tmp_path / "missing.yaml")


# Thresholds.


@pytest.mark.parametrize(
    ("text", "metric", "aggregation", "operator", "value", "unit", "limit"),
    [
        ("p95 < 200ms", "response_time", "p95", "<", 200, "ms", 200),
        ("p99<500ms", "response_time", "p99", "<", 500, "ms", 500),
        ("error_rate < 1%", "error_rate", None, "<", 1, "%", 0.01),
        ("error_rate <= 0.02", "error_rate", None, "<=", 0.02, None, 0.02),
        ("events_lost == 0", "events_lost", None, "==", 0, None, 0),
        ("outbox_lag_p99 < 2s", "outbox_lag", "p99", "<", 2, "s", 2000),
        ("rps >= 50", "rps", None, ">=", 50, None, 50),
        ("  p99.9 < 1.5 s ", "response_time", "p99.9", "<", 1.5, "s", 1500),
        ("response_time_max != 250us", "response_time", "max", "!=", 250, "us", 0.25),
        ("dispatcher_depth_max <= 1000", "dispatcher_depth", "max", "<=", 1000, None, 1000),
    ],
)
def test_thresholds_parse_into_their_parts(
    text: str,
    metric: str,
    aggregation: str | None,
    operator: str,
    value: float,
    unit: str | None,
    limit: float,
) -> None:
    threshold = parse_threshold(text)
    assert threshold == Threshold(metric, aggregation, operator, value, unit)  # type: ignore[arg-type]
    assert threshold.limit == pytest.approx(limit)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "cannot parse threshold"),
        ("p95 ~ 200ms", "cannot parse threshold"),
        ("p95 < -1ms", "cannot parse threshold"),
        ("p95 < 200 parsecs", "p95 is a duration: give its unit"),
        ("p0 < 1ms", "percentile 'p0' must be above p0 and at most p100"),
        ("p100.5 < 1ms", "at most p100"),
        ("outbox_lag < 1s", "outbox_lag needs an aggregation: outbox_lag_p95"),
        ("error_rate_p95 < 1%", "error_rate takes no aggregation"),
        ("error_rate < 101%", "at most 100% (or 1)"),
        ("error_rate < 2", "at most 100% (or 1)"),
        ("error_rate < 1ms", "error_rate is a ratio: write a % or a fraction"),
        ("rps > 5%", "rps is a plain number: it takes no unit"),
    ],
)
def test_bad_thresholds_are_refused_with_what_was_expected(text: str, message: str) -> None:
    with pytest.raises(ThresholdError) as raised:
        parse_threshold(text)
    assert message in str(raised.value)


def _aggregations() -> st.SearchStrategy[str]:
    percentiles = st.integers(min_value=1, max_value=1000).map(
        lambda tenths: f"p{format_number(tenths / 10)}"
    )
    return st.one_of(st.sampled_from(["avg", "min", "max", "med"]), percentiles)


@st.composite
def thresholds(draw: st.DrawFn) -> Threshold:
    metric = draw(st.sampled_from(sorted(METRICS)))
    kind = METRICS[metric]
    aggregation = draw(_aggregations()) if kind.aggregated else None
    operator = draw(st.sampled_from(sorted(OPERATORS)))
    unit: str | None = None
    top = 1e12
    if kind.dimension == "duration":
        unit = draw(st.sampled_from(sorted(DURATION_UNITS)))
    elif kind.dimension == "ratio":
        unit = draw(st.sampled_from(["%", None]))
        top = 100 if unit else 1
    value = draw(st.floats(min_value=0, max_value=top, allow_nan=False, allow_infinity=False))
    return Threshold(metric, aggregation, operator, value, unit)  # type: ignore[arg-type]


@given(thresholds())
def test_a_formatted_threshold_parses_back_to_itself(threshold: Threshold) -> None:
    text = str(threshold)
    assert parse_threshold(text) == threshold
    assert parse_threshold(text.replace(" ", "")) == threshold
    assert str(parse_threshold(text)) == text


@given(thresholds(), st.floats(allow_nan=False))
def test_evaluate_applies_the_operator_to_the_observed_value_in_base_units(
    threshold: Threshold, observed: float
) -> None:
    (result,) = evaluate([threshold], {threshold.key: observed})
    expected = OPERATORS[threshold.operator](observed, threshold.limit)
    assert result.status == ("pass" if expected else "fail")
    assert result.observed == observed
    assert result.as_dict() == {
        "threshold": str(threshold),
        "observed": observed,
        "status": result.status,
    }


@given(thresholds())
def test_a_metric_not_measured_neither_passes_nor_fails(threshold: Threshold) -> None:
    (missing,) = evaluate([threshold], {"other": 1.0})
    (nan,) = evaluate([threshold], {threshold.key: math.nan})
    assert missing.status == nan.status == "not_measured"
    assert missing.observed is nan.observed is None


def test_evaluate_reads_durations_in_ms_and_ratios_as_fractions() -> None:
    parsed = [
        parse_threshold(text)
        for text in ["p95 < 200ms", "outbox_lag_p99 < 2s", "error_rate < 1%", "events_lost == 0"]
    ]
    measured = {"p95": 199.9, "outbox_lag_p99": 2000.0, "error_rate": 0.005, "events_lost": 1}
    assert [result.status for result in evaluate(parsed, measured)] == [
        "pass",
        "fail",
        "pass",
        "fail",
    ]


@pytest.mark.parametrize(
    ("text", "ms"),
    [("500ms", 500), ("30s", 30_000), ("2m", 120_000), ("1.5 s", 1500), ("250us", 0.25)],
)
def test_durations_read_with_their_unit(text: str, ms: float) -> None:
    assert parse_duration_ms(text) == pytest.approx(ms)


@pytest.mark.parametrize("text", ["30", "-1s", "3h", "s", "1e3"])
def test_a_duration_needs_a_known_unit(text: str) -> None:
    with pytest.raises(ThresholdError, match="not a duration"):
        parse_duration_ms(text)

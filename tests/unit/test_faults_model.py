"""The fault proxy's model: toxic definitions in Toxiproxy's vocabulary and their validation,
and the proxy's configuration checks. No socket is opened here."""

from __future__ import annotations

import dataclasses
import math
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rustok_ref.lab.faults import (
    STREAMS,
    TOXIC_TYPES,
    BandwidthToxic,
    FaultConfigError,
    FaultProxy,
    LatencyToxic,
    ProxyStats,
    ResetPeerToxic,
    SlicerToxic,
    TimeoutToxic,
    make_toxic,
)

toxic_types = st.sampled_from(sorted(TOXIC_TYPES))
streams = st.sampled_from(STREAMS)
probabilities = st.floats(min_value=0.0, max_value=1.0)
whole_ms = st.integers(min_value=0, max_value=10**9)


def test_the_registry_maps_each_toxiproxy_type_name_to_its_class() -> None:
    assert dict(TOXIC_TYPES) == {
        "latency": LatencyToxic,
        "timeout": TimeoutToxic,
        "reset_peer": ResetPeerToxic,
        "bandwidth": BandwidthToxic,
        "slicer": SlicerToxic,
    }


@pytest.mark.parametrize("toxic_type", sorted(TOXIC_TYPES))
def test_defaults_follow_toxiproxy(toxic_type: str) -> None:
    toxic = make_toxic(toxic_type)
    assert toxic.type == toxic_type
    assert toxic.name == f"{toxic_type}_downstream"
    assert toxic.stream == "downstream"
    assert toxic.toxicity == 1.0
    assert set(toxic.attributes.values()) == {0}


def test_attributes_are_toxiproxys_attributes_object() -> None:
    toxic = make_toxic("latency", name="slow", stream="upstream", toxicity=0.25, latency=150)
    assert toxic == LatencyToxic(name="slow", stream="upstream", toxicity=0.25, latency=150)
    assert toxic.attributes == {"latency": 150, "jitter": 0}
    assert make_toxic("reset_peer", timeout=30).attributes == {"timeout": 30}


@given(toxic_types, streams, probabilities, whole_ms)
def test_any_valid_definition_builds_and_round_trips(
    toxic_type: str, stream: str, toxicity: float, value: int
) -> None:
    attribute = next(iter(make_toxic(toxic_type).attributes))
    settings = {attribute: value}
    toxic = make_toxic(toxic_type, None, stream, toxicity, **settings)  # type: ignore[arg-type]
    assert toxic.name == f"{toxic_type}_{stream}"
    assert toxic.attributes == make_toxic(toxic_type).attributes | {attribute: value}
    rebuilt = make_toxic(toxic.type, toxic.name, toxic.stream, toxic.toxicity, **toxic.attributes)
    assert rebuilt == toxic


@pytest.mark.parametrize("toxic_type", ["down", "jitter", "slow_close", "LATENCY", ""])
def test_an_unknown_type_is_rejected_with_the_known_ones(toxic_type: str) -> None:
    with pytest.raises(FaultConfigError, match="unknown toxic type") as raised:
        make_toxic(toxic_type)
    message = str(raised.value)
    assert "bandwidth, latency, reset_peer, slicer, timeout" in message
    assert "disable()" in message  # points an outage at the enabled flag


@given(st.text().filter(lambda text: text not in STREAMS))
def test_a_stream_other_than_upstream_or_downstream_is_rejected(stream: str) -> None:
    with pytest.raises(FaultConfigError, match=r"stream must be 'upstream'.*or 'downstream'"):
        make_toxic("latency", name="x", stream=stream, latency=10)  # type: ignore[arg-type]


@given(st.sampled_from(["latency", "timeout"]), st.integers(max_value=-1))
def test_a_negative_duration_is_rejected(attribute: str, value: int) -> None:
    toxic_type = "latency" if attribute == "latency" else "timeout"
    with pytest.raises(FaultConfigError, match=f"'{attribute}' must be a whole number >= 0"):
        make_toxic(toxic_type, **{attribute: value})


@pytest.mark.parametrize("value", [1.5, "100", None, True])
def test_a_duration_must_be_a_whole_number(value: object) -> None:
    with pytest.raises(FaultConfigError, match="'latency' must be a whole number >= 0"):
        make_toxic("latency", latency=value)  # type: ignore[arg-type]


def test_an_unknown_attribute_is_rejected_with_the_known_ones() -> None:
    with pytest.raises(
        FaultConfigError, match=r"unknown attribute.*rate; it takes jitter, latency"
    ):
        make_toxic("latency", latency=10, rate=5)


@given(
    st.floats(allow_nan=True, allow_infinity=True).filter(
        lambda value: math.isnan(value) or not 0.0 <= value <= 1.0
    )
)
def test_a_toxicity_outside_zero_to_one_is_rejected(toxicity: float) -> None:
    with pytest.raises(FaultConfigError, match=r"toxicity is the probability.*from 0 to 1"):
        make_toxic("timeout", toxicity=toxicity)


@pytest.mark.parametrize("toxicity", ["0.5", None, True])
def test_a_toxicity_must_be_a_number(toxicity: object) -> None:
    with pytest.raises(FaultConfigError, match="toxicity must be a number"):
        make_toxic("timeout", toxicity=toxicity)  # type: ignore[arg-type]


def test_an_empty_name_is_rejected() -> None:
    with pytest.raises(FaultConfigError, match="name must be a non-empty string"):
        make_toxic("timeout", name="")


def test_a_toxic_is_immutable() -> None:
    toxic = make_toxic("latency", latency=10)
    with pytest.raises(dataclasses.FrozenInstanceError):
        toxic.latency = 20  # type: ignore[attr-defined]


@given(toxic_types, st.integers())
def test_toxicity_zero_never_applies_and_one_always_does(toxic_type: str, seed: int) -> None:
    rng = random.Random(seed)
    never = make_toxic(toxic_type, toxicity=0.0)
    always = make_toxic(toxic_type, toxicity=1.0)
    assert not any(never.rolls(rng) for _ in range(50))
    assert all(always.rolls(rng) for _ in range(50))


@given(probabilities, st.integers())
def test_each_roll_is_one_draw_from_the_injected_random(toxicity: float, seed: int) -> None:
    toxic = make_toxic("reset_peer", toxicity=toxicity)
    rng, replay = random.Random(seed), random.Random(seed)
    assert [toxic.rolls(rng) for _ in range(20)] == [replay.random() < toxicity for _ in range(20)]


@pytest.mark.parametrize("host", ["0.0.0.0", "localhost", "::1", "10.0.0.7", ""])
def test_a_proxy_listens_on_loopback_only(host: str) -> None:
    with pytest.raises(FaultConfigError, match=r"listen host must be 127\.0\.0\.1|host must be"):
        FaultProxy("redis", listen=(host, 0))


@pytest.mark.parametrize(
    ("upstream", "listen", "match"),
    [
        (("127.0.0.1", 0), ("127.0.0.1", 0), "upstream: port must be from 1 to 65535"),
        (("127.0.0.1", 70000), ("127.0.0.1", 0), "upstream: port must be from 1 to 65535"),
        (("127.0.0.1", 6379), ("127.0.0.1", -1), "listen: port must be from 0 to 65535"),
        (("", 6379), ("127.0.0.1", 0), "upstream: host must be a non-empty string"),
    ],
)
def test_a_proxy_checks_its_addresses(
    upstream: tuple[str, int], listen: tuple[str, int], match: str
) -> None:
    with pytest.raises(FaultConfigError, match=match):
        FaultProxy("redis", upstream=upstream, listen=listen)


def test_a_proxy_needs_a_name() -> None:
    with pytest.raises(FaultConfigError, match="non-empty name"):
        FaultProxy("")


def test_a_proxy_that_is_not_running_says_so() -> None:
    proxy = FaultProxy("redis")
    with pytest.raises(RuntimeError, match="'redis' is not running; start"):
        proxy.add_toxic("latency", latency=10)
    with pytest.raises(RuntimeError, match="not running"):
        _ = proxy.port
    proxy.stop()  # stopping a proxy that never started is a no-op
    assert proxy.stats() == ProxyStats()
    assert proxy.toxics() == ()
    assert proxy.enabled


def test_a_bad_toxic_is_rejected_before_the_proxy_is_asked() -> None:
    with pytest.raises(FaultConfigError, match="stream must be"):
        FaultProxy("redis").add_toxic("latency", stream="sideways")  # type: ignore[arg-type]


# Jitter, bandwidth and slicer: what each draws or splits, without a socket.


@given(whole_ms, st.integers(min_value=0, max_value=10**6), st.integers())
def test_jitter_draws_each_delay_within_latency_plus_or_minus_jitter(
    latency: int, jitter: int, seed: int
) -> None:
    toxic = make_toxic("latency", latency=latency, jitter=jitter)
    assert isinstance(toxic, LatencyToxic)
    rng, replay = random.Random(seed), random.Random(seed)
    delays = [toxic.delay_ms(rng) for _ in range(20)]
    assert all(latency - jitter <= delay <= latency + jitter for delay in delays)
    expected = [latency + (replay.randint(-jitter, jitter) if jitter else 0) for _ in range(20)]
    assert delays == expected


def test_no_jitter_draws_nothing() -> None:
    rng = random.Random(3)
    state = rng.getstate()
    assert make_toxic("latency", latency=40).delay_ms(rng) == 40  # type: ignore[attr-defined]
    assert rng.getstate() == state


@given(st.integers(min_value=1, max_value=10**4), st.integers(min_value=1, max_value=10**6))
def test_bandwidth_slices_a_chunk_into_100_ms_worth_of_bytes(rate: int, length: int) -> None:
    sizes = make_toxic("bandwidth", rate=rate).slice_sizes(length, random.Random(0))
    assert sum(sizes) == length
    assert all(0 < size <= rate * 100 for size in sizes)
    assert all(size == rate * 100 for size in sizes[:-1])


def test_bandwidth_zero_is_no_limit_and_leaves_chunks_whole() -> None:
    assert make_toxic("bandwidth").slice_sizes(10**6, random.Random(0)) == [10**6]


@given(
    st.integers(min_value=1, max_value=2000),
    st.data(),
    st.integers(min_value=1, max_value=20_000),
    st.integers(),
)
def test_slicer_sizes_cover_the_chunk_within_the_variation(
    average: int, data: st.DataObject, length: int, seed: int
) -> None:
    variation = data.draw(st.integers(min_value=0, max_value=average))
    toxic = make_toxic("slicer", average_size=average, size_variation=variation)
    sizes = toxic.slice_sizes(length, random.Random(seed))
    assert sum(sizes) == length
    assert all(size >= 1 for size in sizes)
    assert all(size <= average + variation for size in sizes)
    assert all(size >= average - variation for size in sizes[:-1])  # the last is what is left
    assert sizes == toxic.slice_sizes(length, random.Random(seed))  # drawn from the rng only


def test_slicer_average_zero_leaves_chunks_whole() -> None:
    assert make_toxic("slicer", delay=10).slice_sizes(5000, random.Random(0)) == [5000]


def test_slicer_variation_may_not_exceed_the_average() -> None:
    with pytest.raises(FaultConfigError, match=r"size_variation \(11\) must not exceed average"):
        make_toxic("slicer", average_size=10, size_variation=11)


@pytest.mark.parametrize(
    ("toxic_type", "attribute"),
    [("bandwidth", "rate"), ("slicer", "delay"), ("slicer", "average_size"), ("latency", "jitter")],
)
def test_new_attributes_are_whole_numbers_from_zero(toxic_type: str, attribute: str) -> None:
    with pytest.raises(FaultConfigError, match=f"'{attribute}' must be a whole number >= 0"):
        make_toxic(toxic_type, **{attribute: -1})

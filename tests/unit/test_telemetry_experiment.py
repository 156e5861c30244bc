"""The measuring half of notebook 09: spans into a table and a waterfall, and the figures
judged for review P2.1 (trace membership, attributes, child coverage, correlation ids)."""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION

from rustok_ref.lab.experiments.telemetry import (
    CONSUMER_SCOPE,
    GROUP_ATTRIBUTE,
    EventRow,
    RequestRow,
    SpanRow,
    attributed_share,
    capture_spans,
    child_coverage,
    correlated_share,
    follow,
    in_request_traces,
    mean_request_coverage,
    span_rows,
    waterfall,
)
from rustok_ref.telemetry import in_memory_tracing

NAMED = {SERVICE_NAME: "rustok-ref", SERVICE_VERSION: "0.1.0"}


def _row(
    name: str,
    span_id: str,
    parent_id: str | None = None,
    *,
    start: float = 0.0,
    end: float = 1.0,
    trace_id: str = "t1",
    kind: str = "INTERNAL",
    scope: str = "rustok_ref.commerce.orders",
    attributes: dict[str, object] | None = None,
    resource: dict[str, object] | None = None,
) -> SpanRow:
    return SpanRow(
        name=name,
        kind=kind,
        scope=scope,
        trace_id=trace_id,
        span_id=span_id,
        parent_id=parent_id,
        start_s=start,
        end_s=end,
        attributes={"tenant_id": "t"} if attributes is None else attributes,
        resource=NAMED if resource is None else resource,
        error=False,
    )


def test_real_spans_become_rows_and_the_waterfall_nests_children_under_their_parent() -> None:
    provider, exporter = in_memory_tracing()
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("POST /orders"):
        with (
            tracer.start_as_current_span("orders.create"),
            tracer.start_as_current_span("orders.get"),
        ):
            pass
        with tracer.start_as_current_span("commit"):
            pass
    with tracer.start_as_current_span("POST /orders/{order_id}/submit"):
        pass

    rows = span_rows(exporter.get_finished_spans())
    assert rows[0].name == "POST /orders" and rows[0].start_s == 0.0
    assert all(row.end_s >= row.start_s >= 0 for row in rows)
    ordered = [(row.name, row.depth) for row in waterfall(rows)]
    assert ordered == [
        ("POST /orders", 0),
        ("orders.create", 1),
        ("orders.get", 2),
        ("commit", 1),
        ("POST /orders/{order_id}/submit", 0),
    ]


def test_a_span_whose_parent_is_missing_is_a_root_of_the_waterfall() -> None:
    rows = [_row("consume order.placed", "c", "gone", start=2), _row("orders.get", "g", "c")]
    assert [(row.name, row.depth) for row in waterfall(rows)] == [
        ("consume order.placed", 0),
        ("orders.get", 1),
    ]


def test_child_coverage_counts_overlapping_children_once_and_ignores_grandchildren() -> None:
    parent = _row("POST /orders", "p", start=0, end=10)
    rows = [
        parent,
        _row("a", "a", "p", start=0, end=4),
        _row("b", "b", "p", start=3, end=6),
        _row("c", "c", "p", start=8, end=9),
        _row("grandchild", "g", "c", start=6, end=8),
        _row("late consumer", "l", "p", start=9.5, end=30),
    ]
    assert child_coverage(rows, parent) == 75.0
    assert mean_request_coverage(rows, [RequestRow("POST /orders", "cid", "t1")]) == 0.0
    server = _row("POST /orders", "p", start=0, end=10, kind="SERVER")
    assert mean_request_coverage([server, *rows[1:]], [RequestRow("r", "cid", "t1")]) == 75.0


def test_trace_membership_is_the_share_of_spans_in_some_request_trace() -> None:
    rows = [_row("a", "1"), _row("b", "2", trace_id="t2"), _row("c", "3", trace_id="other")]
    requests = [RequestRow("r1", "c1", "t1"), RequestRow("r2", "c2", "t2")]
    assert in_request_traces(rows, requests) == 200 / 3
    assert in_request_traces([], requests) == 100.0


def test_a_service_span_needs_a_tenant_a_sku_on_product_operations_and_a_named_resource() -> None:
    rows = [
        _row("orders.create", "1"),
        _row("products.get", "2", attributes={"tenant_id": "t", "sku": "S-1"}),
        _row("products.publish", "3", attributes={"tenant_id": "t"}),  # no sku
        _row("orders.get", "4", attributes={}),  # no tenant
        _row("orders.ship", "5", resource={SERVICE_NAME: "rustok-ref"}),  # no version
        _row("POST /orders", "6", scope="rustok_ref.api", attributes={}),  # not a service span
    ]
    assert attributed_share(rows) == 40.0


def test_an_event_is_correlated_when_it_carries_the_id_of_the_request_whose_trace_wrote_it() -> (
    None
):
    requests = [RequestRow("POST /orders", "cid-1", "t1")]
    events = [
        EventRow("order.placed", "e1", "o", "cid-1", "t1", "s1", 0.1),
        EventRow("order.line_added", "e2", "o", "cid-other", "t1", "s1", 0.2),
        EventRow("order.paid", "e3", "o", "cid-1", None, None, 0.3),
    ]
    assert correlated_share(events, requests) == 100 / 3
    assert correlated_share([], requests) == 100.0


def test_following_a_correlation_id_names_the_writer_and_the_consumer_groups() -> None:
    rows = [
        _row("orders.create", "s1"),
        _row(
            "consume order.placed",
            "c1",
            "s1",
            scope=CONSUMER_SCOPE,
            attributes={"event_id": "e1", GROUP_ATTRIBUTE: "order_view"},
        ),
    ]
    events = [
        EventRow("order.line_added", "e2", "o", "cid-1", "t1abcdef00", "s1", 0.2),
        EventRow("order.placed", "e1", "o", "cid-1", "t1abcdef00", "s1", 0.1),
        EventRow("product.created", "e3", "p", "cid-2", "t2", "x", 0.0),
    ]
    assert follow("cid-1", events, rows) == [
        {
            "event": "order.placed",
            "written in span": "orders.create",
            "trace": "t1abcdef",
            "handled by": "order_view",
        },
        {
            "event": "order.line_added",
            "written in span": "orders.create",
            "trace": "t1abcdef",
            "handled by": "—",
        },
    ]


def test_capture_spans_sees_the_process_wide_tracers_only_inside_the_block() -> None:
    tracer = trace.get_tracer("rustok_ref.commerce.test")
    with capture_spans() as exporter:
        with tracer.start_as_current_span("inside"):
            pass
        with capture_spans() as nested, tracer.start_as_current_span("both"):
            pass
    with tracer.start_as_current_span("after"):
        pass
    assert [span.name for span in exporter.get_finished_spans()] == ["inside", "both"]
    assert [span.name for span in nested.get_finished_spans()] == ["both"]
    (inside, _) = exporter.get_finished_spans()
    assert inside.resource.attributes[SERVICE_NAME]

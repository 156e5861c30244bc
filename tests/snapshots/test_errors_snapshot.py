"""Snapshots of the error mapping and of one problem body per kind, so a change to what
clients see shows up in review as a diff."""

from __future__ import annotations

from syrupy.assertion import SnapshotAssertion

from rustok_ref.errors import (
    BackpressuredError,
    CircuitBreakerOpenError,
    ConflictError,
    DatabaseError,
    DatabaseUnavailableError,
    FeatureNotEnabledError,
    InternalError,
    InvalidTransitionError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitExceededError,
    RustokError,
    TenantDisabledError,
    TenantNotFoundError,
    UnauthenticatedError,
    ValidationError,
    mapping_table,
)


def test_mapping_table(snapshot: SnapshotAssertion) -> None:
    assert [row._asdict() for row in mapping_table()] == snapshot


def test_problem_body_per_kind(snapshot: SnapshotAssertion) -> None:
    examples: list[RustokError] = [
        ValidationError("the order is invalid", fields={"sku": ["required"]}),
        UnauthenticatedError(),
        PermissionDeniedError("orders:write is required"),
        TenantDisabledError("tenant acme is disabled"),
        FeatureNotEnabledError("feature commerce is off", extra={"feature": "commerce"}),
        NotFoundError("order 42 not found"),
        TenantNotFoundError("no tenant 'acme'"),
        ConflictError("SKU ABC-1 already exists"),
        InvalidTransitionError("a paid order cannot be cancelled", extra={"from": "paid"}),
        RateLimitExceededError(retry_after=30),
        BackpressuredError("event queue full", retry_after=2),
        CircuitBreakerOpenError("redis circuit is open", retry_after=15),
        DatabaseUnavailableError(retry_after=5),
        DatabaseError("connection to 10.0.0.5:5432 refused"),
        InternalError("KeyError: 'tenant_id'"),
    ]
    bodies = {error.kind: error.to_problem(instance="/api/orders/42") for error in examples}
    assert bodies == snapshot

"""The error taxonomy: the review's T2 mapping, RFC 9457 bodies, no leaks from 500s."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rustok_ref import errors
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
    RetryableError,
    RustokError,
    TenantDisabledError,
    TenantNotFoundError,
    UnauthenticatedError,
    ValidationError,
)

ALL_KINDS: list[type[RustokError]] = [
    ValidationError,
    UnauthenticatedError,
    PermissionDeniedError,
    TenantDisabledError,
    FeatureNotEnabledError,
    NotFoundError,
    TenantNotFoundError,
    ConflictError,
    InvalidTransitionError,
    RateLimitExceededError,
    BackpressuredError,
    CircuitBreakerOpenError,
    DatabaseUnavailableError,
    DatabaseError,
    InternalError,
]
RETRYABLE = {
    RateLimitExceededError,
    BackpressuredError,
    CircuitBreakerOpenError,
    DatabaseUnavailableError,
}
CLIENT_ERRORS = [cls for cls in ALL_KINDS if cls.status < 500]


@pytest.mark.parametrize(
    ("cls", "status", "code"),
    [
        # The review's T2 pairs.
        (NotFoundError, 404, "NOT_FOUND"),
        (PermissionDeniedError, 403, "FORBIDDEN"),
        (ValidationError, 400, "BAD_USER_INPUT"),
        (RateLimitExceededError, 429, "RATE_LIMIT_EXCEEDED"),
        (CircuitBreakerOpenError, 503, "SERVICE_UNAVAILABLE"),
        (InternalError, 500, "INTERNAL_SERVER_ERROR"),
        (DatabaseError, 500, "INTERNAL_SERVER_ERROR"),
        (TenantNotFoundError, 404, "NOT_FOUND"),
        # The rest of DESIGN.md's table.
        (UnauthenticatedError, 401, "UNAUTHENTICATED"),
        (TenantDisabledError, 403, "FORBIDDEN"),
        (FeatureNotEnabledError, 403, "FORBIDDEN"),
        (ConflictError, 409, "CONFLICT"),
        (InvalidTransitionError, 409, "CONFLICT"),
        (BackpressuredError, 503, "SERVICE_UNAVAILABLE"),
        (DatabaseUnavailableError, 503, "SERVICE_UNAVAILABLE"),
    ],
)
def test_status_and_graphql_code(cls: type[RustokError], status: int, code: str) -> None:
    error = cls("boom")
    assert (error.status, error.code) == (status, code)
    assert error.to_problem()["status"] == status
    assert error.to_problem()["code"] == code
    assert error.graphql_extensions()["code"] == code


def test_every_table_row_has_exactly_one_class() -> None:
    assert sorted(row.kind for row in errors.mapping_table()) == sorted(
        cls.kind for cls in ALL_KINDS
    )


def test_class_attributes_come_from_the_table() -> None:
    by_kind = {cls.kind: cls for cls in ALL_KINDS}
    for row in errors.mapping_table():
        cls = by_kind[row.kind]
        assert (cls.status, cls.code, cls.title) == (row.status, row.code, row.title)
        assert issubclass(cls, RetryableError) == row.retry_after


@pytest.mark.parametrize("cls", [DatabaseError, InternalError])
def test_500_bodies_leak_nothing_of_the_original_message(cls: type[RustokError]) -> None:
    secret = "password=hunter2 host=10.1.2.3 SELECT * FROM tenants"
    error = cls(secret, extra={"sql": secret})
    public = json.dumps([error.to_problem("/orders/1"), error.graphql_extensions()])
    for fragment in ("hunter2", "10.1.2.3", "SELECT", "sql"):
        assert fragment not in public
    assert error.to_problem()["detail"] == errors.GENERIC_INTERNAL_DETAIL
    assert str(error) == secret  # kept for the logs


def test_from_exception_hides_an_unknown_failure_behind_internal() -> None:
    cause = KeyError("tenant_secret_column")
    error = errors.from_exception(cause)
    assert isinstance(error, InternalError)
    assert error.__cause__ is cause
    assert "tenant_secret_column" in str(error)
    assert "tenant_secret_column" not in json.dumps(error.to_problem())


def test_from_exception_keeps_a_rustok_error() -> None:
    error = NotFoundError("order 7")
    assert errors.from_exception(error) is error


@pytest.mark.parametrize("cls", ALL_KINDS)
def test_retry_after_exactly_for_the_retryable_ones(cls: type[RustokError]) -> None:
    error = cls(retry_after=12) if issubclass(cls, RetryableError) else cls()
    if cls in RETRYABLE:
        assert error.headers() == {"Retry-After": "12"}
        assert error.to_problem()["retry_after"] == 12
        assert error.graphql_extensions()["retry_after"] == 12
    else:
        assert error.headers() == {}
        assert "retry_after" not in error.to_problem()
        assert "retry_after" not in error.graphql_extensions()


def test_retryable_errors_send_a_default_retry_after() -> None:
    assert BackpressuredError().headers() == {
        "Retry-After": str(errors.DEFAULT_RETRY_AFTER_SECONDS)
    }


@pytest.mark.parametrize("bad", [-1, 1.5, True])
def test_retry_after_must_be_whole_non_negative_seconds(bad: int) -> None:
    with pytest.raises((TypeError, ValueError)):
        RateLimitExceededError(retry_after=bad)


@pytest.mark.parametrize("cls", ALL_KINDS)
def test_problem_body_has_rfc9457_members_and_is_json(cls: type[RustokError]) -> None:
    body = cls("something happened").to_problem(instance="/api/orders/42")
    assert json.loads(json.dumps(body)) == body
    assert body["type"] == f"urn:rustok:error:{cls.kind}"
    assert body["title"] == cls.title
    assert body["status"] == cls.status
    assert isinstance(body["detail"], str)
    assert body["instance"] == "/api/orders/42"
    assert body["kind"] == cls.kind


def test_instance_is_omitted_when_not_given() -> None:
    assert "instance" not in NotFoundError().to_problem()


def test_detail_defaults_to_the_title() -> None:
    assert ConflictError().to_problem()["detail"] == "Conflict"


def test_validation_field_errors_become_an_extension() -> None:
    error = ValidationError("bad order", fields={"sku": ["required"], "qty": ["must be > 0"]})
    expected = {"sku": ["required"], "qty": ["must be > 0"]}
    assert error.to_problem()["fields"] == expected
    assert error.graphql_extensions() == {"code": "BAD_USER_INPUT", "fields": expected}


def test_extra_members_appear_in_client_error_bodies() -> None:
    error = InvalidTransitionError("paid orders cannot be cancelled", extra={"from": "paid"})
    assert error.to_problem()["from"] == "paid"


def test_extra_members_cannot_shadow_reserved_ones() -> None:
    with pytest.raises(ValueError, match="status"):
        NotFoundError(extra={"status": 200})


@pytest.mark.parametrize("cls", [RustokError, RetryableError])
def test_the_bases_are_abstract(cls: type[RustokError]) -> None:
    with pytest.raises(TypeError, match="abstract"):
        cls()


@given(cls=st.sampled_from(CLIENT_ERRORS), detail=st.text())
def test_any_detail_round_trips_for_4xx(cls: type[RustokError], detail: str) -> None:
    body = cls(detail).to_problem()
    assert json.loads(json.dumps(body))["detail"] == detail


@given(cls=st.sampled_from(sorted(RETRYABLE, key=lambda c: c.kind)), seconds=st.integers(0))
def test_retry_after_seconds_appear_as_header_strings(
    cls: type[RetryableError], seconds: int
) -> None:
    assert cls(retry_after=seconds).headers()["Retry-After"] == str(seconds)

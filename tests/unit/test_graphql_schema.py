"""The GraphQL schema as SDL, snapshotted (a change to what clients may ask shows up in
review as a diff of `__snapshots__/test_graphql_schema.ambr`), and the one error mapping
every GraphQL error goes through."""

from __future__ import annotations

from graphql import GraphQLError
from sqlalchemy.exc import OperationalError
from syrupy.assertion import SnapshotAssertion

from rustok_ref.api.graphql.schema import schema
from rustok_ref.errors import GENERIC_INTERNAL_DETAIL, ConflictError


def test_schema_sdl(snapshot: SnapshotAssertion) -> None:
    assert schema.as_str() == snapshot


def mapped(message: str, *, path: list[str | int] | None, cause: Exception | None) -> GraphQLError:
    error = GraphQLError(message, path=path, original_error=cause)
    schema.process_errors([error])
    return error


def test_a_domain_error_keeps_its_detail_and_members() -> None:
    error = mapped("x", path=["createProduct"], cause=ConflictError("dup", extra={"sku": "a"}))
    assert error.message == "dup"
    assert error.extensions == {"code": "CONFLICT", "kind": "conflict", "sku": "a"}


def test_a_request_error_is_bad_user_input_with_its_message() -> None:
    error = mapped("Cannot query field 'nope' on type 'Tenant'.", path=None, cause=None)
    assert error.message == "Cannot query field 'nope' on type 'Tenant'."
    assert error.extensions == {"code": "BAD_USER_INPUT", "kind": "validation"}


def test_an_unexpected_exception_leaks_nothing() -> None:
    error = mapped("password=hunter2", path=["orders"], cause=RuntimeError("password=hunter2"))
    assert error.message == GENERIC_INTERNAL_DETAIL
    assert error.extensions == {"code": "INTERNAL_SERVER_ERROR", "kind": "internal"}
    broken = mapped("Cannot return null for non-nullable field.", path=["tenant"], cause=None)
    assert broken.extensions == {"code": "INTERNAL_SERVER_ERROR", "kind": "internal"}


def test_a_lost_database_is_retryable() -> None:
    lost = OperationalError("SELECT 1", {}, ConnectionRefusedError("refused"))
    error = mapped("refused", path=["products"], cause=lost)
    assert error.extensions == {
        "code": "SERVICE_UNAVAILABLE",
        "kind": "database_unavailable",
        "retry_after": 1,
    }

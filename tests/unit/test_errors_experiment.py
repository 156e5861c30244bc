"""The error measurements behind 10_errors: every kind is rendered once, the review's pairs
are read from the renderings (so a wrong rendering fails a pair), 500s leak nothing, and the
hierarchy census finds the one root, or every other root a service package adds."""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

from rustok_ref import errors
from rustok_ref.lab.experiments import errors as experiment


@pytest.fixture(scope="module")
def rendered() -> list[experiment.Rendered]:
    return experiment.render_all()


def test_every_kind_of_the_table_is_rendered_in_order(rendered: list[experiment.Rendered]) -> None:
    assert [r.kind for r in rendered] == [spec.kind for spec in errors.mapping_table()]
    assert sum(r.in_review for r in rendered) == 8  # the review's enum has eight variants


def test_the_review_pairs_hold(rendered: list[experiment.Rendered]) -> None:
    http, graphql = experiment.check_http(rendered), experiment.check_graphql(rendered)
    assert (len(http), len(graphql)) == (7, 6)
    assert experiment.share_holding(http) == experiment.share_holding(graphql) == 100.0


def test_the_reviews_answer_for_every_kind() -> None:
    assert experiment.review_http(errors.NotFoundError) == 404
    assert experiment.review_http(errors.TenantNotFoundError) == 500  # its catch-all
    assert experiment.review_http(errors.ConflictError) is None  # not in its enum
    assert experiment.review_graphql(errors.CircuitBreakerOpenError) == "INTERNAL_SERVER_ERROR"
    assert experiment.review_graphql(errors.RateLimitExceededError) == "RATE_LIMIT_EXCEEDED"
    assert experiment.review_graphql(errors.BackpressuredError) is None


def test_a_pair_is_read_from_the_rendering(rendered: list[experiment.Rendered]) -> None:
    broken = [r if r.cls is not errors.NotFoundError else _with_status(r, 500) for r in rendered]
    checks = experiment.check_http(broken)
    assert [c.error for c in checks if not c.holds] == ["NotFoundError"]
    assert experiment.share_holding(checks) == pytest.approx(100 * 6 / 7)


def _with_status(r: experiment.Rendered, status: int) -> experiment.Rendered:
    return experiment.Rendered(
        r.kind, r.cls, r.in_review, status, r.code, r.headers, r.problem, r.graphql
    )


def test_retryable_kinds_carry_retry_after_and_500s_leak_nothing(
    rendered: list[experiment.Rendered],
) -> None:
    for r in rendered:
        assert ("Retry-After" in r.headers) == issubclass(r.cls, errors.RetryableError)
        assert not r.leaks
    internal = next(r for r in rendered if r.cls is errors.InternalError)
    assert internal.graphql["message"] == errors.GENERIC_INTERNAL_DETAIL
    assert experiment.SECRET in str(experiment.example(errors.InternalError))  # logs keep it


def test_a_graphql_error_has_message_path_and_extensions() -> None:
    error = errors.RateLimitExceededError("slow down", retry_after=5)
    assert experiment.graphql_error(error, ["orders", 0]) == {
        "message": "slow down",
        "path": ["orders", 0],
        "extensions": {"code": "RATE_LIMIT_EXCEEDED", "retry_after": 5},
    }


def test_the_service_packages_have_one_error_root() -> None:
    found = experiment.error_hierarchies()
    assert found.roots == ("RustokError",)
    assert found.unimportable == ()
    names = {c.name for c in found.classes}
    assert {"NotFoundError", "TenantValidationError"} <= names


@pytest.fixture
def rogue_package() -> Iterator[str]:
    """A package defining its own error tree, a private signal and one of ours."""
    name = "rogue_errors_probe"
    module = types.ModuleType(name)
    exec(
        "from rustok_ref.errors import NotFoundError\n"
        "class StockError(ValueError): pass\n"
        "class _Signal(Exception): pass\n"
        "class MissingSku(NotFoundError): pass\n",
        module.__dict__,
    )
    sys.modules[name] = module
    yield name
    del sys.modules[name]


def test_another_root_is_counted_and_private_signals_are_not(rogue_package: str) -> None:
    found = experiment.error_hierarchies(["rustok_ref.errors", rogue_package])
    assert found.roots == ("RustokError", "ValueError")
    assert "_Signal" not in {c.name for c in found.classes}


def test_a_package_not_built_yet_is_skipped() -> None:
    found = experiment.error_hierarchies(["rustok_ref.not_built_yet"])
    assert (found.classes, found.unimportable) == ((), ())


def test_a_module_that_fails_to_import_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "half_written_probe"
    package.mkdir()
    (package / "__init__.py").write_text("class FineError(Exception): pass\n")
    (package / "broken.py").write_text("raise RuntimeError('half written')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    found = experiment.error_hierarchies(["half_written_probe"])
    assert found.roots == ("Exception",)
    assert found.unimportable == ("half_written_probe.broken: RuntimeError: half written",)

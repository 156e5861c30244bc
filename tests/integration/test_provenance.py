"""Provenance against the real PostgreSQL and Redis: versions, git state, locked packages."""

from __future__ import annotations

import importlib.metadata
import os
import re
from pathlib import Path

import pytest

from rustok_ref.lab import infra
from rustok_ref.lab.paths import REPO_ROOT
from rustok_ref.lab.provenance import Provenance, collect_provenance, git_state, locked_packages

pytestmark = pytest.mark.integration


def _collect(database_url: str | None, redis_url: str | None) -> Provenance:
    return collect_provenance(
        database_url=database_url,
        redis_url=redis_url,
        backend="external",
        profile="smoke",
        parameters={"tenants": 10, "mix": {"browse": 0.8}},
        seeds={"hypothesis": 1234},
    )


def test_collects_the_services_code_and_machine(services: infra.Services) -> None:
    provenance = _collect(services.database_url, services.redis_url)
    assert re.fullmatch(r"\d+(\.\d+)?\b.*", provenance.postgres_version or "")
    assert re.fullmatch(r"\d+\.\d+\.\d+", provenance.redis_version or "")
    assert re.fullmatch(r"[0-9a-f]{40}", provenance.git_sha)
    assert isinstance(provenance.git_dirty, bool)
    assert provenance.python_version.startswith("3.")
    assert provenance.cpu_count == os.cpu_count()
    assert len(provenance.load_average) == 3
    assert provenance.timestamp.utcoffset() is not None
    assert (provenance.backend, provenance.profile) == ("external", "smoke")
    assert provenance.parameters == {"tenants": 10, "mix": {"browse": 0.8}}
    assert provenance.seeds == {"hypothesis": 1234}


def test_the_sqlalchemy_url_form_reaches_the_same_server(services: infra.Services) -> None:
    url = services.database_url
    sqlalchemy_url = url.replace("postgresql://", "postgresql+psycopg://", 1)
    assert _collect(sqlalchemy_url, None).postgres_version == _collect(url, None).postgres_version


def test_a_service_without_a_url_has_no_version() -> None:
    provenance = _collect(None, None)
    assert (provenance.postgres_version, provenance.redis_version) == (None, None)


def test_every_locked_package_is_listed_with_its_installed_version() -> None:
    packages = {package.name: package for package in _collect(None, None).packages}
    pinned = (REPO_ROOT / "constraints.txt").read_text().count("==")
    assert len(packages) == pinned
    pydantic = packages["pydantic"]
    assert pydantic.installed == importlib.metadata.version("pydantic") == pydantic.locked
    assert not pydantic.mismatch


def test_the_record_survives_a_trip_through_json(services: infra.Services) -> None:
    provenance = _collect(services.database_url, services.redis_url)
    assert Provenance.model_validate_json(provenance.model_dump_json()) == provenance


def test_outside_a_git_work_tree_the_sha_is_unknown(tmp_path: Path) -> None:
    assert git_state(tmp_path) == ("unknown", None)


def test_a_drifted_or_missing_package_is_flagged(tmp_path: Path) -> None:
    constraints = tmp_path / "constraints.txt"
    installed = importlib.metadata.version("pydantic")
    constraints.write_text(
        "# via pip-compile\n"
        f"pydantic=={installed}\n"
        "    # via rustok-ref\n"
        "redis==0.0.1\n"
        "no-such-package-rustok==1.0\n"
    )
    packages = {package.name: package for package in locked_packages(constraints)}
    assert not packages["pydantic"].mismatch
    assert packages["redis"].mismatch
    assert packages["redis"].installed == importlib.metadata.version("redis")
    missing = packages["no-such-package-rustok"]
    assert (missing.installed, missing.mismatch) == (None, False)


def test_a_line_that_is_not_a_pin_is_refused(tmp_path: Path) -> None:
    constraints = tmp_path / "constraints.txt"
    constraints.write_text("pydantic>=2\n")
    with pytest.raises(ValueError, match=r"constraints\.txt:1: expected name==version"):
        locked_packages(constraints)

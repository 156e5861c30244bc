"""Where a figure came from: the code, the packages, the services and the machine of a run.

Every notebook summary, report index and benchmark file records one `Provenance`, so a
figure can be traced to a commit (and whether the tree was dirty), to the locked package
versions (and whether the installed ones differ), to the PostgreSQL and Redis it ran
against, and to the parameters, seeds and load of the machine that produced it.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

from pydantic import AwareDatetime, BaseModel, ConfigDict, JsonValue

from rustok_ref.lab.infra import postgres_version, redis_version
from rustok_ref.lab.paths import REPO_ROOT


class LockedPackage(BaseModel):
    """A package pinned in constraints.txt and the version installed (None: not installed,
    e.g. an extra this environment left out); `mismatch` flags an installed version that
    differs from the lock."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    locked: str
    installed: str | None
    mismatch: bool


class Provenance(BaseModel):
    """The context of one run. `git_dirty` is None when the tree is not a git work tree."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    git_sha: str
    git_dirty: bool | None
    packages: tuple[LockedPackage, ...]
    python_version: str
    postgres_version: str | None
    redis_version: str | None
    backend: str
    profile: str
    parameters: dict[str, JsonValue]
    seeds: dict[str, int]
    cpu_count: int | None
    load_average: tuple[float, float, float]
    timestamp: AwareDatetime


def _git(root: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=False)
    except FileNotFoundError:  # no git on the machine
        return None
    return done.stdout if done.returncode == 0 else None


def git_state(root: Path) -> tuple[str, bool | None]:
    """(HEAD's SHA, dirty?) of the work tree at `root`; ("unknown", None) outside git."""
    sha = _git(root, "rev-parse", "HEAD")
    status = _git(root, "status", "--porcelain")
    if sha is None or status is None:
        return "unknown", None
    return sha.strip(), bool(status.strip())


def locked_packages(constraints: Path) -> tuple[LockedPackage, ...]:
    """Each `name==version` of a pip constraints file beside the version installed here."""
    packages = []
    for number, raw in enumerate(constraints.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, version = (part.strip() for part in line.partition("=="))
        if not sep:
            raise ValueError(f"{constraints}:{number}: expected name==version, got {raw!r}")
        try:
            installed: str | None = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            installed = None
        packages.append(
            LockedPackage(
                name=name,
                locked=version,
                installed=installed,
                mismatch=installed is not None and installed != version,
            )
        )
    return tuple(sorted(packages, key=lambda package: package.name))


def collect_provenance(
    *,
    database_url: str | None,
    redis_url: str | None,
    backend: str,
    profile: str,
    parameters: Mapping[str, JsonValue],
    seeds: Mapping[str, int],
) -> Provenance:
    """The provenance of a run now; a service whose URL is None gets no version."""
    root = REPO_ROOT
    sha, dirty = git_state(root)
    return Provenance(
        git_sha=sha,
        git_dirty=dirty,
        packages=locked_packages(root / "constraints.txt"),
        python_version=platform.python_version(),
        postgres_version=None if database_url is None else postgres_version(database_url),
        redis_version=None if redis_url is None else redis_version(redis_url),
        backend=backend,
        profile=profile,
        parameters=dict(parameters),
        seeds=dict(seeds),
        cpu_count=os.cpu_count(),
        load_average=os.getloadavg(),
        timestamp=datetime.now(UTC),
    )

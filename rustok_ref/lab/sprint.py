"""The review's progress table, measured on a checkout (the logic of `01_sprint_metrics`).

Coverage comes from a coverage JSON, complexity from radon through `codemetrics`, the
boundaries from import-linter's contracts and grimp's import graph; Rust-side figures come
from a RusToK checkout when one is given, and are otherwise only quoted from the reference.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

from rustok_ref.lab import codemetrics
from rustok_ref.lab.codemetrics import RepoMetrics

TEST_KINDS = ("unit", "property", "integration", "snapshots", "benchmarks")
TYPESTATE_DIR = "tests/typestate"
# a line of a type-state call file that mypy must reject carries `# E: <error code>`
_TYPESTATE_CHECK = re.compile(r"#\s*E:\s*\S")
# radon's ranks in the review's words (its table says Medium -> Low-Medium -> Low)
RANK_WORDS = {"A": "Low", "B": "Low-Medium", "C": "Medium", "D": "High", "E": "Very high"}
NEEDS_RUSTOK = "needs a RusToK checkout at ae9fd91 (the notebook's rustok_path parameter)"


@dataclass(frozen=True)
class QuotedFigure:
    """A Rust-side figure read by someone else; shown, labelled as quoted, never judged."""

    what: str
    review_says: str
    reference_says: str
    where: str


QUOTED = (
    QuotedFigure("tenant cache being replaced (apps/server/src/middleware/tenant.rs)",
                 "580 lines", "724 lines (626 non-blank, non-comment)", "rustok-behaviour §2"),
    QuotedFigure("moka tenant cache (tenant_cache_v2.rs)", "~150 lines", "443 lines",
                 "rustok-behaviour §2.2"),
    QuotedFigure("tenant identifier validation (tenant_validation.rs)", "505 lines, 30+ tests",
                 "505 lines, 19 tests", "rustok-behaviour §1, §1.8"),
    QuotedFigure("event validation (events/validation.rs)", "260 lines, 25+ tests",
                 "227 lines, 25 tests (8 + 17)", "rustok-behaviour §3.3"),
    QuotedFigure("backpressure (events/backpressure.rs)", "464 lines", "441 lines, 11 tests",
                 "rustok-behaviour §4.1"),
    QuotedFigure("circuit breaker (resilience/circuit_breaker.rs)", "600 lines",
                 "577 lines, 9 tests", "rustok-behaviour §5"),
)  # fmt: skip


@dataclass(frozen=True)
class ModuleCoverage:
    module: str
    statements: int
    covered: int

    @property
    def percent(self) -> float:
        return 100.0 * self.covered / self.statements if self.statements else 100.0


def read_coverage(
    path: Path | None, package: str = "rustok_ref"
) -> tuple[float | None, list[ModuleCoverage]]:
    """Total percent and per-top-level-module coverage from a `coverage json` file."""
    if path is None or not Path(path).exists():
        return None, []
    data = json.loads(Path(path).read_text())
    modules: dict[str, list[int]] = {}
    for name, entry in data["files"].items():
        parts = Path(name).parts
        if package not in parts:
            continue
        module = parts[parts.index(package) + 1]  # a subpackage, or a top-level file
        totals = modules.setdefault(module, [0, 0])
        totals[0] += int(entry["summary"]["num_statements"])
        totals[1] += int(entry["summary"]["covered_lines"])
    rows = [ModuleCoverage(name, s, c) for name, (s, c) in sorted(modules.items())]
    return float(data["totals"]["percent_covered"]), rows


def product_complexity(metrics: RepoMetrics, package: str = "rustok_ref") -> float | None:
    """Average cyclomatic complexity per block of the product code (the harness, lab/, is
    not part of the reviewed architecture), weighted by each file's block count."""
    total = blocks = 0.0
    for file in metrics.files:
        inside_package = file.path.startswith(f"{package}/")
        if not inside_package or file.path.startswith(f"{package}/lab/"):
            continue
        if file.average_complexity is not None and file.functions:
            total += file.average_complexity * file.functions
            blocks += file.functions
    return total / blocks if blocks else None


def complexity_rank(average: float) -> str:
    import radon.complexity

    return str(radon.complexity.cc_rank(average))


def count_tests_by_kind(repo: Path, rev: str | None = None) -> dict[str, int]:
    """Test functions per `tests/<kind>/` folder (hypothesis tests count under property)."""
    counts: dict[str, int] = {}
    for kind in TEST_KINDS:
        folder = repo / "tests" / kind
        if rev is None and not folder.is_dir():
            counts[kind] = 0
            continue
        try:
            measured = codemetrics.measure(folder, rev)
        except codemetrics.MetricsError:
            counts[kind] = 0
            continue
        python = measured.languages.get("python")
        counts[kind] = sum(python.tests.values()) if python else 0
    return counts


def count_typestate_checks(repo: Path, rev: str | None = None) -> int:
    """Illegal calls the type-state tests make mypy reject (`# E:` lines under
    tests/typestate): compile-time tests with no `def test_`, so `count_tests_by_kind`
    cannot see them."""
    if rev is None:
        folder = repo / TYPESTATE_DIR
        texts = (
            [path.read_text() for path in sorted(folder.rglob("*.py"))] if folder.is_dir() else []
        )
        return sum(len(_TYPESTATE_CHECK.findall(text)) for text in texts)
    found = subprocess.run(
        [
            "git",
            "-C",
            str(repo),
            "grep",
            "-c",
            "-E",
            _TYPESTATE_CHECK.pattern,
            rev,
            "--",
            TYPESTATE_DIR,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if found.returncode not in (0, 1):  # 1: no match
        raise codemetrics.MetricsError(f"git grep at {rev} failed: {found.stderr.strip()}")
    return sum(int(line.rsplit(":", 1)[1]) for line in found.stdout.splitlines())


@dataclass(frozen=True)
class HotSpot:
    """One function or method and its cyclomatic complexity."""

    path: str
    name: str
    line: int
    complexity: int

    @property
    def rank(self) -> str:
        return complexity_rank(self.complexity)


def complexity_hot_spots(repo: Path, package: str = "rustok_ref", top: int = 15) -> list[HotSpot]:
    """The `top` most complex functions and methods of the product code in the work tree
    (the `lab/` harness left out, as in `product_complexity`), most complex first: where
    an average hides the blocks a reviewer should read first."""
    from radon.complexity import cc_visit
    from radon.visitors import Function

    spots = []
    root = repo / package
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(repo).as_posix()
        if relative.startswith(f"{package}/lab/"):
            continue
        try:
            blocks = cc_visit(path.read_text())
        except (SyntaxError, ValueError):
            continue
        spots += [
            HotSpot(relative, block.fullname, block.lineno, int(block.complexity))
            for block in blocks
            if isinstance(block, Function)
        ]
    spots.sort(key=lambda spot: (-spot.complexity, spot.path, spot.line))
    return spots[:top]


@dataclass(frozen=True)
class Contracts:
    kept: int
    broken: int
    output: str


def import_contracts(repo: Path) -> Contracts:
    """Run import-linter on the checkout's own contracts (pyproject.toml)."""
    lint = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run(
        [str(lint), "--no-cache"], cwd=repo, capture_output=True, text=True, check=False
    )
    match = re.search(r"Contracts: (\d+) kept, (\d+) broken", done.stdout)
    if not match:
        raise RuntimeError(
            f"lint-imports gave no verdict: {done.stdout[-500:]}{done.stderr[-500:]}"
        )
    return Contracts(int(match.group(1)), int(match.group(2)), done.stdout)


def package_cycles(package: str = "rustok_ref") -> list[tuple[str, str]]:
    """Pairs of top-level modules that import each other (directly or through others)."""
    import grimp

    graph = grimp.build_graph(package)
    children = sorted(graph.find_children(package))
    return [
        (a, b)
        for a, b in combinations(children, 2)
        if graph.chain_exists(importer=a, imported=b, as_packages=True)
        and graph.chain_exists(importer=b, imported=a, as_packages=True)
    ]


@dataclass(frozen=True)
class RustFigures:
    files: int
    physical: int
    crates: int
    apps: int
    per_file: Mapping[str, codemetrics.FileMetrics]

    def lines_of(self, path: str) -> int | None:
        file = self.per_file.get(path)
        return file.physical if file else None

    def tests_in(self, *paths: str) -> int | None:
        found = [self.per_file[p] for p in paths if p in self.per_file]
        return sum(sum(f.tests.values()) for f in found) if found else None


def rust_figures(metrics: RepoMetrics) -> RustFigures | None:
    """The code-base figures the review states, from a measured RusToK checkout."""
    rust = metrics.languages.get("rust")
    if rust is None:
        return None
    crates = [unit for unit in metrics.units if unit.kind == "crate"]
    return RustFigures(
        files=rust.files,
        physical=rust.physical,
        crates=len(crates),
        apps=sum(1 for unit in crates if unit.path.startswith("apps/")),
        per_file={f.path: f for f in metrics.files if f.language == "rust"},
    )

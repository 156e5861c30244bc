"""The sprint-table logic behind 01_sprint_metrics, on trees the tests build."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from rustok_ref.lab import codemetrics, sprint

SIMPLE = "def simple(x):\n    return x\n"
BRANCHY = "def branchy(x):\n" + "".join(f"    if x == {i}:\n        return {i}\n" for i in range(9))
BRANCHY += "    return -1\n"


def _write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_coverage_is_read_in_total_and_per_top_level_module(tmp_path: Path) -> None:
    def entry(statements: int, covered: int) -> dict[str, object]:
        return {"summary": {"num_statements": statements, "covered_lines": covered}}

    report = tmp_path / "coverage.json"
    report.write_text(
        json.dumps(
            {
                "totals": {"percent_covered": 62.5},
                "files": {
                    "rustok_ref/errors.py": entry(10, 10),
                    "rustok_ref/lab/infra.py": entry(20, 10),
                    "rustok_ref/lab/faults.py": entry(20, 10),
                    "tests/conftest.py": entry(5, 5),
                },
            }
        )
    )
    total, modules = sprint.read_coverage(report)
    assert total == 62.5
    by_name = {m.module: (m.statements, m.covered, m.percent) for m in modules}
    assert by_name == {"errors.py": (10, 10, 100.0), "lab": (40, 20, 50.0)}


def test_missing_coverage_is_none_not_zero(tmp_path: Path) -> None:
    assert sprint.read_coverage(None) == (None, [])
    assert sprint.read_coverage(tmp_path / "absent.json") == (None, [])


def test_product_complexity_leaves_the_harness_out(tmp_path: Path) -> None:
    tree = _write(
        tmp_path,
        {
            "rustok_ref/__init__.py": "",
            "rustok_ref/domain.py": SIMPLE,
            "rustok_ref/lab/__init__.py": "",
            "rustok_ref/lab/harness.py": BRANCHY,
        },
    )
    metrics = codemetrics.measure(tree)
    assert sprint.product_complexity(metrics) == 1.0
    assert sprint.complexity_rank(1.0) == "A"
    assert sprint.RANK_WORDS[sprint.complexity_rank(12)] == "Medium"


def test_no_product_code_means_no_complexity(tmp_path: Path) -> None:
    assert sprint.product_complexity(codemetrics.measure(_write(tmp_path, {"x.txt": ""}))) is None


def test_tests_are_counted_by_the_folder_they_live_in(tmp_path: Path) -> None:
    tree = _write(
        tmp_path,
        {
            "tests/unit/test_a.py": "def test_one():\n    pass\n\ndef test_two():\n    pass\n",
            "tests/property/test_b.py": "async def test_three():\n    pass\n",
        },
    )
    counts = sprint.count_tests_by_kind(tree)
    assert counts == {"unit": 2, "property": 1, "integration": 0, "snapshots": 0, "benchmarks": 0}


def test_tests_are_counted_at_a_revision_without_a_checkout(tmp_path: Path) -> None:
    tree = _write(tmp_path, {"tests/unit/test_a.py": "def test_one():\n    pass\n"})
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q", str(tree)], check=True)
    subprocess.run([*git, "-C", str(tree), "add", "-A"], check=True)
    subprocess.run([*git, "-C", str(tree), "commit", "-qm", "one"], check=True)
    (tree / "tests/unit/test_a.py").write_text(
        "def test_one():\n    pass\n\ndef test_2():\n    pass\n"
    )
    assert sprint.count_tests_by_kind(tree)["unit"] == 2
    assert sprint.count_tests_by_kind(tree, "HEAD")["unit"] == 1


def test_rust_figures_count_crates_apps_files_and_tests(tmp_path: Path) -> None:
    tree = _write(
        tmp_path,
        {
            "Cargo.toml": "[workspace]\n",
            "apps/server/Cargo.toml": "[package]\n",
            "apps/server/src/main.rs": "fn main() {}\n",
            "crates/rustok-core/Cargo.toml": "[package]\n",
            "crates/rustok-core/src/tenant_validation.rs": (
                "pub fn f() {}\n#[cfg(test)]\nmod tests {\n    #[test]\n    fn a() {}\n"
                "    #[test]\n    fn b() {}\n}\n"
            ),
        },
    )
    rust = sprint.rust_figures(codemetrics.measure(tree))
    assert rust is not None
    assert (rust.files, rust.crates, rust.apps) == (2, 2, 1)
    assert rust.physical == 9
    assert rust.lines_of("crates/rustok-core/src/tenant_validation.rs") == 8
    assert rust.tests_in("crates/rustok-core/src/tenant_validation.rs") == 2
    assert rust.lines_of("crates/absent.rs") is None
    assert rust.tests_in("crates/absent.rs") is None


def test_a_tree_without_rust_has_no_rust_figures(tmp_path: Path) -> None:
    assert sprint.rust_figures(codemetrics.measure(_write(tmp_path, {"a.py": SIMPLE}))) is None


def test_this_repository_keeps_its_contracts_and_has_no_package_cycles() -> None:
    contracts = sprint.import_contracts(Path(__file__).resolve().parents[2])
    assert contracts.kept >= 3
    assert contracts.broken == 0, contracts.output
    assert sprint.package_cycles() == []


def test_quoted_figures_name_their_source() -> None:
    assert all(q.where.startswith("rustok-behaviour") for q in sprint.QUOTED)


@pytest.mark.parametrize(
    ("average", "words"), [(2.0, "Low"), (7.0, "Low-Medium"), (15.0, "Medium")]
)
def test_radon_ranks_map_to_the_reviews_words(average: float, words: str) -> None:
    assert sprint.RANK_WORDS[sprint.complexity_rank(average)] == words

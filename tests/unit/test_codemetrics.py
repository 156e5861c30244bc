"""`rustok_ref.lab.codemetrics` and `rustok-ref metrics` on Python and Rust trees built here.

Every tree is a real git repository in `tmp_path` (commits, a bare clone); physical lines
are checked against `wc -l` on the same files, and the other figures are counted by hand
from the sources below.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rustok_ref.cli import app
from rustok_ref.lab.codemetrics import MetricsError, RepoMetrics, measure

PYTHON_TREE: dict[str, str | bytes] = {
    "pkg/__init__.py": '"""The package."""\n',
    "pkg/core.py": '''"""Core helpers.

Docstrings count as code.
"""

# a comment
    # an indented comment


def branchy(x):
    if x > 1:  # a trailing comment: the line is code
        return 1
    elif x < 0:
        return -1
    for _ in range(3):
        pass
    return 0


def plain():
    return None
''',
    "pkg/crlf.py": b"# windows\r\n\r\nVALUE = 1\r\n",
    "pkg/sub/__init__.py": "",
    "pkg/sub/deep.py": "def choose(a, b):\n    return a if a else b\n",
    "tests/test_core.py": """from pkg.core import branchy


def test_branchy():
    assert branchy(2) == 1


async def test_async():
    assert True


def helper_test():
    return 1
""",
    # Not UTF-8, and no newline after the last line, which `wc -l` does not count.
    "scripts/tool.py": b"# caf\xe9\ndef main():\n    pass",
    "README.md": "# not measured\n",
    ".gitignore": "ignored.py\n",
}

RUST_TREE: dict[str, str | bytes] = {
    "Cargo.toml": '[workspace]\nmembers = ["crates/core", "crates/api"]\n',
    "crates/core/Cargo.toml": '[package]\nname = "core"\nversion = "0.1.0"\n',
    "crates/core/src/lib.rs": """//! Core crate.

/* A block comment
   /* nested */
   still inside */
pub fn add(a: i32, b: i32) -> i32 {
    let _url = "http://example.invalid/*not-a-comment";
    if a > 0 { a + b } else { b } // a trailing comment: the line is code
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds() {
        assert_eq!(add(1, 2), 3);
    }

    #[test]
    fn adds_negative() {
        assert_eq!(add(-1, 2), 2);
    }

    proptest::proptest! {
        #[test]
        fn add_is_total(a in 0..10i32, b in 0..10i32) {
            let _ = add(a, b);
        }

        #[test]
        fn add_commutes(a in 0..10i32) {
            prop_assert_eq!(add(a, 1), add(1, a));
        }
    }
}
""",
    "crates/api/Cargo.toml": '[package]\nname = "api"\nversion = "0.1.0"\n',
    "crates/api/src/main.rs": 'fn main() {\n    println!("{}", core::add(1, 2));\n}\n',
    "crates/api/tests/http.rs": """// Integration tests.

#[tokio::test]
async fn serves() {
    assert!(true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_in_parallel() {
    // #[test] in a comment does not count
    let attr = "#[test]";
    assert!(!attr.is_empty());
}
""",
    ".gitignore": "target/\n",
    "target/debug/build/generated.rs": "#[test]\nfn ignored() {}\n",
}


def git(cwd: Path, *args: str) -> str:
    command = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    command += ["-c", "commit.gpgsign=false", "-c", "init.defaultBranch=main", *args]
    done = subprocess.run(command, cwd=cwd, check=True, capture_output=True, text=True)
    return done.stdout.strip()


def write(root: Path, files: dict[str, str | bytes]) -> None:
    for name, content in files.items():
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_bytes(content.encode())


def committed_repo(root: Path, files: dict[str, str | bytes]) -> Path:
    root.mkdir()
    git(root, "init", "-q")
    write(root, files)
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "first")
    return root


def wc_lines(root: Path, names: list[str]) -> dict[str, int]:
    """`wc -l` per file, run on the files themselves."""
    done = subprocess.run(
        ["wc", "-l", "--", *names], cwd=root, check=True, capture_output=True, text=True
    )
    counts = {}
    for line in done.stdout.splitlines():
        count, name = line.split(maxsplit=1)
        if name != "total":
            counts[name] = int(count)
    return counts


def same_figures(left: RepoMetrics, right: RepoMetrics) -> bool:
    fields = {"languages", "units", "files"}
    return left.model_dump(include=fields) == right.model_dump(include=fields)


@pytest.fixture
def python_repo(tmp_path: Path) -> Path:
    return committed_repo(tmp_path / "py", PYTHON_TREE)


@pytest.fixture
def rust_repo(tmp_path: Path) -> Path:
    return committed_repo(tmp_path / "rs", RUST_TREE)


def test_python_working_tree(python_repo: Path) -> None:
    write(
        python_repo,
        {"untracked.py": "def test_untracked():\n    pass\n", "ignored.py": "def test_x(): pass\n"},
    )

    metrics = measure(python_repo)

    names = [f.path for f in metrics.files]
    assert names == [
        "pkg/__init__.py",
        "pkg/core.py",
        "pkg/crlf.py",
        "pkg/sub/__init__.py",
        "pkg/sub/deep.py",
        "scripts/tool.py",
        "tests/test_core.py",
        "untracked.py",
    ]
    assert {f.path: f.physical for f in metrics.files} == wc_lines(python_repo, names)
    by_path = {f.path: f for f in metrics.files}
    core = by_path["pkg/core.py"]
    assert (core.physical, core.code, core.comment, core.blank) == (21, 13, 2, 6)
    assert core.average_complexity == 2.5
    crlf = by_path["pkg/crlf.py"]
    assert (crlf.physical, crlf.code, crlf.comment, crlf.blank) == (3, 1, 1, 1)
    tool = by_path["scripts/tool.py"]
    assert (tool.physical, tool.code, tool.comment, tool.blank) == (2, 1, 1, 0)

    python = metrics.languages["python"]
    assert list(metrics.languages) == ["python"]
    assert python.files == 8
    assert python.physical == sum(wc_lines(python_repo, names).values()) == 44
    assert python.code + python.comment + python.blank == python.physical
    assert (python.comment, python.blank) == (4, 13)
    assert python.tests == {"def test_": 2, "async def test_": 1}
    # Blocks: branchy 4, choose 2, the two tests 2 each (radon counts `assert`), four of 1.
    assert python.functions == 8
    assert python.average_complexity == 14 / 8
    assert python.complexity_rank == "A"
    assert metrics.source == "worktree"

    units = [(u.kind, u.path, u.language, u.files, u.physical) for u in metrics.units]
    assert units == [("package", "pkg", "python", 3, 25), ("package", "pkg/sub", "python", 2, 2)]


def test_rust_workspace_with_two_crates(rust_repo: Path) -> None:
    metrics = measure(rust_repo)

    names = [f.path for f in metrics.files]
    assert names == ["crates/api/src/main.rs", "crates/api/tests/http.rs", "crates/core/src/lib.rs"]
    assert {f.path: f.physical for f in metrics.files} == wc_lines(rust_repo, names)
    lib = next(f for f in metrics.files if f.path == "crates/core/src/lib.rs")
    assert (lib.physical, lib.code, lib.comment, lib.blank) == (36, 26, 4, 6)
    assert lib.tests == {"#[test]": 2, "#[tokio::test]": 0, "proptest!": 2}
    http = next(f for f in metrics.files if f.path == "crates/api/tests/http.rs")
    assert (http.physical, http.code, http.comment, http.blank) == (13, 9, 2, 2)

    rust = metrics.languages["rust"]
    assert list(metrics.languages) == ["rust"]
    assert (rust.files, rust.physical, rust.code, rust.comment, rust.blank) == (3, 52, 38, 6, 8)
    assert rust.tests == {"#[test]": 2, "#[tokio::test]": 2, "proptest!": 2}
    # lizard: `add` has CCN 2, the seven other functions 1.
    assert rust.functions == 8
    assert rust.average_complexity == 9 / 8
    assert rust.complexity_rank is None

    assert [u.model_dump() for u in metrics.units] == [
        {
            "kind": "crate",
            "path": "crates/api",
            "language": "rust",
            "files": 2,
            "physical": 16,
            "tests": {"#[test]": 0, "#[tokio::test]": 2, "proptest!": 0},
        },
        {
            "kind": "crate",
            "path": "crates/core",
            "language": "rust",
            "files": 1,
            "physical": 36,
            "tests": {"#[test]": 2, "#[tokio::test]": 0, "proptest!": 2},
        },
    ]


def test_rev_reads_an_older_revision_without_checkout(python_repo: Path) -> None:
    first = git(python_repo, "rev-parse", "HEAD")
    at_first = measure(python_repo)
    write(python_repo, {"pkg/extra.py": "def test_more():\n    pass\n"})
    (python_repo / "pkg/sub/deep.py").unlink()
    git(python_repo, "add", "-A")
    git(python_repo, "commit", "-q", "-m", "second")
    second = git(python_repo, "rev-parse", "HEAD")
    # An uncommitted edit that any checkout would have to refuse or overwrite.
    write(python_repo, {"pkg/core.py": "# edited, not committed\n"})

    old = measure(python_repo, rev=first)

    assert same_figures(old, at_first)
    assert (old.source, old.rev) == ("revision", first)
    assert old.languages["python"].tests == {"def test_": 1, "async def test_": 1}
    assert not same_figures(measure(python_repo, rev="HEAD"), at_first)
    assert git(python_repo, "rev-parse", "HEAD") == second
    assert git(python_repo, "status", "--porcelain") == "M pkg/core.py"
    assert (python_repo / "pkg/core.py").read_text() == "# edited, not committed\n"


def test_bare_clone_reads_head_or_a_rev(python_repo: Path, tmp_path: Path) -> None:
    first = git(python_repo, "rev-parse", "HEAD")
    at_first = measure(python_repo)
    write(python_repo, {"pkg/extra.py": "def test_more():\n    pass\n"})
    git(python_repo, "add", "-A")
    git(python_repo, "commit", "-q", "-m", "second")
    git(tmp_path, "clone", "-q", "--bare", str(python_repo), "bare.git")
    bare = tmp_path / "bare.git"

    head = measure(bare)

    assert (head.source, head.rev) == ("revision", "HEAD")
    assert same_figures(head, measure(python_repo))
    assert head.languages["python"].files == at_first.languages["python"].files + 1
    assert same_figures(measure(bare, rev=first), at_first)


def test_a_subfolder_is_measured_alone_at_the_tree_and_at_a_rev(python_repo: Path) -> None:
    metrics = measure(python_repo / "pkg")
    at_head = measure(python_repo / "pkg", rev="HEAD")

    assert [f.path for f in metrics.files][:2] == ["__init__.py", "core.py"]
    assert [u.path for u in metrics.units] == [".", "sub"]
    assert same_figures(metrics, at_head)


def test_plain_folder_is_walked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    root = tmp_path / "plain"
    branches = "".join(f"    if x == {n}:\n        return {n}\n" for n in range(6))
    write(
        root,
        {
            "app/__init__.py": "",
            "app/complex.py": f"def f(x):\n{branches}    return -1\n",
            "app/broken.py": "def (:\n",
            **{f"{d}/skipped.py": "def test_x(): pass\n" for d in (".venv", "node_modules")},
            "app/__pycache__/skipped.py": "def test_x(): pass\n",
            "target/skipped.rs": "#[test]\nfn t() {}\n",
        },
    )

    metrics = measure(root)

    assert metrics.source == "directory"
    assert [f.path for f in metrics.files] == ["app/__init__.py", "app/broken.py", "app/complex.py"]
    python = metrics.languages["python"]
    assert python.physical == 1 + 14
    assert (python.average_complexity, python.complexity_rank) == (7, "B")
    assert python.unparsed_files == 1
    with pytest.raises(MetricsError, match="not a git repository"):
        measure(root, rev="HEAD")


def test_unknown_rev_is_a_clear_error(python_repo: Path) -> None:
    with pytest.raises(ValueError, match=r"'no-such-rev' does not exist.*rev-parse"):
        measure(python_repo, rev="no-such-rev")


def test_cli_prints_tables_and_json(rust_repo: Path) -> None:
    runner = CliRunner()

    table = runner.invoke(app, ["metrics", str(rust_repo)])
    as_json = runner.invoke(app, ["metrics", str(rust_repo), "--rev", "HEAD", "--json"])

    assert table.exit_code == 0, table.output
    assert "tests #[tokio::test]" in table.stdout
    assert "crates/core" in table.stdout
    assert as_json.exit_code == 0, as_json.output
    parsed = json.loads(as_json.stdout)
    assert parsed["languages"]["rust"]["tests"] == {
        "#[test]": 2,
        "#[tokio::test]": 2,
        "proptest!": 2,
    }
    assert [unit["path"] for unit in parsed["units"]] == ["crates/api", "crates/core"]


def test_cli_bad_rev_exits_1(rust_repo: Path) -> None:
    result = CliRunner().invoke(app, ["metrics", str(rust_repo), "--rev", "nope"])

    assert result.exit_code == 1
    assert "revision 'nope' does not exist" in result.stderr

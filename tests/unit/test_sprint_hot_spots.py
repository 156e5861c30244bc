"""01_sprint_metrics' additions: type-state checks counted beside the test kinds, and the
product code's complexity hot spots, on trees the tests build."""

from __future__ import annotations

import subprocess
from pathlib import Path

from rustok_ref.lab import sprint

BRANCHY = "def branchy(x):\n" + "".join(f"    if x == {i}:\n        return {i}\n" for i in range(6))
BRANCHY += "    return -1\n"
METHODS = (
    "class Machine:\n"
    "    def step(self, x):\n"
    "        if x:\n            return 1\n        elif x is None:\n            return 2\n"
    "        return 3\n"
    "    def idle(self):\n        return 0\n"
)


def _write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_typestate_checks_are_the_lines_mypy_must_reject(tmp_path: Path) -> None:
    tree = _write(
        tmp_path,
        {
            "tests/typestate/illegal_calls.py": (
                "order.pay()  # E: misc\nproduct.ship()  # E: attr-defined\n# E is for error\n"
            ),
            "tests/typestate/legal_calls.py": "order.submit()\n",
            "tests/unit/test_a.py": "x = 1  # E: misc\n",  # not a type-state file
        },
    )
    assert sprint.count_typestate_checks(tree) == 2
    assert sprint.count_typestate_checks(tmp_path / "elsewhere") == 0


def test_typestate_checks_are_counted_at_a_revision_without_a_checkout(tmp_path: Path) -> None:
    tree = _write(tmp_path, {"tests/typestate/illegal_calls.py": "a.b()  # E: misc\n"})
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q", str(tree)], check=True)
    subprocess.run([*git, "-C", str(tree), "add", "-A"], check=True)
    subprocess.run([*git, "-C", str(tree), "commit", "-qm", "one"], check=True)
    (tree / "tests/typestate/illegal_calls.py").write_text("a.b()  # E: misc\nc.d()  # E: misc\n")
    assert sprint.count_typestate_checks(tree) == 2
    assert sprint.count_typestate_checks(tree, "HEAD") == 1


def test_hot_spots_are_the_most_complex_product_functions_and_methods_first(
    tmp_path: Path,
) -> None:
    tree = _write(
        tmp_path,
        {
            "rustok_ref/__init__.py": "",
            "rustok_ref/domain.py": BRANCHY,
            "rustok_ref/machines/state.py": METHODS,
            "rustok_ref/lab/harness.py": BRANCHY.replace("branchy", "harness") * 3,
            "rustok_ref/broken.py": "def (:\n",
        },
    )
    spots = sprint.complexity_hot_spots(tree, top=3)
    assert [(s.path, s.name, s.complexity) for s in spots] == [
        ("rustok_ref/domain.py", "branchy", 7),
        ("rustok_ref/machines/state.py", "Machine.step", 3),
        ("rustok_ref/machines/state.py", "Machine.idle", 1),
    ]
    assert spots[0].rank == "B"
    assert spots[0].line == 1
    assert len(sprint.complexity_hot_spots(tree, top=1)) == 1

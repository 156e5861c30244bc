"""docs/api.md stays true: its shell lines run as written (seed, key, every curl) against a
real server, and its role and error tables match the code they document."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from api_support import run_server, settings_env

from rustok_ref.api.auth import ROLE_PERMISSIONS, Permission, Role
from rustok_ref.config import Settings
from rustok_ref.errors import mapping_table

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"
SETUP_ONLY = ("export ", "python ", "rustok-ref serve", "API=")
"""Lines the test does itself: its own migrated database, its own server and address."""
ASSIGNMENT = re.compile(r"([A-Z_]+)=(.*)")


def shell_lines(text: str) -> Iterator[str]:
    """The logical lines of the ```sh blocks (backslash continuations joined)."""
    for block in re.findall(r"```sh\n(.*?)```", text, flags=re.DOTALL):
        yield from re.sub(r"\\\n\s*", "", block).splitlines()


def section(text: str, heading: str) -> str:
    return text.split(heading, 1)[1].split("\n## ", 1)[0]


def table_rows(text: str) -> list[list[str]]:
    """The body rows of the markdown tables in `text`, cells stripped of backticks."""
    rows = [line for line in text.splitlines() if line.startswith("|")]
    return [
        [cell.strip().strip("`") for cell in row.strip("|").split("|")]
        for row in rows[2:]  # header and rule
    ]


def run(line: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-o", "pipefail", "-c", line],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_every_shell_line_of_the_doc_works_against_a_seeded_server(
    app_settings: Settings, tmp_path: Path
) -> None:
    env = {**os.environ, **settings_env(app_settings)}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    answered: dict[str, int] = {}
    with run_server(app_settings, tmp_path) as server:
        env["API"] = server.base_url
        for line in shell_lines(DOC.read_text()):
            if not line.strip() or line.startswith(SETUP_ONLY):
                continue
            assigned = ASSIGNMENT.fullmatch(line)
            if assigned is not None:
                name = assigned[1]
                done = run(f'{line}; printf %s "${name}"', env, tmp_path)
                assert done.returncode == 0 and done.stdout not in ("", "null"), (line, done)
                env[name] = done.stdout
                continue
            if line.startswith("curl "):
                out = tmp_path / "answer"
                done = run(f"{line} -o {out} -w '%{{http_code}}'", env, tmp_path)
                assert done.returncode == 0, (line, done.stderr)
                status = int(done.stdout[-3:])
                assert status < 500, (line, status, out.read_text(errors="replace"))
                answered[line] = status
                continue
            assert line.startswith("rustok-ref "), f"the test does not know how to run: {line}"
            done = run(line, env, tmp_path)
            assert done.returncode == 0, (line, done.stderr)
    for route in ("/healthz", "/products", "/orders", "/pay", "/graphql", "/admin"):
        assert any(route in line for line in answered), f"no example calls {route}"
    problems = [line for line, status in answered.items() if status >= 400]
    assert len(problems) == 1 and "Not allowed" in problems[0], answered


def test_the_role_table_matches_role_permissions() -> None:
    rows = table_rows(section(DOC.read_text(), "## 5. Roles"))
    documented = {
        Role(role): {Permission(row[0]) for row in rows if row[column] == "yes"}
        for column, role in enumerate(("admin", "staff", "customer"), start=1)
    }
    assert documented == ROLE_PERMISSIONS
    assert [row[0] for row in rows] == [permission.value for permission in Permission]


def test_the_error_table_matches_the_mapping_table() -> None:
    rows = table_rows(section(DOC.read_text(), "## 6. Errors"))
    expected = [
        [spec.kind, str(spec.status), spec.code, spec.title, "yes" if spec.retry_after else "—"]
        for spec in mapping_table()
    ]
    assert rows == expected

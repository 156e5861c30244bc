"""Code metrics for Python and Rust trees, so the review's size and test figures can be re-measured.

`measure` works on any git repository (bare too) or plain folder, at the working tree or
at a revision read through git (`ls-tree` and one `cat-file --batch` process: no checkout,
no temporary files), so a report can set the review's numbers beside measured ones.

Counting rules, chosen to be checkable by other tools:
- physical lines are the `b"\\n"` bytes of a file, exactly what `wc -l` prints; a last line
  without a newline is not counted, and so is not classified either;
- blank lines hold whitespace only; comment lines are, for Python, lines whose first
  non-blank character is `#` (docstrings count as code, though a line of a multi-line
  string that starts with `#` counts as a comment), and for Rust, lines holding only
  `//` or `/* */` comment text (block comments nest, as in Rust); code is the rest;
- tests are counted by kind: `def test_` and `async def test_` for Python; `#[test]`,
  `#[tokio::test]` (with or without arguments) and the test functions of `proptest!`
  blocks for Rust (a `#[test]` inside a `proptest!` block counts as proptest only);
- complexity is radon's cyclomatic complexity for Python (the average over every class,
  function and method block, as `radon cc --total-average` computes it, ranked by
  `cc_rank`) and lizard's CCN for Rust (the average over functions);
- a crate is a folder with a `Cargo.toml`, a package a folder with an `__init__.py`; a
  Rust file belongs to its nearest enclosing crate, a Python file to its nearest package.
Symbolic links and submodules are skipped.
"""

from __future__ import annotations

import bisect
import os
import re
import subprocess
from collections.abc import Iterable, Iterator
from pathlib import Path, PurePosixPath
from typing import Literal, NamedTuple

import lizard
from pydantic import BaseModel, ConfigDict
from radon.complexity import cc_rank, cc_visit
from rich.table import Table
from rich.text import Text

Language = Literal["python", "rust"]
UnitKind = Literal["crate", "package"]
Source = Literal["worktree", "directory", "revision"]

_EXTENSIONS: dict[str, Language] = {".py": "python", ".rs": "rust"}
_UNIT_MARKERS: dict[Language, tuple[str, UnitKind]] = {
    "python": ("__init__.py", "package"),
    "rust": ("Cargo.toml", "crate"),
}
_TEST_KINDS: dict[Language, tuple[str, ...]] = {
    "python": ("def test_", "async def test_"),
    "rust": ("#[test]", "#[tokio::test]", "proptest!"),
}
_SKIPPED_DIRS = frozenset({".git", ".venv", "target", "node_modules", "__pycache__"})

_PY_TEST = re.compile(r"^[ \t]*def[ \t]+test_", re.MULTILINE)
_PY_ASYNC_TEST = re.compile(r"^[ \t]*async[ \t]+def[ \t]+test_", re.MULTILINE)
_RS_TEST = re.compile(r"#\s*\[\s*test\s*\]")
_RS_TOKIO_TEST = re.compile(r"#\s*\[\s*tokio\s*::\s*test\b\s*[\](]")
_RS_PROPTEST = re.compile(r"\bproptest\s*!\s*[{(\[]")
_RS_FN = re.compile(r"\bfn\b")
# Where a comment or a literal may start; raw strings before plain strings, chars last.
_RS_START = re.compile(
    r"""//|/\*|(?<!\w)(?:[bc]?r(?P<hashes>\#*)")|"|'(?:\\(?:u\{[0-9a-fA-F]+\}|.)|[^\\'\n])'"""
)
_RS_BLOCK_DELIMITER = re.compile(r"/\*|\*/")
_RS_STRING_REST = re.compile(r'(?:[^"\\]|\\.)*"?', re.DOTALL)
_NOT_NEWLINE = re.compile(r"[^\n]")
_OPENERS = {"{": "}", "(": ")", "[": "]"}


class MetricsError(ValueError):
    """The path or revision cannot be measured; the message says what was tried."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class FileMetrics(_Frozen):
    """One source file. `functions` counts the blocks whose complexity was averaged."""

    path: str
    language: Language
    physical: int
    code: int
    comment: int
    blank: int
    tests: dict[str, int]
    functions: int
    average_complexity: float | None
    parsed: bool


class LanguageMetrics(_Frozen):
    """One language's totals; `complexity_rank` is radon's letter, Python only."""

    files: int
    physical: int
    code: int
    comment: int
    blank: int
    tests: dict[str, int]
    functions: int
    average_complexity: float | None
    complexity_rank: str | None
    unparsed_files: int


class UnitMetrics(_Frozen):
    """A crate (Rust) or package (Python) and the source files nearest to it."""

    kind: UnitKind
    path: str
    language: Language
    files: int
    physical: int
    tests: dict[str, int]


class RepoMetrics(_Frozen):
    """What `measure` found: totals per language, per crate or package, and per file."""

    path: str
    source: Source
    rev: str | None
    tree: str | None
    languages: dict[str, LanguageMetrics]
    units: list[UnitMetrics]
    files: list[FileMetrics]

    def to_json(self) -> str:
        """The `--json` output."""
        return self.model_dump_json(indent=2)


class _Measured(NamedTuple):
    metrics: FileMetrics
    complexity_sum: float


def measure(path: Path, rev: str | None = None) -> RepoMetrics:
    """Measure the Python and Rust files under `path`, at the working tree or at `rev`.

    Inside a git work tree the files are the tracked and the untracked-not-ignored ones;
    outside git, a walk of the folder. With `rev`, or for a bare repository (`HEAD` then),
    the files of that revision's tree are read through git without a checkout.
    """
    if not path.is_dir():
        raise MetricsError(f"{path} is not a directory")
    probe = _git(path, "rev-parse", "--is-inside-work-tree", "--show-prefix")
    is_git = probe.returncode == 0
    in_work_tree = is_git and probe.stdout.split(b"\n")[0] == b"true"
    tree: str | None = None
    if rev is None and not is_git:
        source: Source = "directory"
        paths = sorted(_walk(path))
        contents = _read_from_disk(path, paths)
    elif rev is None and in_work_tree:
        source = "worktree"
        paths = _ls_files(path)
        contents = _read_from_disk(path, paths)
    elif not is_git:
        stderr = probe.stderr.decode(errors="replace").strip()
        raise MetricsError(
            f"cannot read revision {rev!r}: {path} is not a git repository "
            f"(tried `git -C {path} rev-parse`: {stderr})"
        )
    else:
        source = "revision"
        rev = rev or "HEAD"
        prefix = probe.stdout.split(b"\n")[1].decode().rstrip("/") if in_work_tree else ""
        tree = _resolve_tree(path, rev, prefix)
        blobs = _ls_tree(path, tree)
        paths = sorted(blobs)
        contents = _read_blobs(path, [(p, blobs[p]) for p in paths if _language(p)])
    measured = [_measure_file(name, data) for name, data in contents]
    return RepoMetrics(
        path=str(path.resolve()),
        source=source,
        rev=rev,
        tree=tree,
        languages=_by_language(measured),
        units=_by_unit([m.metrics for m in measured], paths),
        files=[m.metrics for m in measured],
    )


def _git(cwd: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run(["git", "-C", str(cwd), *args], capture_output=True, check=False)
    except FileNotFoundError as exc:
        return subprocess.CompletedProcess(args, 127, b"", str(exc).encode())


def _language(name: str) -> Language | None:
    return _EXTENSIONS.get(PurePosixPath(name).suffix)


def _walk(root: Path) -> Iterator[str]:
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in _SKIPPED_DIRS]
        for name in files:
            full = Path(folder, name)
            if full.is_file() and not full.is_symlink():
                yield full.relative_to(root).as_posix()


def _ls_files(root: Path) -> list[str]:
    listed = _git(root, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
    if listed.returncode != 0:
        stderr = listed.stderr.decode(errors="replace").strip()
        raise MetricsError(f"`git ls-files` failed in {root}: {stderr}")
    names = {os.fsdecode(n) for n in listed.stdout.split(b"\0") if n}
    # The index may name deleted files, symbolic links and submodules: keep regular files.
    return sorted(n for n in names if (root / n).is_file() and not (root / n).is_symlink())


def _read_from_disk(root: Path, paths: Iterable[str]) -> Iterator[tuple[str, bytes]]:
    for name in paths:
        if _language(name):
            yield name, (root / name).read_bytes()


def _resolve_tree(repo: Path, rev: str, prefix: str) -> str:
    spec = f"{rev}^{{tree}}"
    found = _git(repo, "rev-parse", "--verify", "--quiet", "--end-of-options", spec)
    if found.returncode != 0:
        raise MetricsError(
            f"revision {rev!r} does not exist in {repo} (tried `git rev-parse --verify {spec}`)"
        )
    tree = found.stdout.decode().strip()
    if not prefix:
        return tree
    sub = _git(repo, "rev-parse", "--verify", "--quiet", f"{tree}:{prefix}")
    if sub.returncode != 0:
        raise MetricsError(f"folder {prefix!r} does not exist at revision {rev!r} in {repo}")
    return sub.stdout.decode().strip()


def _ls_tree(repo: Path, tree: str) -> dict[str, str]:
    """Regular files (no symbolic links, no submodules) of `tree`: path -> blob id."""
    listed = _git(repo, "ls-tree", "-r", "-z", "--full-tree", tree)
    if listed.returncode != 0:
        stderr = listed.stderr.decode(errors="replace").strip()
        raise MetricsError(f"`git ls-tree -r {tree}` failed in {repo}: {stderr}")
    blobs: dict[str, str] = {}
    for entry in listed.stdout.split(b"\0"):
        if not entry:
            continue
        info, name = entry.split(b"\t", 1)
        mode, kind, sha = info.decode().split()
        if kind == "blob" and mode.startswith("100"):  # not 120000, a symbolic link
            blobs[os.fsdecode(name)] = sha
    return blobs


def _read_blobs(repo: Path, wanted: list[tuple[str, str]]) -> Iterator[tuple[str, bytes]]:
    """Blob contents through one `git cat-file --batch` process, one request at a time."""
    command = ["git", "-C", str(repo), "cat-file", "--batch"]
    with subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE) as batch:
        assert batch.stdin is not None
        assert batch.stdout is not None
        for name, sha in wanted:
            batch.stdin.write(f"{sha}\n".encode())
            batch.stdin.flush()
            header = batch.stdout.readline().split()
            if len(header) != 3:
                raise MetricsError(f"`git cat-file --batch` could not read {name} ({sha})")
            size = int(header[2])
            data = batch.stdout.read(size)
            batch.stdout.read(1)
            yield name, data
        batch.stdin.close()


def _measure_file(name: str, data: bytes) -> _Measured:
    language = _language(name)
    assert language is not None
    physical = data.count(b"\n")
    text = data.decode("utf-8", errors="replace")
    if language == "python":
        comment, blank = _python_lines(text, physical)
        tests = {
            "def test_": len(_PY_TEST.findall(text)),
            "async def test_": len(_PY_ASYNC_TEST.findall(text)),
        }
        complexities, parsed = _radon(text)
    else:
        code_text, comment_lines = _scan_rust(text)
        comment, blank = _rust_lines(text, code_text, comment_lines, physical)
        tests = _rust_tests(code_text)
        complexities, parsed = _lizard(name, text), True
    total = float(sum(complexities))
    metrics = FileMetrics(
        path=name,
        language=language,
        physical=physical,
        code=physical - comment - blank,
        comment=comment,
        blank=blank,
        tests=tests,
        functions=len(complexities),
        average_complexity=total / len(complexities) if complexities else None,
        parsed=parsed,
    )
    return _Measured(metrics, total)


def _python_lines(text: str, physical: int) -> tuple[int, int]:
    comment = blank = 0
    for line in text.split("\n")[:physical]:
        stripped = line.strip()
        if not stripped:
            blank += 1
        elif stripped.startswith("#"):
            comment += 1
    return comment, blank


def _radon(text: str) -> tuple[list[int], bool]:
    try:
        blocks = cc_visit(text)
    except (SyntaxError, ValueError):
        return [], False
    return [int(block.complexity) for block in blocks], True


def _lizard(name: str, text: str) -> list[int]:
    info = lizard.analyze_file.analyze_source_code(name, text)
    return [int(function.cyclomatic_complexity) for function in info.function_list]


def _scan_rust(text: str) -> tuple[str, set[int]]:
    """`text` with comments and literal contents blanked, and the lines holding comments."""
    newlines = [m.start() for m in re.finditer("\n", text)]
    pieces: list[str] = []
    comment_lines: set[int] = set()
    pos = 0
    while match := _RS_START.search(text, pos):
        start, token = match.start(), match.group()
        if token == "//":
            end = text.find("\n", start)
            end = len(text) if end < 0 else end
            blank_from, blank_to = start, end
        elif token == "/*":
            end = _block_comment_end(text, start)
            blank_from, blank_to = start, end
        elif match.group("hashes") is not None:
            closing = '"' + match.group("hashes")
            found = text.find(closing, match.end())
            end = len(text) if found < 0 else found + len(closing)
            blank_from, blank_to = match.end(), max(match.end(), end - len(closing))
        elif token == '"':
            rest = _RS_STRING_REST.match(text, match.end())
            end = rest.end() if rest else len(text)
            blank_from, blank_to = match.end(), max(match.end(), end - 1)
        else:
            end = match.end()
            blank_from, blank_to = start + 1, end - 1
        if token in ("//", "/*"):
            first = bisect.bisect_left(newlines, start)
            last = bisect.bisect_left(newlines, end - 1)
            comment_lines.update(range(first, last + 1))
        pieces.append(text[pos:blank_from])
        pieces.append(_NOT_NEWLINE.sub(" ", text[blank_from:blank_to]))
        pieces.append(text[blank_to:end])
        pos = end
    pieces.append(text[pos:])
    return "".join(pieces), comment_lines


def _block_comment_end(text: str, start: int) -> int:
    depth = 0
    for delimiter in _RS_BLOCK_DELIMITER.finditer(text, start):
        depth += 1 if delimiter.group() == "/*" else -1
        if depth == 0:
            return delimiter.end()
    return len(text)


def _rust_lines(
    text: str, code_text: str, comment_lines: set[int], physical: int
) -> tuple[int, int]:
    comment = blank = 0
    lines = zip(text.split("\n")[:physical], code_text.split("\n"), strict=False)
    for number, (line, code) in enumerate(lines):
        if not line.strip():
            blank += 1
        elif number in comment_lines and not code.strip():
            comment += 1
    return comment, blank


def _rust_tests(code_text: str) -> dict[str, int]:
    """Test counts by kind, in source whose comments and literals are blanked."""
    proptest_fns = 0
    proptest_spans: list[tuple[int, int]] = []
    for block in _RS_PROPTEST.finditer(code_text):
        end = _matching_close(code_text, block.end() - 1)
        proptest_spans.append((block.end(), end))
        proptest_fns += _top_level_fns(code_text[block.end() : end])
    plain = sum(
        1
        for test in _RS_TEST.finditer(code_text)
        if not any(start <= test.start() < end for start, end in proptest_spans)
    )
    return {
        "#[test]": plain,
        "#[tokio::test]": len(_RS_TOKIO_TEST.findall(code_text)),
        "proptest!": proptest_fns,
    }


def _matching_close(code_text: str, opener: int) -> int:
    """Index of the bracket that closes the one at `opener` (end of text if none)."""
    depth = 0
    for index in range(opener, len(code_text)):
        char = code_text[index]
        if char in _OPENERS:
            depth += 1
        elif char in ")]}":
            depth -= 1
            if depth == 0:
                return index
    return len(code_text)


def _top_level_fns(body: str) -> int:
    depth = 0
    count = 0
    last = 0
    for fn in _RS_FN.finditer(body):
        segment = body[last : fn.start()]
        depth += sum(segment.count(c) for c in _OPENERS) - sum(segment.count(c) for c in ")]}")
        last = fn.start()
        count += depth == 0
    return count


def _by_language(measured: list[_Measured]) -> dict[str, LanguageMetrics]:
    languages: dict[str, LanguageMetrics] = {}
    for language, kinds in _TEST_KINDS.items():
        group = [m for m in measured if m.metrics.language == language]
        if not group:
            continue
        files = [m.metrics for m in group]
        functions = sum(f.functions for f in files)
        average = sum(m.complexity_sum for m in group) / functions if functions else None
        rank = cc_rank(average) if language == "python" and average is not None else None
        languages[language] = LanguageMetrics(
            files=len(files),
            physical=sum(f.physical for f in files),
            code=sum(f.code for f in files),
            comment=sum(f.comment for f in files),
            blank=sum(f.blank for f in files),
            tests={kind: sum(f.tests[kind] for f in files) for kind in kinds},
            functions=functions,
            average_complexity=average,
            complexity_rank=rank,
            unparsed_files=sum(not f.parsed for f in files),
        )
    return languages


def _by_unit(files: list[FileMetrics], paths: list[str]) -> list[UnitMetrics]:
    """Group files under their nearest crate or package; `paths` lists every file."""
    roots: dict[Language, set[PurePosixPath]] = {
        language: {PurePosixPath(p).parent for p in paths if PurePosixPath(p).name == marker}
        for language, (marker, _) in _UNIT_MARKERS.items()
    }
    grouped: dict[tuple[Language, PurePosixPath], list[FileMetrics]] = {}
    for file in files:
        parents = PurePosixPath(file.path).parents
        unit = next((p for p in parents if p in roots[file.language]), None)
        if unit is not None:
            grouped.setdefault((file.language, unit), []).append(file)
    return [
        UnitMetrics(
            kind=_UNIT_MARKERS[language][1],
            path=unit.as_posix(),
            language=language,
            files=len(members),
            physical=sum(f.physical for f in members),
            tests={kind: sum(f.tests[kind] for f in members) for kind in _TEST_KINDS[language]},
        )
        for (language, unit), members in sorted(grouped.items())
    ]


def tables(metrics: RepoMetrics) -> list[Table]:
    """The terminal view: one table per language, then one row per crate or package."""
    where = f"at {metrics.rev}" if metrics.rev else metrics.source
    rendered: list[Table] = []
    for name, language in metrics.languages.items():
        table = Table("measure", "value", title=f"{name}: {metrics.path} ({where})")
        lines = {
            "physical": language.physical,
            "code": language.code,
            "comment": language.comment,
            "blank": language.blank,
        }
        table.add_row("files", str(language.files))
        for label, count in lines.items():
            table.add_row(f"{label} lines", str(count))
        for kind, count in language.tests.items():
            table.add_row(Text(f"tests {kind}"), str(count))
        table.add_row("tests", str(sum(language.tests.values())))
        average = language.average_complexity
        table.add_row("average complexity", "-" if average is None else f"{average:.2f}")
        if language.complexity_rank:
            table.add_row("complexity rank", language.complexity_rank)
        if language.unparsed_files:
            table.add_row("files radon could not parse", str(language.unparsed_files))
        rendered.append(table)
    units = Table("kind", "path", "language", "files", "physical", "tests", title="units")
    for unit in metrics.units:
        units.add_row(
            unit.kind,
            Text(unit.path, overflow="fold"),
            unit.language,
            str(unit.files),
            str(unit.physical),
            str(sum(unit.tests.values())),
        )
    return [*rendered, units]

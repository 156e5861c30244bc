"""Where the checkout is: reports, notebooks and constraints are found from here.

The harness runs from an editable install (`make` installs with `-e`), so the repository is
the folder above the package that holds pyproject.toml.
"""

from __future__ import annotations

from pathlib import Path


def _find_root() -> Path:
    here = Path(__file__).resolve()
    for folder in here.parents:
        if (folder / "pyproject.toml").is_file():
            return folder
    return here.parents[2]


REPO_ROOT = _find_root()

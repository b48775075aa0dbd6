"""Where the server finds the files that are not Python code: migrations, frontend, item banks.

In the source checkout (``make run``, editable installs, the tests) they sit at the top of the
repository (``migrations/``, ``frontend/``, ``itembank/``, ``docs/``; see
docs/architecture.md). A wheel cannot install files outside its packages, so
``setup.py`` copies them into ``app/_data/`` when it builds one; a plain (non-editable) install
from the offline bundle then finds them there. The packaged copy wins when it exists, so an
installed server never reads a stray checkout that happens to sit next to it.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
# Filled by setup.py's build_py in wheels only; never present in the source tree.
PACKAGED_DATA_DIR = PACKAGE_DIR / "_data"
SOURCE_ROOT = PACKAGE_DIR.parent

# The top-level folders a wheel carries (setup.py reads this list, so the two cannot drift).
DATA_FOLDERS = ("migrations", "frontend", "itembank", "docs")


def resource_dir(name: str) -> Path:
    """The folder ``name`` (one of DATA_FOLDERS): the installed copy, else the checkout's.

    Raises ValueError for a name that is not packaged, so a typo cannot silently point at the
    source tree on an installed server.
    """
    if name not in DATA_FOLDERS:
        raise ValueError(f"unknown data folder {name!r}; expected one of {', '.join(DATA_FOLDERS)}")
    packaged = PACKAGED_DATA_DIR / name
    if packaged.is_dir():
        return packaged
    return SOURCE_ROOT / name


MIGRATIONS_DIR = resource_dir("migrations")
FRONTEND_DIR = resource_dir("frontend")
ITEMBANK_DIR = resource_dir("itembank")
DOCS_DIR = resource_dir("docs")

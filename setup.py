"""Build hook: put the top-level data folders into the wheel as ``app/_data/``.

The repository keeps migrations/, frontend/, itembank/ and docs/ at its top (DESIGN.md), but a
wheel installs packages only; without this a non-editable install fails at ``cact db upgrade``
with "Path doesn't exist: .../site-packages/migrations". app/paths.py prefers the packaged copy.
Metadata stays in pyproject.toml; this file only extends build_py.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
# Keep in step with app/paths.py DATA_FOLDERS (tests/integration/test_bundle.py checks it).
DATA_FOLDERS = ("migrations", "frontend", "itembank", "docs")
SKIP = shutil.ignore_patterns("__pycache__", "*.pyc", ".DS_Store")


class BuildPyWithData(build_py):
    """build_py that also copies the data folders into ``<build_lib>/app/_data``."""

    def run(self) -> None:
        super().run()
        # An editable install reads the checkout directly (app/paths.py falls back to it).
        if getattr(self, "editable_mode", False):
            return
        target = Path(self.build_lib) / "app" / "_data"
        # A fresh copy each build, so a file deleted from the repository leaves the wheel too.
        shutil.rmtree(target, ignore_errors=True)
        for name in DATA_FOLDERS:
            source = ROOT / name
            if not source.is_dir():
                raise SystemExit(f"setup.py: {source} is missing; build from a full checkout")
            shutil.copytree(source, target / name, ignore=SKIP)


setup(cmdclass={"build_py": BuildPyWithData})

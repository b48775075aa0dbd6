"""The docs match the tree: docs/architecture.md names every module under app/ and only paths
that exist, and every document the code or the docs refer to is a file in the repository."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ARCHITECTURE = ROOT / "docs" / "architecture.md"
TOP_DIRS = ("app", "frontend", "tests", "migrations", "docs", "deploy", "bench", "itembank")
CODE = re.compile(r"`([^`\s]+)`")


def _tracked(*patterns: str) -> list[Path]:
    """The files git tracks under ``patterns``; outside a checkout, every file there."""
    listed = subprocess.run(["git", "ls-files", *patterns], cwd=ROOT, capture_output=True,
                            text=True)
    if listed.returncode == 0:
        return [ROOT / line for line in listed.stdout.splitlines() if (ROOT / line).exists()]
    found: list[Path] = []
    for pattern in patterns:
        base = ROOT / pattern
        found.extend([base] if base.is_file() else
                     [p for p in base.rglob("*") if p.is_file() and "__pycache__" not in p.parts])
    return found


def _app_modules() -> list[Path]:
    return sorted(p for p in (ROOT / "app").rglob("*.py")
                  if p.name != "__init__.py" and "_data" not in p.parts
                  and "__pycache__" not in p.parts)


def _rows() -> list[tuple[str, list[str]]]:
    """The "Where things are" table: (first cell's path, every backticked name in the row)."""
    rows = []
    for line in ARCHITECTURE.read_text(encoding="utf-8").splitlines():
        if line.startswith("| `"):
            names = CODE.findall(line)
            rows.append((names[0], names))
    return rows


def test_every_path_the_architecture_page_names_exists():
    missing = []
    for token in CODE.findall(ARCHITECTURE.read_text(encoding="utf-8")):
        token = token.rstrip(".,:;")
        if not (token.split("/")[0] in TOP_DIRS and "/" in token and "{" not in token
                and not token.startswith("app/_data")):  # made only when a wheel is built
            continue
        if not (any(ROOT.glob(token)) if "*" in token else (ROOT / token).exists()):
            missing.append(token)
    # Module names in a folder's row are files of that folder.
    for first, names in _rows():
        if first.startswith("app/") and first.endswith("/"):
            for name in names[1:]:
                if re.fullmatch(r"[a-z_]+\.py", name) and not (ROOT / first / name).exists():
                    missing.append(first + name)
    assert not missing, f"docs/architecture.md names paths that do not exist: {missing}"


def test_every_app_module_is_on_the_architecture_page():
    named: set[Path] = set()
    for first, names in _rows():
        for name in names:
            if name.startswith("app/") and name.endswith(".py"):
                named.add(ROOT / name)
        if first.startswith("app/") and first.endswith("/"):
            named.update(ROOT / first / n for n in names[1:] if n.endswith(".py"))
    unnamed = [str(p.relative_to(ROOT)) for p in _app_modules() if p not in named]
    assert not unnamed, ("modules missing from the 'Where things are' table of "
                         f"docs/architecture.md: {unnamed}")


def test_the_docs_the_code_cites_are_in_the_repository():
    """A comment citing DOMAIN.md or DESIGN.md pointed at files outside the repository; every
    docs/*.md a source file or document names must exist."""
    cited_outside, missing = [], []
    for path in _tracked("app", "tests", "bench", "docs", "deploy", "README.md", "Makefile"):
        if path.suffix not in (".py", ".md", ".html", ".sh", ".conf", "") or path.is_dir():
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        if path != Path(__file__) and re.search(r"\b(DOMAIN|DESIGN)\.md\b", text):
            cited_outside.append(str(path.relative_to(ROOT)))
        for doc in re.findall(r"\bdocs/[\w-]+\.md\b", text):
            if not (ROOT / doc).exists():
                missing.append(f"{path.relative_to(ROOT)}: {doc}")
    assert not cited_outside, f"cite docs/domain.md or docs/architecture.md: {cited_outside}"
    assert not missing, missing

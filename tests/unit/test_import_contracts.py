"""The import contracts of pyproject.toml ([tool.importlinter], run by `make lint`) hold on the
tree, and they bite: on a copy of the package where a pure module imports sqlalchemy, a service
imports a route, a domain imports another domain's routes, a shared module imports a domain or
a service closes an import cycle between two domains, `lint-imports` fails and names the
contract. The lists of entry points in the contracts must also match the tree, so a new routes
module cannot slip past them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
CONFIG = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
CONTRACTS = {c["id"]: c for c in CONFIG["tool"]["importlinter"]["contracts"]}
DOMAINS = ("analysis", "assembly", "auth", "bank", "delivery", "ops", "proctoring",
           "programmes", "reports", "scoring", "sessions")
# Entry points that are not named like routes: the app factory, the pages that span domains,
# the web helpers, the FastAPI dependencies and middleware the routes share. Every module of the
# CLI package (app/cli/) is an entry point too.
OTHER_ENTRY_POINTS = {"app.main", "app.dashboard", "app.system", "app.web", "app.auth.deps",
                      "app.delivery.deps", "app.http_limits"}
CLI = ROOT / "app" / "cli"


def lint_imports(where: Path) -> subprocess.CompletedProcess[str]:
    # The copy under test comes first on the path, before the editable install of the checkout.
    env = {**os.environ, "PYTHONPATH": str(where)}
    return subprocess.run([str(LINT_IMPORTS), "--no-cache", "--no-logo"], cwd=where, env=env,
                          capture_output=True, text=True, timeout=120)


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_the_tree_keeps_every_contract():
    done = lint_imports(ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


def test_the_entry_points_in_the_contracts_are_the_ones_in_the_tree():
    routes = {module_name(p) for p in (ROOT / "app").rglob("*.py")
              if p.name == "routes.py" or p.name.endswith("_routes.py") or p.name == "api.py"}
    cli = {module_name(p) for p in CLI.rglob("*.py")}
    assert {"app.cli", "app.cli.__main__", "app.cli.common"} <= cli
    named = routes | cli
    services = CONTRACTS["services"]
    assert set(services["protected_modules"]) == named | OTHER_ENTRY_POINTS
    assert set(services["allowed_importers"]) == set(services["protected_modules"])
    # Every domain has its contract, and its forbidden list covers every routes module.
    for domain in DOMAINS:
        forbidden = CONTRACTS[f"routes-{domain}"]["forbidden_modules"]
        for module in routes:
            covered = module in forbidden or (
                module.endswith(".routes") and "app.*.routes" in forbidden)
            assert covered, (domain, module)
    # The packages under app/ are the domains and the CLI, which sits on top of them.
    assert {d.name for d in (ROOT / "app").iterdir() if (d / "__init__.py").exists()} \
        == {*DOMAINS, "cli"}


BREAKAGES = {
    "pure": ("app/scoring/engine.py", "import sqlalchemy",
             "Pure computations import no database, web or template code BROKEN",
             "app.scoring.engine is not allowed to import sqlalchemy"),
    # A service no other domain imports: one that others import would also break their
    # routes contracts (the report service reads the analysis service, for example).
    "services": ("app/bank/browse.py", "from app.bank import routes",
                 "Services import no routes, no app.web and no CLI BROKEN",
                 "app.bank.browse -> app.bank.routes"),
    # The operations services are called by the CLI, never the other way round: an ops module
    # that imports the CLI is a service importing an entry point and, as the CLI imports ops,
    # also the app.cli <-> app.ops cycle the CLI once had; both contracts say so.
    "services-cli": ("app/ops/keycheck.py", "from app.cli import common",
                     "Services import no routes, no app.web and no CLI BROKEN",
                     "app.ops.keycheck -> app.cli.common",
                     "No import cycles between the domains' services BROKEN"),
    "routes-reports": ("app/reports/routes.py", "from app.bank import routes as bank_routes",
                       "app.reports imports no other domain's routes BROKEN",
                       "app.reports is not allowed to import app.bank.routes"),
    # Scoring reads the bank; a bank service that called scoring back closed a cycle (#14).
    "no-cycles": ("app/bank/service.py", "from app.scoring import service as _scoring",
                  "No import cycles between the domains' services BROKEN",
                  "- .bank -> .scoring (1 import)"),
    "shared": ("app/clock.py", "from app.delivery import models",
               "Shared modules import no domain BROKEN",
               "app.clock is not allowed to import app.delivery"),
}


@pytest.mark.parametrize("contract", sorted(BREAKAGES))
def test_a_new_violation_breaks_its_contract(tmp_path, contract):
    path, line, verdict, detail, *also_broken = BREAKAGES[contract]
    shutil.copytree(ROOT / "app", tmp_path / "app",
                    ignore=shutil.ignore_patterns("__pycache__", "_data"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / path
    target.write_text(target.read_text(encoding="utf-8") + f"\n{line}\n", encoding="utf-8")

    done = lint_imports(tmp_path)
    assert done.returncode != 0, done.stdout
    assert verdict in done.stdout, done.stdout
    assert detail in done.stdout, done.stdout
    for other in also_broken:
        assert other in done.stdout, done.stdout
    # The others still hold.
    assert f"{1 + len(also_broken)} broken" in done.stdout, done.stdout

"""A problem the server finds shows on the proctor console by itself, above the live table, at
the lab's 1024x768 (Chromium through pytest-playwright, like the other browser tests)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import ADMIN, SETUP_EXAMS, run_cli, start_server

pytestmark = pytest.mark.e2e


def test_the_console_shows_a_new_problem_without_a_reload(page: Page, tmp_path):
    """The console, open and healthy, shows the schema alert line within one refresh (15 s)
    once the database's revision changes under it."""
    config = tmp_path / "cact.env"
    config.write_text("")
    env = {**os.environ, "CACT_DATA_DIR": str(tmp_path), "CACT_DATABASE_URL": "",
           "CACT_CONFIG": str(config)}
    run_cli(env, "db", "upgrade")
    run_cli(env, "user", "create", ADMIN[0], "--role", "admin", "--full-name", "Admin",
            "--password-stdin", stdin=ADMIN[1] + "\n")
    setup = subprocess.run([sys.executable, "-c", SETUP_EXAMS], env=env, capture_output=True,
                           text=True, timeout=120)
    assert setup.returncode == 0, setup.stderr
    proc, base = start_server(env, tmp_path / "server.log")
    database = tmp_path / "cact.sqlite3"
    try:
        page.set_viewport_size({"width": 1024, "height": 768})
        page.goto(base + "/login")
        page.fill("input[name=username]", ADMIN[0])
        page.fill("input[name=password]", ADMIN[1])
        page.click("[data-testid=login-form] button[type=submit]")
        page.wait_for_url(lambda url: "/login" not in url)
        page.goto(base + "/proctor/sessions/E2E")
        expect(page.get_by_test_id("console-table")).to_be_visible()
        assert page.get_by_test_id("system-alert").count() == 0
        with sqlite3.connect(database) as conn:
            (head,) = conn.execute("SELECT version_num FROM alembic_version").fetchone()
            conn.execute("UPDATE alembic_version SET version_num = 'feedfacecafe'")
        try:
            line = page.locator('[data-testid=system-alert][data-code=health_schema]')
            expect(line).to_be_visible(timeout=20_000)
            expect(line).to_contain_text("cact db upgrade")
            box = line.bounding_box()
            table = page.get_by_test_id("console-table").bounding_box()
            assert box["width"] <= 1024 and box["y"] + box["height"] <= table["y"]
            page.screenshot(path=str(tmp_path / "console-alert.png"))
        finally:
            with sqlite3.connect(database) as conn:
                conn.execute("UPDATE alembic_version SET version_num = ?", (head,))
    finally:
        proc.terminate()
        proc.wait(timeout=15)

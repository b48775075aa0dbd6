"""Browser smoke test: log in as the admin, see the dashboard, log out, with no CSP violation."""

import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import ADMIN

pytestmark = pytest.mark.e2e
SHOTS = Path("test-results")


def watch_console(page: Page) -> list[str]:
    problems: list[str] = []
    page.on("console", lambda m: m.type == "error" and problems.append(m.text))
    page.on("pageerror", lambda e: problems.append(str(e)))
    return problems


def test_admin_login_dashboard_logout(page: Page, live_server: str):
    problems = watch_console(page)
    page.set_viewport_size({"width": 1024, "height": 768})  # an old lab PC
    page.goto(live_server + "/admin")
    expect(page).to_have_url(re.compile(r"/login\?next=/admin$"))
    expect(page.get_by_role("heading", name="Masuk petugas")).to_be_visible()

    page.get_by_label("Nama pengguna").fill(ADMIN[0])
    page.get_by_label("Kata sandi").fill("wrong password")
    page.get_by_role("button", name="Masuk").click()
    expect(page.get_by_test_id("login-error")).to_contain_text("salah")
    assert problems == ["Failed to load resource: the server responded with a status of 401 "
                        "(Unauthorized)"], problems  # the refused login, nothing else
    problems.clear()

    page.get_by_label("Kata sandi").fill(ADMIN[1])
    page.get_by_role("button", name="Masuk").click()
    expect(page).to_have_url(live_server + "/admin")
    expect(page.get_by_role("heading", name="Dasbor admin")).to_be_visible()
    expect(page.get_by_test_id("dashboard-stats")).to_be_visible()
    expect(page.get_by_test_id("audit-table")).to_contain_text("auth.login")
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / "admin-dashboard.png"), full_page=True)

    page.get_by_test_id("logout").click()
    expect(page).to_have_url(live_server + "/login")
    page.goto(live_server + "/admin")
    expect(page).to_have_url(re.compile(r"/login\?next=/admin$"))
    assert problems == [], problems  # no CSP violation, no script error


def test_htmx_loads_and_switches_language(page: Page, live_server: str):
    problems = watch_console(page)
    page.goto(live_server + "/login")
    assert page.evaluate("typeof window.htmx") == "object"  # vendored htmx, no internet
    page.get_by_role("button", name="English").click()
    expect(page.get_by_role("heading", name="Staff login")).to_be_visible()
    page.get_by_role("button", name="Bahasa Indonesia").click()
    expect(page.get_by_role("heading", name="Masuk petugas")).to_be_visible()
    assert problems == [], problems


def test_api_docs_render_offline(page: Page, live_server: str):
    problems = watch_console(page)
    page.goto(live_server + "/docs")
    expect(page.locator(".swagger-ui .information-container")).to_be_visible(timeout=15000)
    expect(page.get_by_text("/healthz")).to_be_visible()
    assert [p for p in problems if "Content Security Policy" in p] == []

"""The audit log and the dashboard at 1024x768 (Chromium): events read as sentences with the
raw record beside them, and neither page scrolls sideways, long targets included."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.test_proctor import staff
from tests.e2e.test_smoke import SHOTS, watch_console

pytestmark = pytest.mark.e2e


def test_audit_log_reads_as_sentences_and_fits_1024(page: Page, live_server):
    problems = watch_console(page)
    page.set_viewport_size({"width": 1024, "height": 768})
    staff(page, live_server)  # records auth.login for "Admin E2E"
    for path in ("/admin/audit", "/admin"):
        page.goto(live_server + path)
        newest = page.get_by_test_id("audit-row").first
        expect(newest.get_by_test_id("audit-sentence")).to_have_text("Admin E2E masuk")
        expect(newest.get_by_test_id("audit-code")).to_have_text("auth.login")
        expect(newest.get_by_test_id("audit-sentence")).to_have_attribute(
            "title", "auth.login · user:admin · user:admin")
        widths = page.evaluate("""() => {
            const wrap = document.querySelector('[data-testid=audit-table]').parentElement;
            return [document.documentElement.scrollWidth, document.documentElement.clientWidth,
                    wrap.scrollWidth, wrap.clientWidth];
        }""")
        assert widths[0] <= widths[1] and widths[2] <= widths[3], (path, widths)
    SHOTS.mkdir(exist_ok=True)
    page.goto(live_server + "/admin/audit")
    page.screenshot(path=str(SHOTS / "audit-log-1024.png"), caret="initial")
    assert problems == [], problems

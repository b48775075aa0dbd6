"""The proctor console for a big room: how long one refresh of the live fragment takes.

    .venv/bin/python bench/console.py --takers 300 --answers 60

Builds a SQLite database (sample banks, the half-day blueprint of 112 items, an open session of
N participants), logs everyone in and starts them, stores ``--answers`` answers each (a few
flagged), leaves a tenth absent, and then measures, over ``--repeat`` runs:

- ``fingerprint``: the cheap check the event stream makes every second per proctor;
- ``console_state``: the queries and the row building of the whole roster;
- ``render``: the Jinja rendering of the fragment the stream pushes (and its size).

The browser's side of the same fragment (swap and layout in Chromium) is measured with
``--browser``: the fragment is swapped into the console page 20 times by htmx.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.autosave import setup  # noqa: E402 - after the path is set


def timed(fn, repeat: int) -> tuple[float, object]:
    samples, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--takers", type=int, default=300)
    parser.add_argument("--answers", type=int, default=60)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--browser", action="store_true",
                        help="also time the swap of the fragment in Chromium")
    parser.add_argument("--html-out", help="write the fragment to this file")
    args = parser.parse_args()
    data = Path(tempfile.mkdtemp(prefix="cact-console-"))
    env = {"CACT_DATA_DIR": str(data), "CACT_DATABASE_URL": ""}
    logins = setup(env, args.takers)

    from sqlalchemy import select

    from app.clock import SystemClock
    from app.db import Database
    from app.delivery import attempts, saving, timing
    from app.delivery.models import AttemptItem
    from app.proctoring.console import console_state, fingerprint
    from app.sessions.models import TestSession
    from app.settings import get_settings
    from app.web import install_filters, templates, translate

    settings = get_settings()
    install_filters(settings.timezone)
    database = Database(settings.database_url)
    secret = settings.resolved_secret()
    now = SystemClock().now()
    started = time.perf_counter()
    present = logins[: args.takers - args.takers // 10]
    with database.transaction() as db:
        for n, (nip, token) in enumerate(present):
            result = attempts.login(db, nip=nip, token=token, workstation=f"PC-{n:03d}",
                                    client_addr="bench", secret=secret, now=now)
            timing.start(db, attempt=result.attempt, now=now)
            entries = db.execute(select(AttemptItem.item_id, AttemptItem.option_order)
                                 .where(AttemptItem.attempt_id == result.attempt.id,
                                        AttemptItem.section == 0)
                                 .order_by(AttemptItem.position).limit(args.answers)).all()
            for seq, (item_id, order) in enumerate(entries, start=1):
                saving.save_answer(db, attempt=result.attempt, item_id=item_id,
                                     response=order[0], seq=seq, flagged=seq % 7 == 0,
                                     workstation=f"PC-{n:03d}", grace_s=15, now=now)
    print(f"setup: {args.takers} participants, {len(present)} started with up to "
          f"{args.answers} answers each, in {time.perf_counter() - started:.1f} s")

    with database.transaction(write=False) as db:
        session = db.scalar(select(TestSession))
        t_fp, _ = timed(lambda: fingerprint(db, session_id=session.id), args.repeat)
        t_state, state = timed(lambda: console_state(db, session=session, now=now),
                               args.repeat)
    grid = templates.get_template("proctor/_grid.html")

    def t(key, **params):
        return translate("id", key, **params)

    t_render, html = timed(lambda: grid.render(t=t, console=state, lang="id"), args.repeat)
    print(f"rows: {len(state.seats)}; fragment {len(html) / 1024:.0f} KiB")
    print(f"fingerprint   median {t_fp:6.1f} ms   (every second per open console)")
    print(f"console_state median {t_state:6.1f} ms   (only when the fingerprint changed)")
    print(f"render        median {t_render:6.1f} ms")
    print(f"refresh total median {t_state + t_render:6.1f} ms")
    if args.html_out:
        Path(args.html_out).write_text(html)
    row = templates.get_template("proctor/_seat_row.html")
    counters = templates.get_template("proctor/_counters.html")
    ctx = {"t": t, "console": state, "lang": "id", "code": state.code, "oob": True}
    push = (counters.render(ctx) + "<template>"
            + "".join(row.render({**ctx, "s": s}) for s in state.seats[:10]) + "</template>")
    if args.browser:
        browser_swap(html, push)
    database.dispose()


def browser_swap(html: str, push: str) -> None:
    """In Chromium: the full fragment (the stream's first push) and a push of 10 changed rows
    swapped out of band into it (every later push), 20 times each, with layout."""
    from playwright.sync_api import sync_playwright

    css = (ROOT / "frontend/static/css/app.css").read_text()
    htmx = (ROOT / "frontend/static/vendor/htmx/htmx-2.0.11.min.js").read_text()
    page_html = (f"<html><head><style>{css}</style><script>{htmx}</script></head><body>"
                 '<main class="container container-wide">'
                 '<div id="live"></div><div id="sink"></div></main>'
                 "</body></html>")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1366, "height": 900})
        page.set_content(page_html)
        full, rows = page.evaluate("""([html, push]) => {
            const time = (target, content, style) => {
                const out = [];
                for (let i = 0; i < 20; i++) {
                    const t0 = performance.now();
                    htmx.swap(target, content, {swapStyle: style});
                    document.body.offsetHeight;  // force layout
                    out.push(performance.now() - t0);
                }
                return out.sort((a, b) => a - b);
            };
            const full = time('#live', html, 'innerHTML');
            const rows = time('#sink', push, 'none');
            if (!document.querySelector('#live tr[hx-swap-oob]')) throw new Error('no row swapped');
            return [full, rows];
        }""", [html, push])
        browser.close()
    for name, samples in (("full grid", full), ("10-row push", rows)):
        print(f"browser {name:11} swap+layout median {samples[len(samples) // 2]:6.1f} ms, "
              f"max {samples[-1]:6.1f} ms (Chromium, 1366x900)")


if __name__ == "__main__":
    os.environ.setdefault("CACT_LANGUAGE", "id")
    main()

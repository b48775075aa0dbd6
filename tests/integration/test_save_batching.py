"""The save batcher on PostgreSQL with other writers: works are applied in the order of their
key, and a batch that PostgreSQL picks as the victim of a deadlock is run again as a whole
instead of refusing the saves in it (with two app workers, two batches can lock the same
attempts; a hand-in's audit lock and the sweeper can cross them too)."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import text

from app.delivery.batching import SaveBatcher


def run_async(main):
    """``asyncio.run(main())`` in a thread of its own: in the same pytest process the browser
    tests' Playwright may own this thread's event loop."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(main())).result()


def _lock(row_id: int):
    def work(db):
        db.execute(text("UPDATE users SET full_name = full_name || '+' WHERE id = :i"),
                   {"i": row_id})
        return row_id
    return work


@pytest.mark.parametrize("backend", ["postgresql"])
def test_a_batch_that_loses_a_deadlock_is_run_again_and_every_work_is_acknowledged(
        database, make_user):
    make_user("first")
    make_user("second")
    with database.transaction() as db:
        first, second = db.execute(text("SELECT id FROM users ORDER BY username")).scalars()

    other_holds_second = threading.Event()
    batch_waits = threading.Event()
    other_outcome: list[str] = []

    def other_program() -> None:
        """Locks ``second`` then wants ``first``: the opposite order of the batch."""
        with database.engine.connect() as conn:
            transaction = conn.begin()
            # The batch waits first, so its backend finds the deadlock first and is the victim.
            conn.execute(text("SET LOCAL deadlock_timeout = '10s'"))
            conn.execute(text("UPDATE users SET full_name = 'other' WHERE id = :i"),
                         {"i": second})
            other_holds_second.set()
            batch_waits.wait(10)
            conn.execute(text("SELECT pg_sleep(0.3)"))  # the batch is now blocked on second
            conn.execute(text("UPDATE users SET full_name = 'other' WHERE id = :i"),
                         {"i": first})
            transaction.commit()
            other_outcome.append("committed")

    thread = threading.Thread(target=other_program)
    thread.start()
    assert other_holds_second.wait(10)
    batcher = SaveBatcher(database)

    async def run():
        saves = [asyncio.ensure_future(batcher.submit(_lock(second), key="b")),
                 asyncio.ensure_future(batcher.submit(_lock(first), key="a"))]
        await asyncio.sleep(0.05)
        batch_waits.set()
        try:
            return await asyncio.gather(*saves)
        finally:
            await batcher.close()

    results = run_async(run)
    thread.join(20)
    assert results == [second, first]  # each caller got its own result
    assert other_outcome == ["committed"]
    assert batcher.conflicts == 1 and batcher.commits == 1
    with database.transaction() as db:
        names = dict(db.execute(text("SELECT id, full_name FROM users")).all())
    # The batch ran again after the other program committed: its updates are on top.
    assert names == {first: "other+", second: "other+"}


@pytest.mark.parametrize("backend", ["sqlite"])
def test_works_of_a_batch_run_in_the_order_of_their_key(database):
    batcher = SaveBatcher(database)
    order: list[str] = []

    def record(name: str):
        def work(db):
            order.append(name)
            return name
        return work

    async def run():
        saves = [asyncio.ensure_future(batcher.submit(record(k), key=k)) for k in "dbca"]
        try:
            return await asyncio.gather(*saves)
        finally:
            await batcher.close()

    assert run_async(run) == list("dbca")  # answers go back to their own callers
    assert order == list("abcd") and batcher.commits == 1

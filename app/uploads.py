"""Reading an uploaded bank or blueprint file in a child process, with a time and a memory budget.

An admin's upload must never stall the exam. Read in the server's event loop, a 5,000-item
bank held every taker's save for 3.5 s, and a 700-byte YAML alias bomb for 11.5 s (security
review #13, finding 6). A worker thread would free the loop but not bound the work: a thread
cannot be stopped, and it shares the interpreter (and its memory) with the exam. So the reader
runs in a fresh child process (``python -P -m app.uploads``) that

- gets RLIMIT_AS (address space) of ``READ_MEMORY_MB``: past it the reader fails with
  MemoryError inside the child, which is reported as a problem, and the server is untouched;
- is killed when it has not answered within ``READ_SECONDS`` (RLIMIT_CPU backs this up should
  the server itself die meanwhile);
- imports only the pure reading code (no database, no web stack), so it starts in ~0.1 s
  (a problem message loads the translations: ~0.5 s then).

At most ``READERS_AT_ONCE`` children run at a time, so several admins uploading together cannot
add up to more than that many budgets; one more upload waits ``QUEUE_SECONDS`` for a free
reader and is then refused as busy (a waiting upload holds a worker thread, which the takers'
requests need too). The caller waits in a worker thread (the routes are plain ``def``
endpoints), never in the event loop.

The child's answer is a pickle: it comes from our own code in a process we started, over a
pipe nobody else holds; the untrusted upload only ever reaches the YAML/CSV/XML readers, which
build plain data.
"""

from __future__ import annotations

import importlib
import logging
import os
import pickle
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from app.bank.parsed import ImportFailed, problem

READ_SECONDS = 60
READ_MEMORY_MB = 2048
READERS_AT_ONCE = 2
QUEUE_SECONDS = 5  # an upload waits this long for a free reader, then is refused as busy
# What a child may run: pure functions over the upload's bytes or text.
READERS = {
    "bank": "app.bank.reading:read_bank",
    "blueprint": "app.assembly.parsing:parse_blueprint",
}

_ROOT = str(Path(__file__).resolve().parent.parent)  # the folder that holds the app package
_slots = threading.BoundedSemaphore(READERS_AT_ONCE)
log = logging.getLogger(__name__)


def read_isolated(reader: str, *args: Any, source: str, seconds: float = READ_SECONDS,
                  memory_mb: int = READ_MEMORY_MB, **kwargs: Any) -> Any:
    """``READERS[reader](*args, source=source, **kwargs)`` in a child process: returns what it
    returns and raises the ImportFailed it raises. Past the time or memory budget, or when the
    child dies, raises ImportFailed with a problem for ``source`` that says so. Blocking: call
    it from a worker thread (a ``def`` route), not from ``async def`` code."""
    if reader not in READERS:
        raise ValueError(f"unknown reader {reader!r}")
    kwargs["source"] = source  # every reader names its problems after the upload
    request = pickle.dumps((reader, args, kwargs, memory_mb, seconds),
                           protocol=pickle.HIGHEST_PROTOCOL)
    if not _slots.acquire(timeout=QUEUE_SECONDS):
        raise ImportFailed([problem(source, "", "", key="upload_parse_busy",
                                    readers=READERS_AT_ONCE)])
    try:
        return _run(request, source=source, seconds=seconds, memory_mb=memory_mb)
    finally:
        _slots.release()


def _run(request: bytes, *, source: str, seconds: float, memory_mb: int) -> Any:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [_ROOT, *filter(None, [os.environ.get("PYTHONPATH")])])}
    # -P: the app package comes from PYTHONPATH, never from whatever the working folder holds.
    child = subprocess.Popen([sys.executable, "-P", "-m", "app.uploads"], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        out, err = child.communicate(request, timeout=seconds)
    except subprocess.TimeoutExpired:
        child.kill()
        child.communicate()
        log.warning("upload %s: reading stopped after %s s", source, seconds)
        raise ImportFailed([problem(source, "", "", key="upload_parse_timeout",
                                    seconds=int(seconds))]) from None
    except BaseException:
        child.kill()
        child.communicate()
        raise
    try:
        status, value = pickle.loads(out)  # noqa: S301 - our own child, see the docstring
    except Exception:  # noqa: BLE001 - no answer: killed (RLIMIT_CPU), crashed, out of memory
        log.error("upload %s: reader exited with %s: %s", source, child.returncode,
                  err.decode(errors="replace")[-2000:])
        status, value = "failed", None
    if status == "ok":
        return value
    if status == "refused":
        raise ImportFailed(value)
    if status == "memory":
        raise ImportFailed([problem(source, "", "", key="upload_parse_memory",
                                    limit=memory_mb)])
    if status == "error":
        log.error("upload %s: reader failed: %s", source, value)
    raise ImportFailed([problem(source, "", "", key="upload_parse_failed")])


def _child() -> None:
    """The child's side: read the request from stdin, set the budget, read, answer on stdout."""
    import resource

    reader, args, kwargs, memory_mb, seconds = pickle.loads(sys.stdin.buffer.read())  # noqa: S301
    module, name = READERS[reader].split(":")
    function = getattr(importlib.import_module(module), name)
    limit = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    cpu = int(seconds) + 5
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 5))
    try:
        answer = pickle.dumps(("ok", function(*args, **kwargs)),
                              protocol=pickle.HIGHEST_PROTOCOL)
    except ImportFailed as exc:
        answer = pickle.dumps(("refused", exc.problems), protocol=pickle.HIGHEST_PROTOCOL)
    except MemoryError:
        answer = pickle.dumps(("memory", None))
    except Exception as exc:  # noqa: BLE001 - a reader bug is a problem message, not a 500
        answer = pickle.dumps(("error", f"{type(exc).__name__}: {exc}"))
    sys.stdout.buffer.write(answer)
    sys.stdout.buffer.flush()


if __name__ == "__main__":
    _child()

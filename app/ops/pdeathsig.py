"""Workers of `cact serve` stop when their parent dies, even by SIGKILL.

uvicorn's workers are child processes; when the parent is killed with SIGKILL it cannot stop
them, and they kept the port (and the SQLite file) busy, so the restarted service could not
bind. `cact serve` puts its pid in CACT_SERVE_PARENT_PID; each worker whose parent is that pid
asks Linux to send it SIGTERM when the parent dies (prctl PR_SET_PDEATHSIG) and uvicorn then
shuts it down gracefully.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import signal

PARENT_PID_ENV = "CACT_SERVE_PARENT_PID"
PR_SET_PDEATHSIG = 1

logger = logging.getLogger("cact")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def die_with_parent() -> bool:
    """In a worker of `cact serve`: get SIGTERM when the parent dies. Returns True when set.

    Does nothing outside `cact serve`'s workers (tests, a single-process server).
    """
    expected = os.environ.get(PARENT_PID_ENV, "")
    if not expected.isdigit() or int(expected) == os.getpid():
        return False
    if os.getppid() != int(expected):
        # Either not a direct worker of that serve, or the parent died before we got here
        # (we were re-parented to init or a subreaper): then stop now.
        if not _alive(int(expected)):
            logger.warning("cact serve (pid %s) is gone: this worker stops", expected)
            os.kill(os.getpid(), signal.SIGTERM)
        return False
    libc_name = ctypes.util.find_library("c")
    if libc_name is None:
        return False
    libc = ctypes.CDLL(libc_name, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        logger.warning("prctl(PR_SET_PDEATHSIG) failed (errno %d)", ctypes.get_errno())
        return False
    # The parent may have died between the first check and prctl: then no signal will come.
    if os.getppid() != int(expected):
        os.kill(os.getpid(), signal.SIGTERM)
    return True

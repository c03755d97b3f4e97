"""Every open engine is closed, so flushed, when the process exits: at exit, and on SIGTERM made a
normal exit (a server or kernel stopped by its manager keeps its last records)."""

from __future__ import annotations

import atexit
import logging
import signal
import sys
import threading
import weakref
from typing import Any

log = logging.getLogger("nbtasklog")

_engines: weakref.WeakSet[Any] = weakref.WeakSet()
_hooks_installed = False


def register(engine: Any, handle_signals: bool) -> None:
    """Close `engine` at exit; the first call installs the hooks (SIGTERM only from the main thread,
    and only where nobody handles it already)."""
    global _hooks_installed
    _engines.add(engine)
    if _hooks_installed:
        return
    _hooks_installed = True
    atexit.register(_close_all)
    if handle_signals and threading.current_thread() is threading.main_thread():
        if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
            signal.signal(signal.SIGTERM, _exit_on_sigterm)


def forget(engine: Any) -> None:
    """`engine` closed on its own: nothing left to do for it at exit."""
    _engines.discard(engine)


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    sys.exit(128 + signum)  # runs atexit, which flushes


def _close_all() -> None:
    for engine in list(_engines):
        try:
            engine.close()
        except Exception:
            log.exception("nbtasklog: error while closing %r", engine)

"""Which engine a process opens, its own database or the Jupyter server that owns one, and the default
engine the module-level functions of nbtasklog use (opened on first use)."""

from __future__ import annotations

import os
import threading
from typing import Any

from .engine import Engine
from .remote import RemoteStore, ServerConnection, discover_server

_default: Engine | None = None
_default_lock = threading.Lock()


def connect(url: str | os.PathLike[str] | None = None, *, token: str | None = None, **options: Any) -> Engine:
    """Open an engine and make it the default.

    `url`: a SQLAlchemy URL or a DuckDB file path (this process owns the store), or the http(s) URL
    of a Jupyter server with the nbtasklog extension (the server owns it). Without `url`: the
    server from NBTASKLOG_SERVER_URL or the Jupyter server that started this kernel, if any;
    else NBTASKLOG_DB, else the default DuckDB file.
    """
    global _default
    with _default_lock:
        if _default is not None:
            _default.close()
        _default = _open(url, token, **options)
        return _default


def _open(url: str | os.PathLike[str] | None, token: str | None = None, **options: Any) -> Engine:
    text = os.fspath(url) if url is not None else None
    if text is not None and text.startswith(("http://", "https://")):
        connection = ServerConnection(text, token if token is not None else os.environ.get("NBTASKLOG_SERVER_TOKEN", ""))
        if connection.alive() is None:
            raise ConnectionError(f"no nbtasklog server answers at {text} (is the extension enabled, the token right?)")
        return _remote_engine(connection, **options)
    if text is None:
        connection = discover_server()
        if connection is not None:
            return _remote_engine(connection, **options)
    return Engine(text, **options)


def _remote_engine(connection: ServerConnection, **options: Any) -> Engine:
    # Short flushes: records of a task run here reach the server's viewers quickly.
    options.setdefault("flush_interval", 0.25)
    return Engine(store=RemoteStore(connection), **options)


def get_engine() -> Engine:
    """The default engine, opened on first use (see connect for how it is chosen)."""
    global _default
    if _default is None or _default._closed:
        with _default_lock:
            if _default is None or _default._closed:
                _default = _open(None)
    return _default


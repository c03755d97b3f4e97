"""The Jupyter server extension: REST and WebSocket APIs over the engine the server process owns.

NbTaskLogApp is imported on first use: a kernel's widget imports the export writers from here without
loading jupyter-server's web stack (seconds of imports it never needs)."""

from __future__ import annotations

from typing import Any

__all__ = ["NbTaskLogApp"]


def __getattr__(name: str) -> Any:
    if name == "NbTaskLogApp":
        from .app import NbTaskLogApp

        return NbTaskLogApp
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

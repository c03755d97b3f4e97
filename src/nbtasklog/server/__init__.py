"""The Jupyter server extension: REST and WebSocket APIs over the engine the server process owns."""

from .app import NbTaskLogApp

__all__ = ["NbTaskLogApp"]

"""Authorizers an e2e server loads by name (c.ServerApp.authorizer_class): users with less than an admin's rights."""

from __future__ import annotations

from jupyter_server.auth.authorizer import Authorizer


class NoSettingsWrite(Authorizer):
    """A non-admin: uses Jupyter and reads everything of nbtasklog, but may not write nbtasklog.settings."""

    def is_authorized(self, handler, user, action, resource):
        return not (action == "write" and resource == "nbtasklog.settings")

"""Authorizers for users with less than an admin's rights: used by the server tests (authorizer_class)
and loaded by name by an e2e server process (c.ServerApp.authorizer_class=authorizers.NoSettingsWrite)."""

from __future__ import annotations

from jupyter_server.auth.authorizer import Authorizer


class NoSettingsWrite(Authorizer):
    """A non-admin: uses Jupyter and reads everything of nbtasklog, but may not write nbtasklog.settings."""

    def is_authorized(self, handler, user, action, resource):
        return not (action == "write" and resource == "nbtasklog.settings")


class NoNbtasklog(Authorizer):
    """A user allowed the rest of Jupyter but nothing of nbtasklog, not even reading."""

    def is_authorized(self, handler, user, action, resource):
        return not resource.startswith("nbtasklog")

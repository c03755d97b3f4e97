"""Authorizers for users with less than an admin's rights, and an identity provider that knows users by
name as JupyterHub's does: used by the server tests (authorizer_class, identity_provider_class) and
loaded by name by an e2e server process (c.ServerApp.authorizer_class=authorizers.NoSettingsWrite)."""

from __future__ import annotations

from jupyter_server.auth.authorizer import Authorizer
from jupyter_server.auth.identity import IdentityProvider, User

USER_HEADER = "X-Test-User"


class NoSettingsWrite(Authorizer):
    """A non-admin: uses Jupyter and reads everything of nbtasklog, but may not write nbtasklog.settings."""

    def is_authorized(self, handler, user, action, resource):
        return not (action == "write" and resource == "nbtasklog.settings")


class NoNbtasklog(Authorizer):
    """A user allowed the rest of Jupyter but nothing of nbtasklog, not even reading."""

    def is_authorized(self, handler, user, action, resource):
        return not resource.startswith("nbtasklog")


class NamedUsers(IdentityProvider):
    """The token is checked as usual; the user is the one the X-Test-User header names ("alice" without it)."""

    async def get_user(self, handler):
        if await self._get_user(handler) is None:
            return None
        name = handler.request.headers.get(USER_HEADER, "alice")
        return User(username=name, name=name, display_name=name)


class OwnTasksOnly(Authorizer):
    """Users see and touch only their own tasks, but "admin", who may do everything."""

    def is_authorized(self, handler, user, action, resource):
        return resource != "nbtasklog.tasks.others" or user.username == "admin"


class ReadOthersTasks(Authorizer):
    """Users read everyone's tasks but cancel, delete and clean up only their own."""

    def is_authorized(self, handler, user, action, resource):
        return resource != "nbtasklog.tasks.others" or action == "read"

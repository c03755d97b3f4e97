"""Who a request is, as task rows record it, and what it may do with the tasks other users started:
jupyter-server's authorizer decides, on the resource `nbtasklog.tasks.others`."""

from __future__ import annotations

from typing import Any

from jupyter_server.auth.identity import IdentityProvider, LegacyIdentityProvider, PasswordIdentityProvider
from jupyter_server.utils import ensure_async
from tornado import web

from ..runner import os_username

OTHERS = "nbtasklog.tasks.others"  # read: list and read other users' tasks; write: cancel, delete, clean them up

# jupyter-server's own token and password logins know no users: each browser and each token request
# becomes a new "Anonymous" user with a random name. Their one user is whoever runs the server.
_ANONYMOUS_LOGINS = (IdentityProvider, PasswordIdentityProvider, LegacyIdentityProvider)


def request_username(handler: Any) -> str | None:
    """The name the tasks a request starts are recorded under: its user's name as the identity provider
    knows it (JupyterHub's user, say), or, behind a login that knows no users, the server's OS user."""
    if type(handler.identity_provider) in _ANONYMOUS_LOGINS:
        return os_username()
    user = handler.current_user
    return getattr(user, "username", None) or None


async def may_others(handler: Any, action: str) -> bool:
    """May this request `action` ("read" or "write") the tasks of other users?"""
    return bool(await ensure_async(handler.authorizer.is_authorized(handler, handler.current_user, action, OTHERS)))


def refusal(task_id: str, action: str) -> web.HTTPError:
    verb = "read" if action == "read" else "cancel or delete"
    return web.HTTPError(403, f"task {task_id} was started by another user; to {verb} other users' tasks "
                              f"you need {action} permission on {OTHERS}")


def is_theirs(row: dict[str, Any], username: str | None) -> bool:
    """The task was started by someone other than `username` (a task from before users were recorded too)."""
    return row.get("username") != username

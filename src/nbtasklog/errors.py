"""The domain errors the engine raises about tasks (each face maps them: REST to 404/409, the CLI to its
exit codes)."""

from __future__ import annotations


class UnknownTaskError(LookupError):
    """No task has that id (in this store, or on the server)."""

    def __init__(self, task_id: str) -> None:
        self.task_id = task_id
        super().__init__(f"unknown task {task_id!r}")

    def __str__(self) -> str:
        return self.args[0]


class TaskActiveError(RuntimeError):
    """The operation needs a finished task (delete a running one? cancel it first), or one run here."""

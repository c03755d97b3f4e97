"""Who ran each task: the Jupyter user who started it (the OS user for the CLI and embedded engines), so a
team's shared store can list one user's tasks and a server can keep other users' tasks to those allowed.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("tasks", sa.Column("username", sa.String(255)))  # NULL: started before this revision
    if op.get_bind().dialect.name == "postgresql":
        # "My tasks", newest first: a shared store holds many users' tasks.
        op.create_index("ix_tasks_username_id", "tasks", ["username", "id"])

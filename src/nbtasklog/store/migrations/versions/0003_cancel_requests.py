"""A cancel asked of a task's owner by another process (another server on the same store, the CLI): kept
in the task's row, which the owner's heartbeat reads, so a request is not lost when its notice is.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("tasks", sa.Column("cancel_requested_at", sa.DateTime(timezone=True)))

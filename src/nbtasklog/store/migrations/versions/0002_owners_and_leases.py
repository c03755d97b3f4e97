"""Several processes on one store: each engine an instance with a heartbeat, each task its owner and
lease, and (task_id, seq) unique on PostgreSQL so that a replayed or retried insert cannot duplicate.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "instances",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.add_column("tasks", sa.Column("owner", sa.String(64)))
    op.add_column("tasks", sa.Column("heartbeat_at", sa.DateTime(timezone=True)))
    # 0.1.0 kept its own version table; Alembic's alembic_version says it now.
    op.drop_table("nbtasklog_schema")
    if op.get_bind().dialect.name == "postgresql":
        # 0.1.0 wrote one process's records, each seq once; its rows satisfy the key.
        op.drop_index("ix_task_logs_task_seq", "task_logs")
        op.create_index("ux_task_logs_task_seq", "task_logs", ["task_id", "seq"], unique=True)
        op.create_index("ix_tasks_owner", "tasks", ["owner"])

"""The schema of release 0.1.0: tasks, task_logs, settings (frozen here: schema.py moves on).

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

from nbtasklog.store.schema import JSONText

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(sa.schema.CreateSequence(sa.Sequence("task_logs_id_seq")))
    op.create_table(
        "tasks",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("plugin", sa.String(255), nullable=False),
        sa.Column("params", JSONText),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True)),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.Column("error", sa.Text),
        sa.Column("progress", sa.Float),
        sa.Column("progress_message", sa.Text),
        sa.Column("log_level", sa.String(16)),
        sa.Column("record_count", sa.BigInteger),
    )
    op.create_table(
        "task_logs",
        sa.Column("id", sa.BigInteger, primary_key=True,
                  server_default=sa.text("nextval('task_logs_id_seq')")),
        sa.Column("task_id", sa.String(64), nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("timestamp", sa.DateTime(timezone=True), nullable=False),
        sa.Column("level", sa.String(16), nullable=False),
        sa.Column("source", sa.String(255), nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("metadata", JSONText),
    )
    op.create_table(
        "settings",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    op.create_table("nbtasklog_schema", sa.Column("version", sa.Integer, primary_key=True, autoincrement=False))
    op.execute("INSERT INTO nbtasklog_schema (version) VALUES (1)")
    if op.get_bind().dialect.name == "postgresql":
        op.create_index("ix_task_logs_task_seq", "task_logs", ["task_id", "seq"])
        op.create_index("ix_tasks_status", "tasks", ["status"])

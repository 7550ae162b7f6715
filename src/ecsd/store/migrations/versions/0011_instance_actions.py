"""Operation history: ``instance_actions`` (one row per operation on a server, kept after the server
and its job) and ``jobs.events`` (each finished step, appended with its checkpoint).

Revision ID: 0011
Revises: 0010
"""
import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # In place (no batch table copy): see 0006.
    op.add_column("jobs", sa.Column("events", sa.Text(), server_default=sa.text("''"), nullable=False))
    op.create_table(
        "instance_actions",
        sa.Column("server_id", sa.String(36), primary_key=True),
        sa.Column("request_id", sa.String(40), primary_key=True),
        sa.Column("project_id", sa.String(32), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("user_id", sa.String(32), nullable=False),
        sa.Column("job_id", sa.String(32), nullable=True),
        sa.Column("start_time", sa.Float(), nullable=False),
        sa.Column("finish_time", sa.Float(), nullable=True),
    )
    op.create_index("ix_instance_actions_server", "instance_actions", ["project_id", "server_id", "start_time"])


def downgrade() -> None:
    op.drop_index("ix_instance_actions_server", "instance_actions")
    op.drop_table("instance_actions")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("events")

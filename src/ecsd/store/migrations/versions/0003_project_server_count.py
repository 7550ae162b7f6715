"""Per-project count of live servers (listing without scanning every server).

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
    # A plain ADD COLUMN (not a batch table copy): SQLite adds a NOT NULL column with a constant
    # default in place, where copying the table would trip the foreign keys of existing rows.
    op.add_column("projects", sa.Column("server_count", sa.Integer(), server_default=sa.text("0"), nullable=False))
    op.execute("UPDATE projects SET server_count = (SELECT count(*) FROM servers "
               "WHERE servers.project_id = projects.id AND servers.deleted = false)")


def downgrade() -> None:
    with op.batch_alter_table("projects") as batch:
        batch.drop_column("server_count")

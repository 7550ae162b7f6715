"""Per-project generation of the set of live servers (listing pages without a deep OFFSET).

``projects.list_gen`` grows by one in every transaction that creates or deletes servers of the
project (beside ``server_count``), so a process may keep the project's listing order in memory and
know, with one primary-key read, whether it still holds.

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
    # A plain ADD COLUMN (not a batch table copy): SQLite adds a NOT NULL column with a constant
    # default in place, where copying the table would trip the foreign keys of existing rows.
    op.add_column("projects", sa.Column("list_gen", sa.BigInteger(), server_default=sa.text("0"), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("projects") as batch:
        batch.drop_column("list_gen")

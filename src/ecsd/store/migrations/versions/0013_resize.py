"""Resize: ``servers.old_flavor_id``, the flavor a server had before a resize, kept in VERIFY_RESIZE.

Revision ID: 0013
Revises: 0012
"""
import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("servers", sa.Column("old_flavor_id", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("servers") as batch:
        batch.drop_column("old_flavor_id")

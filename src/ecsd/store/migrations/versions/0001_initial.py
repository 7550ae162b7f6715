"""Initial schema: identity, images, flavors, key pairs, servers, volumes, jobs.

Revision ID: 0001
Revises:
"""
from alembic import op

from ecsd.store.schema import metadata

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The first revision creates the tables as declared; later revisions alter them step by step.
    metadata.create_all(op.get_bind())


def downgrade() -> None:
    metadata.drop_all(op.get_bind())

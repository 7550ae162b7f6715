"""Failed-login lockout: per-user failure count, start of the counting window, and lock expiry.

Revision ID: 0007
Revises: 0006
"""
import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # In place (no batch table copy): see 0006.
    op.add_column("users", sa.Column("failed_logins", sa.Integer(), server_default=sa.text("0"), nullable=False))
    op.add_column("users", sa.Column("first_failed_at", sa.Float(), nullable=True))
    op.add_column("users", sa.Column("locked_until", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        for name in ("locked_until", "first_failed_at", "failed_logins"):
            batch.drop_column(name)

"""Disks: the EVS attributes of ``volumes`` and ``volume_attachments`` (the attachments of shared disks).

Revision ID: 0012
Revises: 0011
"""
import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # In place (no batch table copy): see 0006.
    op.add_column("volumes", sa.Column("name", sa.String(255), server_default="", nullable=False))
    op.add_column("volumes", sa.Column("description", sa.String(255), server_default="", nullable=False))
    op.add_column("volumes", sa.Column("multiattach", sa.Boolean(), server_default=sa.false(), nullable=False))
    op.add_column("volumes", sa.Column("metadata", sa.Text(), server_default="{}", nullable=False))
    op.add_column("volumes", sa.Column("availability_zone", sa.String(64), nullable=True))
    op.add_column("volumes", sa.Column("updated_at", sa.Float(), nullable=True))
    op.add_column("volumes", sa.Column("job_id", sa.String(32), nullable=True))
    op.create_index("ix_volumes_project", "volumes", ["project_id", "created_at"])
    op.create_table(
        "volume_attachments",
        sa.Column("volume_id", sa.String(36), nullable=False),
        sa.Column("server_id", sa.String(36), nullable=False),
        sa.Column("device", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["volume_id"], ["volumes.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("volume_id", "server_id"),
    )
    op.create_index("ix_volume_attachments_server", "volume_attachments", ["server_id"])


def downgrade() -> None:
    op.drop_index("ix_volume_attachments_server", table_name="volume_attachments")
    op.drop_table("volume_attachments")
    op.drop_index("ix_volumes_project", table_name="volumes")
    with op.batch_alter_table("volumes") as batch:
        for name in ("job_id", "updated_at", "availability_zone", "metadata", "multiattach", "description", "name"):
            batch.drop_column(name)

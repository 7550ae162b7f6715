"""Emulator snapshots (named states for reset and restore), and the fault images leave the catalogue.

The two fault images (domain/seed.py: FAULT_IMAGES) were part of the public catalogue until now;
they are removed unless a server or disk still refers to them. ``--fault-images`` brings them back.

Revision ID: 0008
Revises: 0007
"""
import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None



def upgrade() -> None:
    op.create_table(
        "emulator_snapshots",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("revision", sa.String(32), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
    )
    images = sa.table("images", sa.column("id"), sa.column("name"))
    servers = sa.table("servers", sa.column("image_id"))
    volumes = sa.table("volumes", sa.column("image_id"))
    names = ("Test_Faulty_Image_disk_creation", "Test_Faulty_Image_boot")
    op.execute(images.delete().where(sa.and_(
        images.c.name.in_(names),
        ~images.c.id.in_(sa.select(servers.c.image_id).where(servers.c.image_id.is_not(None))),
        ~images.c.id.in_(sa.select(volumes.c.image_id).where(volumes.c.image_id.is_not(None))))))


def downgrade() -> None:
    op.drop_table("emulator_snapshots")

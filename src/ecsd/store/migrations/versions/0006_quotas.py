"""Quotas: per-project vCPU and RAM usage beside server_count, and per-project quota overrides.

``projects.cores_used`` / ``ram_used`` are back-filled from the live servers and their flavors (as
0003 back-filled ``server_count``); the ``quota_*`` overrides start NULL (the defaults of
``domain/quotas.py``).

Revision ID: 0006
Revises: 0005
"""
import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_COLUMNS = ("cores_used", "ram_used", "quota_instances", "quota_cores", "quota_ram")


def upgrade() -> None:
    # Plain ADD COLUMNs (not a batch table copy): SQLite adds a NOT NULL column with a constant
    # default, or a nullable one, in place, where copying the table would trip the foreign keys of
    # existing rows (decisions.md, "migrations").
    op.add_column("projects", sa.Column("cores_used", sa.BigInteger(), server_default=sa.text("0"), nullable=False))
    op.add_column("projects", sa.Column("ram_used", sa.BigInteger(), server_default=sa.text("0"), nullable=False))
    op.add_column("projects", sa.Column("quota_instances", sa.BigInteger(), nullable=True))
    op.add_column("projects", sa.Column("quota_cores", sa.BigInteger(), nullable=True))
    op.add_column("projects", sa.Column("quota_ram", sa.BigInteger(), nullable=True))
    live = ("FROM servers JOIN flavors ON flavors.id = servers.flavor_id "
            "WHERE servers.project_id = projects.id AND servers.deleted = false")
    op.execute(f"UPDATE projects SET cores_used = (SELECT coalesce(sum(flavors.vcpus), 0) {live}), "
               f"ram_used = (SELECT coalesce(sum(flavors.ram), 0) {live})")


def downgrade() -> None:
    with op.batch_alter_table("projects") as batch:
        for name in reversed(_COLUMNS):
            batch.drop_column(name)

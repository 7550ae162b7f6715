"""Server groups (their members) and the automatic-recovery flag of a server.

Three new tables, nothing added to ``servers`` (decisions.md, "migrations"): a server's group is its
row in ``server_group_members`` (at most one), its automatic recovery a row in
``server_auto_recovery`` (none: not configured).

Revision ID: 0010
Revises: 0009
"""
import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "server_groups",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("project_id", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("policies", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_server_groups_project", "server_groups", ["project_id", "created_at", "id"])
    op.create_table(
        "server_group_members",
        sa.Column("server_id", sa.String(length=36), nullable=False),
        sa.Column("group_id", sa.String(length=36), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["server_id"], ["servers.id"]),
        sa.ForeignKeyConstraint(["group_id"], ["server_groups.id"]),
        sa.PrimaryKeyConstraint("server_id"),
    )
    op.create_index("ix_server_group_members_group", "server_group_members", ["group_id", "created_at"])
    op.create_table(
        "server_auto_recovery",
        sa.Column("server_id", sa.String(length=36), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["server_id"], ["servers.id"]),
        sa.PrimaryKeyConstraint("server_id"),
    )


def downgrade() -> None:
    op.drop_table("server_auto_recovery")
    op.drop_index("ix_server_group_members_group", table_name="server_group_members")
    op.drop_table("server_group_members")
    op.drop_index("ix_server_groups_project", table_name="server_groups")
    op.drop_table("server_groups")

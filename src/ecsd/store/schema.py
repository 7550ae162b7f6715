"""The tables, in SQLAlchemy Core. One metadata serves SQLite and PostgreSQL; Alembic migrates both.

Times are stored as float epoch seconds (UTC): cheap to compare in both dialects and formatted
only at the HTTP edge. JSON documents are stored as text (encoded with orjson) so that both dialects
read them the same way.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    text,
    true,
)

metadata = MetaData()

domains = Table(
    "domains", metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("enabled", Boolean, nullable=False, server_default=true()),
    Column("created_at", Float, nullable=False),
)

users = Table(
    "users", metadata,
    Column("id", String(32), primary_key=True),
    Column("domain_id", String(32), ForeignKey("domains.id"), nullable=False),
    Column("name", String(64), nullable=False),
    Column("password_hash", Text, nullable=False),
    Column("enabled", Boolean, nullable=False, server_default=true()),
    Column("created_at", Float, nullable=False),
    # Failed password logins (domain/logins.py): how many since first_failed_at, within the lockout
    # window; locked_until, once they reach the limit (a login before then fails whatever the password).
    Column("failed_logins", Integer, nullable=False, server_default=text("0")),
    Column("first_failed_at", Float, nullable=True),
    Column("locked_until", Float, nullable=True),
    UniqueConstraint("domain_id", "name", name="uq_users_domain_name"),
)

projects = Table(
    "projects", metadata,
    Column("id", String(32), primary_key=True),
    Column("domain_id", String(32), ForeignKey("domains.id"), nullable=False),
    Column("name", String(64), nullable=False),
    Column("description", Text, nullable=False, server_default=""),
    Column("enabled", Boolean, nullable=False, server_default=true()),
    Column("created_at", Float, nullable=False),
    # Live servers of the project, kept in the transactions that create and delete them, so that an
    # unfiltered listing's `count` does not scan every server.
    Column("server_count", Integer, nullable=False, server_default=text("0")),
    # Grows by one with every such create or delete: a listing may keep the project's order of live
    # servers in memory while this is unchanged (domain/listing.py).
    Column("list_gen", BigInteger, nullable=False, server_default=text("0")),
    # vCPUs and RAM (MB) of the live servers' flavors, kept beside server_count in the same transactions;
    # the create that would pass a quota is refused by the same conditional UPDATE (domain/quotas.py).
    Column("cores_used", BigInteger, nullable=False, server_default=text("0")),
    Column("ram_used", BigInteger, nullable=False, server_default=text("0")),
    # Per-project quota overrides set by an administrator (`ecsd quotas set`): NULL = the default of
    # domain/quotas.py, -1 = unlimited.
    Column("quota_instances", BigInteger, nullable=True),
    Column("quota_cores", BigInteger, nullable=True),
    Column("quota_ram", BigInteger, nullable=True),
    UniqueConstraint("domain_id", "name", name="uq_projects_domain_name"),
)

# Which user may use which project (a role assignment in Keystone terms).
memberships = Table(
    "memberships", metadata,
    Column("user_id", String(32), ForeignKey("users.id"), primary_key=True),
    Column("project_id", String(32), ForeignKey("projects.id"), primary_key=True),
)

# Tokens are stored by the SHA-256 of their value: a leaked database reveals no usable token.
tokens = Table(
    "tokens", metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("user_id", String(32), ForeignKey("users.id"), nullable=False),
    Column("project_id", String(32), ForeignKey("projects.id"), nullable=False),
    Column("issued_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("revoked", Boolean, nullable=False, server_default=false()),
)

# AK/SK pairs for SDK-HMAC-SHA256 signing. The SK is stored Fernet-encrypted (the server needs its
# plain value to recompute signatures, so a hash would not do); the key is outside the database.
access_keys = Table(
    "access_keys", metadata,
    Column("ak", String(20), primary_key=True),
    Column("user_id", String(32), ForeignKey("users.id"), nullable=False),
    Column("sk_encrypted", Text, nullable=False),
    Column("description", String(255), nullable=False, server_default=""),
    Column("status", String(8), nullable=False, server_default="active"),   # active | inactive
    Column("created_at", Float, nullable=False),
    Column("last_used_at", Float, nullable=True),
)
Index("ix_access_keys_user", access_keys.c.user_id)

images = Table(
    "images", metadata,
    Column("id", String(36), primary_key=True),
    Column("name", String(255), nullable=False),
    Column("status", String(16), nullable=False),           # active | queued | saving | deleted | killed
    Column("visibility", String(16), nullable=False),       # public | private | shared
    Column("owner", String(32), nullable=True),             # project id for private images
    Column("imagetype", String(16), nullable=False),        # __imagetype: gold | private | shared
    Column("os_type", String(16), nullable=False),          # __os_type: Linux | Windows | Other
    Column("os_bit", String(4), nullable=False),            # __os_bit
    Column("platform", String(32), nullable=False),         # __platform
    Column("os_version", String(128), nullable=False),      # __os_version
    Column("min_disk", Integer, nullable=False),            # GB
    Column("min_ram", Integer, nullable=False),             # MB
    Column("disk_format", String(16), nullable=False),
    Column("size", BigInteger, nullable=False, server_default=text("0")),  # bytes
    Column("virtual_env_type", String(32), nullable=False),  # FusionCompute | DataImage | Ironic | IsoImage
    Column("hw_firmware_type", String(8), nullable=False),  # bios | uefi
    Column("support_kvm", Boolean, nullable=False),
    Column("cloudinit", Boolean, nullable=False),           # has Cloud-Init / Cloudbase-Init
    Column("properties", Text, nullable=False, server_default="{}"),  # further attributes (JSON)
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)
Index("ix_images_owner", images.c.owner)

flavors = Table(
    "flavors", metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(64), nullable=False),
    Column("vcpus", Integer, nullable=False),
    Column("ram", Integer, nullable=False),                 # MB
    Column("disk", Integer, nullable=False, server_default=text("0")),
    Column("extra_specs", Text, nullable=False, server_default="{}"),
    Column("disabled", Boolean, nullable=False, server_default=false()),
)

keypairs = Table(
    "keypairs", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("user_id", String(32), ForeignKey("users.id"), nullable=False),
    Column("name", String(64), nullable=False),
    Column("type", String(8), nullable=False),
    Column("public_key", Text, nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("created_at", Float, nullable=False),
    UniqueConstraint("user_id", "name", name="uq_keypairs_user_name"),
)

servers = Table(
    "servers", metadata,
    Column("id", String(36), primary_key=True),
    Column("project_id", String(32), ForeignKey("projects.id"), nullable=False),
    Column("user_id", String(32), nullable=False),
    Column("name", String(128), nullable=False),
    Column("description", String(85), nullable=False, server_default=""),
    Column("flavor_id", String(64), nullable=False),
    Column("image_id", String(36), nullable=False),
    Column("key_name", String(64), nullable=True),
    Column("vm_state", String(16), nullable=False),
    Column("task_state", String(32), nullable=True),
    Column("power_state", Integer, nullable=False),
    Column("locked", Boolean, nullable=False, server_default=false()),
    Column("job_id", String(32), nullable=True),             # the in-flight job that owns task_state
    Column("failed_op", String(32), nullable=True),          # job type whose failure put it in ERROR
    Column("fault", Text, nullable=True),                    # JSON {code, message, created}
    Column("metadata", Text, nullable=False, server_default="{}"),   # JSON map (system + user keys)
    Column("user_data", Text, nullable=True),
    Column("addresses", Text, nullable=False, server_default="{}"),  # JSON, fixed at create
    Column("availability_zone", String(64), nullable=False),
    Column("reservation_id", String(32), nullable=False),
    Column("launch_index", Integer, nullable=False, server_default=text("0")),
    Column("root_device_name", String(16), nullable=False),
    Column("firmware", String(8), nullable=False),           # bios | uefi, fixed at create
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("launched_at", Float, nullable=True),
    Column("deleted", Boolean, nullable=False, server_default=false()),
    # the flavor before a resize, kept while the server is in VERIFY_RESIZE (domain/resize.py)
    Column("old_flavor_id", String(64), nullable=True),
)
# Listing walks (project, created_at, id) so that any page, including the last, is an index range.
Index("ix_servers_project_created", servers.c.project_id, servers.c.deleted, servers.c.created_at, servers.c.id)

volumes = Table(
    "volumes", metadata,
    Column("id", String(36), primary_key=True),
    Column("project_id", String(32), nullable=False),
    Column("server_id", String(36), nullable=True),          # attached to; NULL = not attached
    Column("image_id", String(36), nullable=True),           # created from
    Column("size", Integer, nullable=False),                 # GB
    Column("volume_type", String(16), nullable=False),
    Column("boot_index", Integer, nullable=True),            # 0 = system disk
    Column("device", String(16), nullable=True),
    Column("status", String(16), nullable=False),            # states.VOLUME_*
    Column("created_at", Float, nullable=False),
    # EVS attributes (domain/volumes.py); a disk made by a server create has the defaults
    Column("name", String(255), nullable=False, server_default=""),
    Column("description", String(255), nullable=False, server_default=""),
    Column("multiattach", Boolean, nullable=False, server_default=false()),   # a shared disk (SCSI)
    Column("metadata", Text, nullable=False, server_default="{}"),            # JSON map
    Column("availability_zone", String(64), nullable=True),
    Column("updated_at", Float, nullable=True),
    Column("job_id", String(32), nullable=True),             # the in-flight job acting on the disk
)
Index("ix_volumes_server", volumes.c.server_id)
Index("ix_volumes_project", volumes.c.project_id, volumes.c.created_at)

# The attachments of shared disks (volumes.multiattach): one row per server the disk is attached to.
# A disk that is not shared keeps its one attachment in volumes.server_id / device, which the change-OS
# path and the invariants read (domain/attachments.py, decisions.md "disks").
volume_attachments = Table(
    "volume_attachments", metadata,
    Column("volume_id", String(36), ForeignKey("volumes.id", ondelete="CASCADE"), primary_key=True),
    Column("server_id", String(36), primary_key=True),
    Column("device", String(16), nullable=False),
    Column("status", String(16), nullable=False),            # attaching | in-use | detaching
    Column("created_at", Float, nullable=False),
)
Index("ix_volume_attachments_server", volume_attachments.c.server_id)

jobs = Table(
    "jobs", metadata,
    Column("job_id", String(32), primary_key=True),
    Column("project_id", String(32), nullable=False),
    Column("parent_id", String(32), nullable=True),
    Column("job_type", String(32), nullable=False),
    Column("runnable", Boolean, nullable=False),             # False for parents: they only aggregate
    Column("server_id", String(36), nullable=True),          # entities.server_id; the serial key
    Column("status", String(8), nullable=False),
    Column("params", Text, nullable=False, server_default="{}"),
    Column("step", Integer, nullable=False, server_default=text("0")),  # steps completed
    Column("owner", String(64), nullable=True),
    Column("lease_until", Float, nullable=True),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("error_code", String(16), nullable=True),
    Column("fail_reason", Text, nullable=True),
    Column("created_at", Float, nullable=False),
    Column("begin_time", Float, nullable=True),
    Column("end_time", Float, nullable=True),
    # the finished steps, each a JSON object followed by a comma (engine.py: _event; domain/actions.py)
    Column("events", Text, nullable=False, server_default=text("''")),
)
Index("ix_jobs_parent", jobs.c.parent_id)
Index("ix_jobs_claim", jobs.c.runnable, jobs.c.status, jobs.c.created_at)
# One in-flight job per server, enforced by the database itself (defence in depth behind the gate).
Index("uq_jobs_server_in_flight", jobs.c.server_id, unique=True,
      sqlite_where=text("status IN ('INIT','RUNNING') AND server_id IS NOT NULL"),
      postgresql_where=text("status IN ('INIT','RUNNING') AND server_id IS NOT NULL"))

# Idempotent creates: an X-Client-Token names one create request of a project, and a repeat of it
# answers with what the first one did (domain/lifecycle.py). `digest` is the request's fingerprint.
client_tokens = Table(
    "client_tokens", metadata,
    Column("project_id", String(32), ForeignKey("projects.id"), primary_key=True),
    Column("token", String(64), primary_key=True),
    Column("digest", String(64), nullable=False),
    Column("job_id", String(32), nullable=True),
    Column("server_ids", Text, nullable=True),
    Column("created_at", Float, nullable=False),
)

# Small key/value facts about the installation (schema seeded, instance secret, ...).
settings = Table(
    "settings", metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

# Named states of the whole database for the emulator's reset and restore (emulator/state.py):
# every other table's rows, as of a schema revision.
emulator_snapshots = Table(
    "emulator_snapshots", metadata,
    Column("name", String(64), primary_key=True),
    Column("revision", String(32), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("body", LargeBinary, nullable=False),
)

# Server groups (domain/server_groups.py): a project's anti-affinity groups and their members. A
# server is in at most one group (the primary key); a deleted server leaves its group.
server_groups = Table(
    "server_groups", metadata,
    Column("id", String(36), primary_key=True),
    Column("project_id", String(32), ForeignKey("projects.id"), nullable=False),
    Column("user_id", String(32), nullable=False),
    Column("name", String(255), nullable=False),
    Column("policies", Text, nullable=False),                # JSON list, ["anti-affinity"]
    Column("created_at", Float, nullable=False),
)
Index("ix_server_groups_project", server_groups.c.project_id, server_groups.c.created_at, server_groups.c.id)

server_group_members = Table(
    "server_group_members", metadata,
    Column("server_id", String(36), ForeignKey("servers.id"), primary_key=True),
    Column("group_id", String(36), ForeignKey("server_groups.id"), nullable=False),
    Column("created_at", Float, nullable=False),
)
Index("ix_server_group_members_group", server_group_members.c.group_id, server_group_members.c.created_at)

# Automatic recovery of a server (the discarded /autorecovery API): a row only once it was set.
server_auto_recovery = Table(
    "server_auto_recovery", metadata,
    Column("server_id", String(36), ForeignKey("servers.id"), primary_key=True),
    Column("enabled", Boolean, nullable=False),
)

# A server's tags (domain/tags.py): the v1 API's key/value pairs and Nova's one-string tags (a key with
# an empty value) in one table, so that each API shows the other's. Rows of a deleted server are not
# read (every read joins the live server); a removed server row takes its tags with it.
server_tags = Table(
    "server_tags", metadata,
    Column("server_id", String(36), ForeignKey("servers.id", ondelete="CASCADE"), primary_key=True),
    Column("key", String(128), primary_key=True),
    Column("value", String(255), nullable=False, server_default=""),
    Column("created_at", Float, nullable=False),
)

# Operation history (domain/actions.py): one row per operation on a server, kept after the server and
# its job are gone; the events are the job's (``jobs.events``) or, without a job, the action itself.
instance_actions = Table(
    "instance_actions", metadata,
    Column("server_id", String(36), primary_key=True),
    Column("request_id", String(40), primary_key=True),
    Column("project_id", String(32), nullable=False),
    Column("action", String(32), nullable=False),
    Column("user_id", String(32), nullable=False),
    Column("job_id", String(32), nullable=True),
    Column("start_time", Float, nullable=False),
    Column("finish_time", Float, nullable=True),
)
Index("ix_instance_actions_server", instance_actions.c.project_id, instance_actions.c.server_id,
      instance_actions.c.start_time)

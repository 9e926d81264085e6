"""bucket owners: access_keys.owner and the bucket_owners table

Bucket CORS configurations live in the backend (SeaweedFS answers Put/Get/DeleteBucketCors),
so the catalog records owners only.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Existing keys get the owner a new key would get (catalog.keys.default_owner): the admin
# for admin keys, the key's own name for the others. Written here, not imported: a
# migration must keep meaning what it meant when it was written.
ADMIN_OWNER = "admin"


def upgrade() -> None:
    with op.batch_alter_table("access_keys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("owner", sa.String(length=128), nullable=True))
    keys = sa.table(
        "access_keys",
        sa.column("owner", sa.String),
        sa.column("name", sa.String),
        sa.column("is_admin", sa.Boolean),
    )
    op.execute(
        keys.update().values(
            owner=sa.case((keys.c.is_admin.is_(True), sa.literal(ADMIN_OWNER)), else_=keys.c.name)
        )
    )
    with op.batch_alter_table("access_keys", schema=None) as batch_op:
        batch_op.alter_column("owner", existing_type=sa.String(length=128), nullable=False)

    op.create_table(
        "bucket_owners",
        sa.Column("bucket", sa.String(length=63), nullable=False),
        sa.Column("owner", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("bucket", name=op.f("pk_bucket_owners")),
    )


def downgrade() -> None:
    op.drop_table("bucket_owners")
    with op.batch_alter_table("access_keys", schema=None) as batch_op:
        batch_op.drop_column("owner")

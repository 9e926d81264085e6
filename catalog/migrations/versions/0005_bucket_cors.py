"""bucket CORS configurations in the catalog, as bucket owners are

The proxy answers Put/Get/DeleteBucketCors itself: MinIO's community edition keeps no
per-bucket CORS, and every proxy worker and replica must see a change at once. Each row
holds a bucket's rules and a revision that changes with every write, which each worker
compares, per request, with the rules it has parsed.

Revision ID: 0005_bucket_cors
Revises: 0004
Create Date: 2026-12-07 13:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_bucket_cors"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "bucket_cors",
        sa.Column("bucket", sa.String(length=63), nullable=False),
        sa.Column("rules", sa.JSON(), nullable=False),
        sa.Column("revision", sa.String(length=32), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("bucket", name=op.f("pk_bucket_cors")),
    )


def downgrade() -> None:
    op.drop_table("bucket_cors")

"""bucket settings: whether uploads to a bucket are transcoded, decided in the catalog

A bucket without a row keeps the default of its configuration (NEBULA_INGEST_BUCKETS);
``nebula buckets transcode`` writes a row, which wins from then on.

Revision ID: 0006_bucket_settings
Revises: 0005_bucket_cors
Create Date: 2026-12-07 14:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_bucket_settings"
down_revision: str | None = "0005_bucket_cors"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "bucket_settings",
        sa.Column("bucket", sa.String(length=63), nullable=False),
        sa.Column("transcode", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("bucket", name=op.f("pk_bucket_settings")),
    )


def downgrade() -> None:
    op.drop_table("bucket_settings")

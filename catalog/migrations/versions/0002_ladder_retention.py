"""ladder retention: versions of a ladder waiting to be deleted

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 12:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "retired_versions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("asset_id", sa.String(length=32), nullable=False),
        sa.Column("version", sa.String(length=32), nullable=False),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["asset_id"],
            ["assets.id"],
            name=op.f("fk_retired_versions_asset_id_assets"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["job_id"],
            ["jobs.id"],
            name=op.f("fk_retired_versions_job_id_jobs"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_retired_versions")),
        sa.UniqueConstraint("asset_id", "version", name="uq_retired_versions_asset"),
    )
    with op.batch_alter_table("retired_versions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_retired_versions_asset_id"), ["asset_id"])
        batch_op.create_index(batch_op.f("ix_retired_versions_job_id"), ["job_id"])
        batch_op.create_index(batch_op.f("ix_retired_versions_retired_at"), ["retired_at"])


def downgrade() -> None:
    op.drop_table("retired_versions")

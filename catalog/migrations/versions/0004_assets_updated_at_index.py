"""assets.updated_at indexed: every origin worker asks "what changed since" every second

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 12:45:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(op.f("ix_assets_updated_at"), "assets", ["updated_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_assets_updated_at"), table_name="assets")

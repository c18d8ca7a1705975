"""Cards remember the draft order they were about (as a keyed hash), for the repeated-alerts filter.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("audit_card", sa.Column("order_key", sa.String(64), nullable=True))
    op.create_index("ix_audit_card_order_key", "audit_card", ["order_key"])


def downgrade() -> None:
    op.drop_index("ix_audit_card_order_key", table_name="audit_card")
    with op.batch_alter_table("audit_card") as batch:
        batch.drop_column("order_key")

"""Audit tables: cards issued (with their rule ids and suggestions), feedback, JWT replay tokens.

Revision ID: 0001
Revises:
Create Date: 2026-11-30

Times are ``DateTime(timezone=True)`` (``timestamptz`` on PostgreSQL, UTC text on SQLite); the
models' ``UtcDateTime`` stores into exactly this type.
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Time = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "audit_card",
        sa.Column("id", Id, nullable=False),
        sa.Column("card_uuid", sa.String(64), nullable=False),
        sa.Column("service_id", sa.String(100), nullable=False),
        sa.Column("hook", sa.String(40), nullable=False),
        sa.Column("hook_instance", sa.String(100), nullable=True),
        sa.Column("topic", sa.String(64), nullable=False),
        sa.Column("indicator", sa.String(16), nullable=False),
        sa.Column("knowledge_version", sa.String(64), nullable=False),
        sa.Column("policy_name", sa.String(200), nullable=False),
        sa.Column("policy_hash", sa.String(128), nullable=False),
        sa.Column("issued_at", Time, nullable=False),
        sa.Column("patient_key", sa.String(64), nullable=True),
        sa.Column("suppressed", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_card"),
        sa.UniqueConstraint("card_uuid", name="uq_audit_card_card_uuid"),
    )
    op.create_index("ix_audit_card_issued_at", "audit_card", ["issued_at"])
    op.create_index("ix_audit_card_patient_key", "audit_card", ["patient_key"])

    op.create_table(
        "audit_card_rule",
        sa.Column("card_id", Id, nullable=False),
        sa.Column("rule_id", sa.String(100), nullable=False),
        sa.ForeignKeyConstraint(["card_id"], ["audit_card.id"], name="fk_audit_card_rule_card_id_audit_card",
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("card_id", "rule_id", name="pk_audit_card_rule"),
    )
    op.create_index("ix_audit_card_rule_rule_id", "audit_card_rule", ["rule_id"])

    op.create_table(
        "audit_card_suggestion",
        sa.Column("card_id", Id, nullable=False),
        sa.Column("suggestion_uuid", sa.String(64), nullable=False),
        sa.Column("label", sa.String(200), nullable=False),
        sa.ForeignKeyConstraint(["card_id"], ["audit_card.id"], name="fk_audit_card_suggestion_card_id_audit_card",
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("card_id", "suggestion_uuid", name="pk_audit_card_suggestion"),
    )

    op.create_table(
        "audit_feedback",
        sa.Column("id", Id, nullable=False),
        sa.Column("dedupe_key", sa.String(64), nullable=False),
        sa.Column("card_uuid", sa.String(128), nullable=False),
        sa.Column("card_id", Id, nullable=True),
        sa.Column("service_id", sa.String(100), nullable=True),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("accepted_suggestions", sa.Text(), nullable=False),
        sa.Column("reason_system", sa.String(255), nullable=True),
        sa.Column("reason_code", sa.String(128), nullable=True),
        sa.Column("reason_display", sa.String(255), nullable=True),
        sa.Column("user_comment", sa.Text(), nullable=True),
        sa.Column("outcome_timestamp", Time, nullable=False),
        sa.Column("received_at", Time, nullable=False),
        sa.ForeignKeyConstraint(["card_id"], ["audit_card.id"], name="fk_audit_feedback_card_id_audit_card",
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_audit_feedback"),
        sa.UniqueConstraint("dedupe_key", name="uq_audit_feedback_dedupe_key"),
    )
    op.create_index("ix_audit_feedback_card_uuid", "audit_feedback", ["card_uuid"])
    op.create_index("ix_audit_feedback_card_id", "audit_feedback", ["card_id"])
    op.create_index("ix_audit_feedback_received_at", "audit_feedback", ["received_at"])

    op.create_table(
        "audit_replay_token",
        sa.Column("token_key", sa.String(64), nullable=False),
        sa.Column("issuer", sa.String(255), nullable=True),
        sa.Column("expires_at", Time, nullable=False),
        sa.PrimaryKeyConstraint("token_key", name="pk_audit_replay_token"),
    )
    op.create_index("ix_audit_replay_token_expires_at", "audit_replay_token", ["expires_at"])


def downgrade() -> None:
    op.drop_table("audit_replay_token")
    op.drop_table("audit_feedback")
    op.drop_table("audit_card_suggestion")
    op.drop_table("audit_card_rule")
    op.drop_table("audit_card")

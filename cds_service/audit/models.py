"""The audit tables: cards issued, feedback received, and JWT ids already seen (SQLAlchemy Core tables:
the ORM is not used, and not imported, which keeps a tenth of a second off every start).

Times are stored in UTC. PostgreSQL keeps them as ``timestamptz``; SQLite has no time zone
type, so ``UtcDateTime`` stores naive UTC text there and hands back aware datetimes.
Patient ids are never stored: ``patient_key`` is an HMAC-SHA256 of the id (see ``pseudonymise``).
"""

import datetime

from sqlalchemy import BigInteger
from sqlalchemy import Boolean
from sqlalchemy import Column
from sqlalchemy import DateTime
from sqlalchemy import ForeignKey
from sqlalchemy import Integer
from sqlalchemy import MetaData
from sqlalchemy import String
from sqlalchemy import Table
from sqlalchemy import Text
from sqlalchemy.types import TypeDecorator

from cds_service.request.envelope import MAX_HOOK_INSTANCE_LENGTH

# Constraint names are fixed so that migrations can refer to them on every database.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# An integer primary key: BIGINT on PostgreSQL, INTEGER (the rowid alias) on SQLite.
Id = BigInteger().with_variant(Integer(), "sqlite")


class UtcDateTime(TypeDecorator):
    """An aware datetime in, an aware UTC datetime out, on every database."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("audit times must be timezone-aware")
        value = value.astimezone(datetime.timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=datetime.timezone.utc)
        return value.astimezone(datetime.timezone.utc)


metadata = MetaData(naming_convention=NAMING_CONVENTION)

# One card returned to an EHR (or suppressed as a repeat, with ``suppressed`` set).
CARD = Table(
    "audit_card", metadata,
    Column("id", Id, primary_key=True),
    Column("card_uuid", String(64), nullable=False, unique=True),
    Column("service_id", String(100), nullable=False),
    Column("hook", String(40), nullable=False),
    Column("hook_instance", String(MAX_HOOK_INSTANCE_LENGTH)),
    Column("topic", String(64), nullable=False),
    Column("indicator", String(16), nullable=False),
    Column("knowledge_version", String(64), nullable=False),
    Column("policy_name", String(200), nullable=False),
    Column("policy_hash", String(128), nullable=False),
    Column("issued_at", UtcDateTime(), nullable=False, index=True),
    Column("patient_key", String(64), index=True),
    Column("suppressed", Boolean, nullable=False, default=False),
    # HMAC of patient id and draft order reference(s): "the same draft order" for the repeated-alerts filter
    Column("order_key", String(64), index=True),
)

# A rule id behind a card; a card merged from several findings has several.
RULE = Table(
    "audit_card_rule", metadata,
    Column("card_id", Id, ForeignKey("audit_card.id", ondelete="CASCADE"), primary_key=True),
    Column("rule_id", String(100), primary_key=True, index=True),
)

# A suggestion offered on a card: its uuid and button label.
SUGGESTION = Table(
    "audit_card_suggestion", metadata,
    Column("card_id", Id, ForeignKey("audit_card.id", ondelete="CASCADE"), primary_key=True),
    Column("suggestion_uuid", String(64), primary_key=True),
    Column("label", String(200), nullable=False),
)

# One CDS Hooks feedback item. ``card_id`` is null when no recorded card had its uuid.
FEEDBACK = Table(
    "audit_feedback", metadata,
    Column("id", Id, primary_key=True),
    # sha256 over card uuid, outcome, outcomeTimestamp, accepted suggestions and reason: a repeat is a no-op.
    Column("dedupe_key", String(64), nullable=False, unique=True),
    Column("card_uuid", String(128), nullable=False, index=True),
    Column("card_id", Id, ForeignKey("audit_card.id", ondelete="CASCADE"), index=True),
    Column("service_id", String(100)),
    Column("outcome", String(16), nullable=False),
    Column("accepted_suggestions", Text, nullable=False, default="[]"),  # JSON array of suggestion uuids
    Column("reason_system", String(255)),
    Column("reason_code", String(128)),
    Column("reason_display", String(255)),
    Column("user_comment", Text),
    Column("outcome_timestamp", UtcDateTime(), nullable=False),
    Column("received_at", UtcDateTime(), nullable=False, index=True),
)

# A JWT already used (by sha256 of issuer and jti), kept until it expires.
REPLAY = Table(
    "audit_replay_token", metadata,
    Column("token_key", String(64), primary_key=True),
    Column("issuer", String(255)),
    Column("expires_at", UtcDateTime(), nullable=False, index=True),
)

__all__ = ["CARD", "FEEDBACK", "REPLAY", "RULE", "SUGGESTION", "UtcDateTime", "metadata"]

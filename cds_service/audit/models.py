"""The audit tables: cards issued, feedback received, and JWT ids already seen.

Times are stored in UTC. PostgreSQL keeps them as ``timestamptz``; SQLite has no time zone
type, so ``UtcDateTime`` stores naive UTC text there and hands back aware datetimes.
Patient ids are never stored: ``patient_key`` is an HMAC-SHA256 of the id (see ``pseudonymise``).
"""

import datetime

from sqlalchemy import BigInteger
from sqlalchemy import Boolean
from sqlalchemy import DateTime
from sqlalchemy import ForeignKey
from sqlalchemy import Integer
from sqlalchemy import MetaData
from sqlalchemy import String
from sqlalchemy import Text
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.orm import Mapped
from sqlalchemy.orm import mapped_column
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


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class IssuedCardRow(Base):
    """One card returned to an EHR (or suppressed as a repeat, with ``suppressed`` set)."""

    __tablename__ = "audit_card"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    card_uuid: Mapped[str] = mapped_column(String(64), unique=True)
    service_id: Mapped[str] = mapped_column(String(100))
    hook: Mapped[str] = mapped_column(String(40))
    hook_instance: Mapped[str | None] = mapped_column(String(MAX_HOOK_INSTANCE_LENGTH))
    topic: Mapped[str] = mapped_column(String(64))
    indicator: Mapped[str] = mapped_column(String(16))
    knowledge_version: Mapped[str] = mapped_column(String(64))
    policy_name: Mapped[str] = mapped_column(String(200))
    policy_hash: Mapped[str] = mapped_column(String(128))
    issued_at: Mapped[datetime.datetime] = mapped_column(UtcDateTime(), index=True)
    patient_key: Mapped[str | None] = mapped_column(String(64), index=True)
    suppressed: Mapped[bool] = mapped_column(Boolean, default=False)
    # HMAC of patient id and draft order reference(s): "the same draft order" for the repeated-alerts filter
    order_key: Mapped[str | None] = mapped_column(String(64), index=True)


class CardRuleRow(Base):
    """A rule id behind a card; a card merged from several findings has several."""

    __tablename__ = "audit_card_rule"

    card_id: Mapped[int] = mapped_column(Id, ForeignKey("audit_card.id", ondelete="CASCADE"), primary_key=True)
    rule_id: Mapped[str] = mapped_column(String(100), primary_key=True, index=True)


class CardSuggestionRow(Base):
    """A suggestion offered on a card: its uuid and button label."""

    __tablename__ = "audit_card_suggestion"

    card_id: Mapped[int] = mapped_column(Id, ForeignKey("audit_card.id", ondelete="CASCADE"), primary_key=True)
    suggestion_uuid: Mapped[str] = mapped_column(String(64), primary_key=True)
    label: Mapped[str] = mapped_column(String(200))


class FeedbackRow(Base):
    """One CDS Hooks feedback item. ``card_id`` is null when no recorded card had its uuid."""

    __tablename__ = "audit_feedback"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    # sha256 over card uuid, outcome, outcomeTimestamp, accepted suggestions and reason: a repeat is a no-op.
    dedupe_key: Mapped[str] = mapped_column(String(64), unique=True)
    card_uuid: Mapped[str] = mapped_column(String(128), index=True)
    card_id: Mapped[int | None] = mapped_column(Id, ForeignKey("audit_card.id", ondelete="CASCADE"), index=True)
    service_id: Mapped[str | None] = mapped_column(String(100))
    outcome: Mapped[str] = mapped_column(String(16))
    accepted_suggestions: Mapped[str] = mapped_column(Text, default="[]")  # JSON array of suggestion uuids
    reason_system: Mapped[str | None] = mapped_column(String(255))
    reason_code: Mapped[str | None] = mapped_column(String(128))
    reason_display: Mapped[str | None] = mapped_column(String(255))
    user_comment: Mapped[str | None] = mapped_column(Text)
    outcome_timestamp: Mapped[datetime.datetime] = mapped_column(UtcDateTime())
    received_at: Mapped[datetime.datetime] = mapped_column(UtcDateTime(), index=True)


class ReplayTokenRow(Base):
    """A JWT already used (by sha256 of issuer and jti), kept until it expires."""

    __tablename__ = "audit_replay_token"

    token_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    issuer: Mapped[str | None] = mapped_column(String(255))
    expires_at: Mapped[datetime.datetime] = mapped_column(UtcDateTime(), index=True)


metadata = Base.metadata
__all__ = ["Base", "CardRuleRow", "CardSuggestionRow", "FeedbackRow", "IssuedCardRow", "ReplayTokenRow",
           "UtcDateTime", "metadata"]

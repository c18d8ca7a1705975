"""The audit database: cards issued, feedback received, purge, the committee's report, JWT replay.

``Store.from_url(url)`` opens SQLite (a file, WAL mode) or PostgreSQL (psycopg 3); ``migrate()``
brings the schema to the newest Alembic revision under a lock, so several processes may call it
at start. Every method takes and returns plain values; none needs Flask. A database failure is
raised as ``AuditUnavailable`` so that a caller can log it, count it and carry on.
"""

import dataclasses
import datetime
import hashlib
import hmac
import json
import re
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlalchemy import bindparam
from sqlalchemy import create_engine
from sqlalchemy import delete
from sqlalchemy import event
from sqlalchemy import func
from sqlalchemy import inspect
from sqlalchemy import select
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from cds_service.audit.feedback import FeedbackItem
from cds_service.audit.models import CARD
from cds_service.audit.models import FEEDBACK
from cds_service.audit.models import REPLAY
from cds_service.audit.models import RULE
from cds_service.audit.models import SUGGESTION
from cds_service.audit.report import CardFacts
from cds_service.audit.report import FeedbackFacts
from cds_service.audit.report import Report
from cds_service.audit.report import build_report
from cds_service.policy import PolicyIdentity

STORED, DUPLICATE, UNMATCHED = "stored", "duplicate", "unmatched"
SEVERITY = {"info": 0, "warning": 1, "critical": 2}
SQLITE_BUSY_TIMEOUT_MS = 10_000
POSTGRES_CONNECT_TIMEOUT_S = 5
MIGRATION_LOCK_KEY = 0x43445341  # pg_advisory_xact_lock key, "CDSA"
SCHEMA_HEAD = "0002"  # the newest migration's revision (tests check it against cds_service/audit/migrations)
_CHUNK = 500                     # uuids per IN (...) list
_PATIENT_KEY = re.compile(r"[0-9a-f]{64}")


class AuditError(Exception):
    """Base of the audit package's errors."""


class AuditConfigError(AuditError, ValueError):
    """The database URL cannot be used."""


class AuditUnavailable(AuditError):
    """The database could not be read or written (the message holds no data, only the error's kind)."""


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def pseudonymise(patient_id: str, secret: str | bytes) -> str:
    """The patient key stored instead of the id: HMAC-SHA256 of the id under a site secret, as hex."""
    if not secret:
        raise AuditConfigError("a non-empty secret is needed to pseudonymise patient ids")
    key = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(key, patient_id.encode(), hashlib.sha256).hexdigest()


@dataclasses.dataclass(frozen=True)
class IssuedCard:
    """What the audit keeps of one card: no summary, no detail, nothing about the patient."""

    card_uuid: str
    topic: str
    indicator: str
    rule_ids: tuple[str, ...]
    suggestions: Mapping[str, str] = dataclasses.field(default_factory=dict)  # suggestion uuid -> label
    suppressed: bool = False

    @classmethod
    def from_card(cls, card: Mapping[str, Any], rule_ids: Iterable[str], suppressed: bool = False) -> "IssuedCard":
        """From a rendered CDS Hooks card (its uuid, source.topic.code, indicator, suggestions)."""
        topic = ((card.get("source") or {}).get("topic") or {}).get("code") or ""
        suggestions = {s["uuid"]: s.get("label", "") for s in card.get("suggestions") or () if s.get("uuid")}
        return cls(card_uuid=card["uuid"], topic=topic, indicator=card["indicator"],
                   rule_ids=tuple(dict.fromkeys(rule_ids)), suggestions=suggestions, suppressed=suppressed)


def normalise_url(url: str) -> str:
    """``postgres://`` and ``postgresql://`` mean psycopg 3 here (SQLAlchemy would pick psycopg2)."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def masked_url(url: str) -> str:
    """The URL with its password hidden, for messages."""
    return make_url(normalise_url(url)).render_as_string(hide_password=True)


def alembic_config():
    """Alembic's configuration for the migrations shipped in the package (no ``alembic.ini``)."""
    from alembic.config import Config  # loaded only when a schema is to change: it costs half a second

    config = Config()
    config.set_main_option("script_location", "cds_service.audit:migrations")
    return config


def _sqlite_engine(url, **kwargs) -> Engine:
    database = url.database
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, **kwargs)

    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None  # the driver begins nothing; the "begin" hook below does
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")  # durable at each checkpoint; never corrupt
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(connection):
        # Writers take the lock at BEGIN, so a read-then-write transaction never fails on upgrading its lock.
        # A single statement needs no BEGIN: SQLite runs it as its own transaction, atomically.
        options = connection.get_execution_options()
        if not options.get("audit_single_statement", False):
            connection.exec_driver_sql("BEGIN" if options.get("audit_readonly", False) else "BEGIN IMMEDIATE")

    return engine


class Store:
    """The audit log on one database. Thread-safe; after a fork, call ``after_fork()`` in the child."""

    def __init__(self, engine: Engine, clock: Callable[[], datetime.datetime] = utc_now):
        self.engine = engine
        self.clock = clock
        self.dialect = engine.dialect.name
        self._insert = _insert_for(self.dialect)
        self._claim = _claim_statement(self._insert)

    @classmethod
    def from_url(cls, url: str, clock: Callable[[], datetime.datetime] = utc_now, **engine_options) -> "Store":
        try:
            parsed = make_url(normalise_url(url))
        except Exception:
            raise AuditConfigError("CDS_DATABASE_URL is not a database URL") from None
        backend = parsed.get_backend_name()
        if backend == "sqlite":
            engine = _sqlite_engine(parsed, **engine_options)
        elif backend == "postgresql":
            engine_options.setdefault("pool_pre_ping", True)
            connect_args = {"connect_timeout": POSTGRES_CONNECT_TIMEOUT_S} | engine_options.pop("connect_args", {})
            engine = create_engine(parsed, connect_args=connect_args, **engine_options)
        else:
            raise AuditConfigError(f"unsupported database {backend!r}: use sqlite:///FILE or postgresql://...")
        return cls(engine, clock)

    def dispose(self) -> None:
        self.engine.dispose()

    def after_fork(self) -> None:
        """In a forked child: forget the parent's pooled connections without closing them under it."""
        self.engine.dispose(close=False)

    # -- schema ------------------------------------------------------------------------------------

    def migrate(self) -> str:
        """Upgrade to the newest revision; returns it. Concurrent callers wait for each other.

        A database already at the newest revision is left as it is without loading Alembic, which
        would cost half a second of every start."""
        if self._revision() == SCHEMA_HEAD:
            return SCHEMA_HEAD
        from alembic import command

        config = alembic_config()
        try:
            with self.engine.begin() as connection:  # on SQLite, BEGIN IMMEDIATE: the write lock is ours
                if self.dialect == "postgresql":
                    connection.execute(select(func.pg_advisory_xact_lock(MIGRATION_LOCK_KEY)))
                config.attributes["connection"] = connection
                command.upgrade(config, "head")
            return self._revision()
        except SQLAlchemyError as error:
            raise _unavailable(error) from error

    def schema_revision(self) -> tuple[str | None, str]:
        """(the database's revision, the newest revision this code knows)."""
        return self._revision(), SCHEMA_HEAD

    def _revision(self) -> str | None:
        """The database's schema revision (Alembic's ``alembic_version`` table), None before the first migration."""
        try:
            with self.engine.connect().execution_options(audit_readonly=True) as connection:
                if not inspect(connection).has_table("alembic_version"):
                    return None
                return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
        except SQLAlchemyError as error:
            raise _unavailable(error) from error

    def ping(self) -> None:
        """Raises ``AuditUnavailable`` if the database cannot answer (for /readyz)."""
        try:
            with self.engine.connect().execution_options(audit_readonly=True) as connection:
                connection.execute(text("SELECT 1"))
        except SQLAlchemyError as error:
            raise _unavailable(error) from error

    # -- writing -----------------------------------------------------------------------------------

    def record_cards(self, cards: Sequence[IssuedCard], **fields) -> int:
        """Record the cards of one response (``fields`` as for ``record_responses``); returns how many were new."""
        return self.record_responses([(cards, fields)])

    def record_responses(self, responses: Sequence[tuple[Sequence[IssuedCard], Mapping[str, Any]]]) -> int:
        """Record the cards of several responses in one transaction; returns how many were new (a card uuid is
        recorded once). Each response's fields: ``service_id``, ``hook``, ``hook_instance``, ``patient_key``,
        ``knowledge_version``, ``policy``, and optionally ``issued_at`` (default now) and ``order_key``."""
        rows = [row for cards, fields in responses for row in self._card_rows(cards, **fields)]
        if not rows:
            return 0
        by_uuid: dict[str, IssuedCard] = {}
        for cards, _fields in responses:
            for card in cards:
                by_uuid.setdefault(card.card_uuid, card)  # a repeated uuid: the first row is the one inserted
        try:
            with self.engine.begin() as connection:
                inserted = connection.execute(
                    self._insert(CARD).on_conflict_do_nothing(index_elements=["card_uuid"])
                    .returning(CARD.c.id, CARD.c.card_uuid), rows).all()
                rules = [{"card_id": card_id, "rule_id": rule_id}
                         for card_id, uuid in inserted for rule_id in by_uuid[uuid].rule_ids]
                suggestions = [{"card_id": card_id, "suggestion_uuid": suggestion, "label": label[:200]}
                               for card_id, uuid in inserted for suggestion, label in by_uuid[uuid].suggestions.items()]
                if rules:
                    connection.execute(RULE.insert(), rules)
                if suggestions:
                    connection.execute(SUGGESTION.insert(), suggestions)
        except SQLAlchemyError as error:
            raise _unavailable(error) from error
        return len(inserted)

    def _card_rows(self, cards: Sequence[IssuedCard], *, service_id: str, hook: str, hook_instance: str | None,
                   patient_key: str | None, knowledge_version: str, policy: PolicyIdentity,
                   issued_at: datetime.datetime | None = None, order_key: str | None = None) -> list[dict]:
        if not cards:
            return []
        for key in (patient_key, order_key):
            if key is not None and not _PATIENT_KEY.fullmatch(key):
                raise ValueError("patient_key and order_key must be pseudonymise(...) keys, never raw ids")
        issued_at = issued_at or self.clock()
        return [{"card_uuid": card.card_uuid, "service_id": service_id, "hook": hook, "hook_instance": hook_instance,
                 "topic": card.topic, "indicator": card.indicator, "knowledge_version": knowledge_version,
                 "policy_name": policy.name, "policy_hash": policy.hash, "issued_at": issued_at,
                 "patient_key": patient_key, "suppressed": card.suppressed, "order_key": order_key} for card in cards]

    def record_feedback(self, items: Sequence[FeedbackItem], *, service_id: str | None = None,
                        received_at: datetime.datetime | None = None) -> list[str]:
        """Store feedback items; for each, in order: ``stored``, ``duplicate`` or ``unmatched`` (stored, no card)."""
        if not items:
            return []
        received_at = received_at or self.clock()
        keys = [item.dedupe_key for item in items]
        first = {}
        for position, key in enumerate(keys):
            first.setdefault(key, position)
        try:
            with self.engine.begin() as connection:
                card_ids = self._card_ids(connection, {item.card for item in items})
                rows = [_feedback_row(items[position], key, card_ids.get(items[position].card), service_id, received_at)
                        for key, position in first.items()]
                stored = set(connection.execute(
                    self._insert(FEEDBACK).on_conflict_do_nothing(index_elements=["dedupe_key"])
                    .returning(FEEDBACK.c.dedupe_key), rows).scalars())
        except SQLAlchemyError as error:
            raise _unavailable(error) from error
        return [DUPLICATE if key not in stored or first[key] != position
                else STORED if item.card in card_ids else UNMATCHED
                for position, (item, key) in enumerate(zip(items, keys))]

    @staticmethod
    def _card_ids(connection, uuids: set[str]) -> dict[str, int]:
        found: dict[str, int] = {}
        ordered = sorted(uuids)
        for start in range(0, len(ordered), _CHUNK):
            chunk = ordered[start:start + _CHUNK]
            found.update(connection.execute(select(CARD.c.card_uuid, CARD.c.id).where(CARD.c.card_uuid.in_(chunk))).all())
        return found

    def shown_severity(self, order_key: str, hook: str = "order-select") -> dict[str, str]:
        """Per topic, the most severe indicator of the cards shown (not suppressed) at ``hook`` for ``order_key``."""
        try:
            with self.engine.connect().execution_options(audit_readonly=True) as connection, connection.begin():
                rows = connection.execute(select(CARD.c.topic, CARD.c.indicator).where(
                    CARD.c.order_key == order_key, CARD.c.hook == hook, CARD.c.suppressed.is_(False))).all()
        except SQLAlchemyError as error:
            raise _unavailable(error) from error
        severest: dict[str, str] = {}
        for topic, indicator in rows:
            if SEVERITY.get(indicator, 0) > SEVERITY.get(severest.get(topic, ""), -1):
                severest[topic] = indicator
        return severest

    def claim_once(self, key: str, expires_at: datetime.datetime, *, issuer: str | None = None) -> bool:
        """True the first time ``key`` (e.g. a JWT's jti) is claimed before ``expires_at``; False on a replay.

        Atomic across processes and replicas: the insert either creates the row or meets the unique
        key. An expired claim of the same key may be taken again.
        """
        token_key = hashlib.sha256(f"{issuer or ''}\x00{key}".encode()).hexdigest()
        claim = {"token_key": token_key, "issuer": issuer, "expires_at": expires_at, "now": self.clock()}
        try:
            with self.engine.connect().execution_options(audit_single_statement=True) as connection:
                claimed = connection.execute(self._claim, claim).first()
                connection.commit()
                return claimed is not None
        except SQLAlchemyError as error:
            raise _unavailable(error) from error

    def purge(self, older_than_days: int) -> dict[str, int]:
        """Delete cards issued and feedback received more than ``older_than_days`` ago, and expired JWT ids."""
        if isinstance(older_than_days, bool) or not isinstance(older_than_days, int) or older_than_days < 1:
            raise ValueError("older_than_days must be a whole number of days, at least 1")
        now = self.clock()
        cutoff = now - datetime.timedelta(days=older_than_days)
        old_cards = select(CARD.c.id).where(CARD.c.issued_at < cutoff)
        old_uuids = select(CARD.c.card_uuid).where(CARD.c.issued_at < cutoff)
        try:
            with self.engine.begin() as connection:
                feedback = connection.execute(delete(FEEDBACK).where(
                    (FEEDBACK.c.received_at < cutoff) | FEEDBACK.c.card_uuid.in_(old_uuids))).rowcount
                connection.execute(delete(RULE).where(RULE.c.card_id.in_(old_cards)))
                connection.execute(delete(SUGGESTION).where(SUGGESTION.c.card_id.in_(old_cards)))
                cards = connection.execute(delete(CARD).where(CARD.c.issued_at < cutoff)).rowcount
                tokens = connection.execute(delete(REPLAY).where(REPLAY.c.expires_at <= now)).rowcount
        except SQLAlchemyError as error:
            raise _unavailable(error) from error
        return {"cards": cards, "feedback": feedback, "replayTokens": tokens}

    # -- reading -----------------------------------------------------------------------------------

    def report(self, since: datetime.datetime | None = None, until: datetime.datetime | None = None, *,
               reason_displays: Mapping[str, str] | None = None) -> Report:
        """The committee's report over cards issued in [since, until) (either end may be open)."""
        window = []
        if since is not None:
            window.append(CARD.c.issued_at >= since)
        if until is not None:
            window.append(CARD.c.issued_at < until)
        received = []
        if since is not None:
            received.append(FEEDBACK.c.received_at >= since)
        if until is not None:
            received.append(FEEDBACK.c.received_at < until)
        try:
            with self.engine.connect().execution_options(audit_readonly=True) as connection, connection.begin():
                cards = {row.id: row for row in connection.execute(
                    select(CARD.c.id, CARD.c.card_uuid, CARD.c.topic, CARD.c.indicator, CARD.c.issued_at,
                           CARD.c.suppressed, CARD.c.policy_name, CARD.c.policy_hash, CARD.c.knowledge_version)
                    .where(*window))}
                rules: dict[int, list[str]] = {}
                for card_id, rule_id in connection.execute(
                        select(RULE.c.card_id, RULE.c.rule_id).join(CARD, CARD.c.id == RULE.c.card_id).where(*window)
                        .order_by(RULE.c.card_id, RULE.c.rule_id)):
                    rules.setdefault(card_id, []).append(rule_id)
                suggestions: dict[int, dict[str, str]] = {}
                for card_id, suggestion, label in connection.execute(
                        select(SUGGESTION.c.card_id, SUGGESTION.c.suggestion_uuid, SUGGESTION.c.label)
                        .join(CARD, CARD.c.id == SUGGESTION.c.card_id).where(*window)):
                    suggestions.setdefault(card_id, {})[suggestion] = label
                feedback = [FeedbackFacts(card_uuid=row.card_uuid, outcome=row.outcome,
                                          accepted_suggestions=tuple(json.loads(row.accepted_suggestions)),
                                          reason_system=row.reason_system, reason_code=row.reason_code,
                                          reason_display=row.reason_display, outcome_timestamp=row.outcome_timestamp,
                                          received_at=row.received_at)
                            for row in connection.execute(
                                select(FEEDBACK).join(CARD, CARD.c.card_uuid == FEEDBACK.c.card_uuid).where(*window))]
                unmatched = connection.execute(
                    select(func.count()).select_from(FEEDBACK.outerjoin(CARD, CARD.c.card_uuid == FEEDBACK.c.card_uuid))
                    .where(CARD.c.id.is_(None), *received)).scalar_one()
        except SQLAlchemyError as error:
            raise _unavailable(error) from error
        facts = [CardFacts(card_uuid=row.card_uuid, topic=row.topic, indicator=row.indicator, issued_at=row.issued_at,
                           suppressed=row.suppressed, rule_ids=tuple(rules.get(card_id, ())),
                           suggestions=suggestions.get(card_id, {}), policy_name=row.policy_name,
                           policy_hash=row.policy_hash, knowledge_version=row.knowledge_version)
                 for card_id, row in cards.items()]
        return build_report(facts, feedback, unmatched_feedback=unmatched, since=since, until=until,
                            generated_at=self.clock(), reason_displays=reason_displays)


def _insert_for(dialect: str):
    """The dialect's INSERT with ``on_conflict_*`` (imported for the database in use only: start-up time)."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert


def _claim_statement(insert) -> Any:
    """Insert a replay token, or take over an expired claim of it, in one atomic statement.

    A row is returned only when the claim was won (RETURNING rather than rowcount: psycopg may
    report -1 for INSERT ... ON CONFLICT). Built once; SQLAlchemy caches its compiled form.
    """
    new = insert(REPLAY).values(token_key=bindparam("token_key"), issuer=bindparam("issuer"),
                                expires_at=bindparam("expires_at"))
    return new.on_conflict_do_update(
        index_elements=[REPLAY.c.token_key], set_={"issuer": new.excluded.issuer, "expires_at": new.excluded.expires_at},
        where=REPLAY.c.expires_at <= bindparam("now", type_=REPLAY.c.expires_at.type),
    ).returning(REPLAY.c.token_key)


def _feedback_row(item: FeedbackItem, key: str, card_id: int | None, service_id: str | None,
                  received_at: datetime.datetime) -> dict:
    return {"dedupe_key": key, "card_uuid": item.card, "card_id": card_id, "service_id": service_id,
            "outcome": item.outcome, "accepted_suggestions": json.dumps(list(item.accepted_suggestions)),
            "reason_system": item.reason_system, "reason_code": item.reason_code,
            "reason_display": item.reason_display, "user_comment": item.user_comment,
            "outcome_timestamp": item.outcome_timestamp, "received_at": received_at}


def _unavailable(error: SQLAlchemyError) -> AuditUnavailable:
    cause = getattr(error, "orig", None) or error
    return AuditUnavailable(f"audit database error ({type(cause).__module__}.{type(cause).__name__})")

"""The JWT replay cache shared by every worker and replica: one row per ``(iss, jti)`` in the database.

``DatabaseReplayCache`` implements ``auth.ReplayCache`` on ``Store.claim_once`` (an atomic insert on
SQLite and PostgreSQL, so a token replayed to another worker or replica is refused). Expired rows
are deleted at most once a minute. When the database cannot be reached, the check falls back to a
bounded per-process cache (logged and counted as a database error), so that clinicians are not
locked out while the database is down; a replay to another process is then not detected.
"""

import datetime
import logging
import os
import threading
import time
from collections.abc import Callable

from sqlalchemy import delete
from sqlalchemy.exc import SQLAlchemyError

from cds_service.audit.store import REPLAY
from cds_service.audit.store import AuditUnavailable
from cds_service.audit.store import Store
from cds_service.auth.replay import InMemoryReplayCache
from cds_service.metrics import metrics

log = logging.getLogger(__name__)

CLEANUP_INTERVAL_SECONDS = 60.0


class DatabaseReplayCache:
    def __init__(self, store: Store, *, clock: Callable[[], float] = time.time,
                 fallback_max_entries: int = 100_000, cleanup_interval: float = CLEANUP_INTERVAL_SECONDS) -> None:
        self.store = store
        self._clock = clock
        self._fallback = InMemoryReplayCache(clock, max_entries=fallback_max_entries)
        self._cleanup_interval = cleanup_interval
        self._next_cleanup = clock() + cleanup_interval
        self._lock = threading.Lock()
        self._pid = os.getpid()

    def seen_before(self, issuer: str, jti: str, expires_at: float) -> bool:
        self._after_fork()
        self._cleanup_if_due()
        locally_seen = self._fallback.seen_before(issuer, jti, expires_at)  # also answers while the database is down
        try:
            expiry = datetime.datetime.fromtimestamp(expires_at, datetime.timezone.utc)
            return not self.store.claim_once(jti, expiry, issuer=issuer)
        except AuditUnavailable as error:
            metrics().database_errors.labels("replay-check").inc()
            log.warning("JWT replay check: the database cannot be reached; checking this process only",
                        extra={"fields": {"error": str(error)}})
            return locally_seen

    def ping(self) -> None:
        """Raises ``AuditUnavailable`` if the database cannot answer (for /readyz); fork-safe."""
        self._after_fork()
        self.store.ping()

    def delete_expired(self) -> int:
        """Delete the rows of tokens that have expired; returns how many."""
        try:
            with self.store.engine.begin() as connection:
                return connection.execute(delete(REPLAY).where(REPLAY.c.expires_at <= self.store.clock())).rowcount
        except SQLAlchemyError as error:
            metrics().database_errors.labels("replay-cleanup").inc()
            log.warning("JWT replay cache clean-up failed", extra={"fields": {"error": type(error).__name__}})
            return 0

    def _cleanup_if_due(self) -> None:
        now = self._clock()
        with self._lock:
            if now < self._next_cleanup:
                return
            self._next_cleanup = now + self._cleanup_interval
        self.delete_expired()

    def _after_fork(self) -> None:
        if os.getpid() != self._pid:
            with self._lock:
                if os.getpid() != self._pid:
                    self.store.after_fork()
                    self._pid = os.getpid()


_stores: dict[str, Store] = {}
_stores_lock = threading.Lock()


def shared_store(url: str) -> Store:
    """One migrated ``Store`` per database URL in this process (apps built in tests share it)."""
    with _stores_lock:
        store = _stores.get(url)
        if store is None:
            if url.startswith("sqlite:///"):
                from pathlib import Path

                Path(url[len("sqlite:///"):]).expanduser().parent.mkdir(parents=True, exist_ok=True)
            store = Store.from_url(url)
            store.migrate()
            _stores[url] = store
        return store

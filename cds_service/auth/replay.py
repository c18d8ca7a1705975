"""The JWT replay check: each ``(iss, jti)`` is accepted once until its token expires."""

from __future__ import annotations

import heapq
import threading
import time
from collections.abc import Callable
from typing import Protocol


class ReplayCache(Protocol):
    """Remembers ``(iss, jti)`` pairs until their token expires."""

    def seen_before(self, issuer: str, jti: str, expires_at: float) -> bool:
        """Return True if the pair is already recorded; otherwise record it and return False."""
        ...


class InMemoryReplayCache:
    """Thread-safe, per-process :class:`ReplayCache`; prunes expired entries.

    With several worker processes a ``jti`` replayed to another worker is not
    detected; a shared store can implement :class:`ReplayCache` instead
    (``audit.replay_cache.DatabaseReplayCache``). At most ``max_entries`` pairs
    are kept: beyond that the one expiring soonest is forgotten first.
    """

    def __init__(self, clock: Callable[[], float] = time.time, max_entries: int = 100_000) -> None:
        self._clock = clock
        self._max_entries = max_entries
        self._lock = threading.Lock()
        self._expiry: dict[tuple[str, str], float] = {}
        self._heap: list[tuple[float, tuple[str, str]]] = []

    def seen_before(self, issuer: str, jti: str, expires_at: float) -> bool:
        key = (issuer, jti)
        with self._lock:
            now = self._clock()
            self._prune(now)
            if key in self._expiry:
                return True
            self._expiry[key] = expires_at
            heapq.heappush(self._heap, (expires_at, key))
            while len(self._expiry) > self._max_entries:
                _, oldest = heapq.heappop(self._heap)
                self._expiry.pop(oldest, None)
            return False

    def __len__(self) -> int:
        with self._lock:
            self._prune(self._clock())
            return len(self._expiry)

    def _prune(self, now: float) -> None:
        while self._heap and self._heap[0][0] <= now:
            expires_at, key = heapq.heappop(self._heap)
            if self._expiry.get(key) == expires_at:
                del self._expiry[key]

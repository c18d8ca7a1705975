"""Keys fetched from a client's JWKS URL (``jku``): parsed, checked as public keys, size- and time-capped."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from cds_service.auth.trust import check_public_jwk
from cds_service.fhir import bounded_get

log = logging.getLogger(__name__)

MAX_JWKS_BYTES = 256 * 1024


@dataclass
class JwksEntry:
    keys: Mapping[str, Mapping[str, Any]]
    fetched_at: float  # last successful fetch (-inf if never)
    attempted_at: float  # last fetch attempt, successful or not


def parse_fetched_jwks(doc: Any, url: str) -> dict[str, Mapping[str, Any]]:
    """Usable public keys of a fetched JWKS by kid; unusable keys are skipped."""
    if not isinstance(doc, dict) or not isinstance(doc.get("keys"), list):
        raise ValueError("not a JWKS object")
    keys: dict[str, Mapping[str, Any]] = {}
    for jwk in doc["keys"]:
        try:
            kid = check_public_jwk(jwk)
        except ValueError as exc:
            log.info("JWKS %s: skipping key: %s", url, exc)
            continue
        keys.setdefault(kid, MappingProxyType(dict(jwk)))
    return keys


class HttpJwksFetcher:
    """Default ``fetch_jwks``: the service's one bounded GET (``fhir.bounded_get``), as for FHIR servers.

    No redirects, ``MAX_JWKS_BYTES`` at most (decoded), and the whole fetch, headers included, ends
    within ``timeout`` seconds: the GET runs in its own thread and is abandoned at the deadline (a
    server that trickles its headers then holds that one thread, never the caller). At most one fetch
    per URL is in flight: while an abandoned one still runs, the URL is not asked again. No lock is
    shared between URLs, so one slow issuer never delays another issuer's key refresh.
    """

    def __init__(self, timeout: float) -> None:
        self._timeout = timeout
        self._session = bounded_get.new_session(8)
        self._running: dict[str, threading.Thread] = {}
        self._guard = threading.Lock()

    def __call__(self, url: str) -> dict[str, Any]:
        deadline = time.monotonic() + self._timeout
        outcome: dict[str, Any] = {}

        def work() -> None:
            try:
                outcome["body"] = bounded_get.get_body(
                    self._session, url, headers={"Accept": "application/json"}, timeout=self._timeout,
                    deadline=deadline, max_bytes=MAX_JWKS_BYTES)
            except BaseException as exc:  # handed to the caller
                outcome["error"] = exc

        with self._guard:
            running = self._running.get(url)
            if running is not None and running.is_alive():
                raise TimeoutError("an earlier JWKS fetch from this URL is still running")
            thread = threading.Thread(target=work, name="jwks-fetch", daemon=True)
            self._running[url] = thread
        thread.start()
        thread.join(max(0.0, deadline - time.monotonic()) + 0.05)
        if thread.is_alive():
            raise TimeoutError("JWKS fetch timed out")
        if "error" in outcome:
            error = outcome["error"]
            if isinstance(error, bounded_get.Refused):
                raise ValueError(f"JWKS fetch {error.kind}: {error.detail}") from None
            raise error
        return json.loads(outcome["body"], parse_constant=_no_constant)


def _no_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


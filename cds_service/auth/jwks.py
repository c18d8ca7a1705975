"""Keys fetched from a client's JWKS URL (``jku``): parsed, checked as public keys, size-capped."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import requests

from cds_service.auth.trust import check_public_jwk

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
    """Default ``fetch_jwks``: GET with a short timeout, no redirects, size cap."""

    def __init__(self, timeout: float) -> None:
        self._timeout = timeout
        self._session = requests.Session()
        self._lock = threading.Lock()  # requests.Session is not documented thread-safe

    def __call__(self, url: str) -> dict[str, Any]:
        with self._lock:
            resp = self._session.get(
                url,
                timeout=self._timeout,
                allow_redirects=False,
                stream=True,
                headers={"Accept": "application/json"},
            )
            with resp:
                if resp.status_code != 200:
                    raise ValueError(f"HTTP {resp.status_code}")
                body = resp.raw.read(MAX_JWKS_BYTES + 1, decode_content=True)
        if len(body) > MAX_JWKS_BYTES:
            raise ValueError("JWKS response too large")
        return json.loads(body)

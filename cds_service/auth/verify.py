"""Authentication of CDS clients (EHRs, the CDS Hooks Sandbox) by their JWT.

CDS Hooks 2.0 (§ Security) makes every discovery, service and feedback call
carry ``Authorization: Bearer <JWT>``. The JWT is signed by the client with an
asymmetric key (ES384 or RS384 recommended; never ``none``, never HMAC) and
names the endpoint being invoked in ``aud``. This module verifies such tokens
against an allow-list of trusted clients. It has no Flask dependency: the app
passes the raw header value and the invoked endpoint path.

The trusted-clients file is described in ``trust.py``.

Verification order (``ClientAuthenticator.authenticate``):

1. ``Bearer`` scheme; header parsed unverified: ``alg`` on the issuer's
   allow-list (default ES384, RS384), ``kid`` present, ``typ`` ``JWT``, no
   ``crit``.
2. ``iss`` (read unverified) is a trusted client; ``jku``, if present, is on
   that client's allow-list *before* anything is fetched.
3. Key by ``kid``: the client's static keys first, then the JWKS at ``jku``
   (or, with no ``jku`` in the token, the client's configured jku URLs),
   cached per URL and refetched on an unknown ``kid`` at most once per
   ``jwks_refetch_interval`` seconds per URL (default 5 s: a forged ``kid``
   delays a real key rotation by at most that). Locks are per URL, and a
   request waits for another's fetch of the same URL at most the HTTP timeout.
   The key object built from a JWK is reused while that JWK is served (at most
   ``MAX_KEY_OBJECTS`` of them); a re-fetched JWKS has its keys built anew.
4. ``jwt.decode``: signature, ``aud`` == public base URL (or one of the client's
   ``audience_base_urls``) + endpoint path (string or array; base URLs come from
   configuration, never from the request),
   ``iss``, ``exp``/``nbf``/``iat`` with leeway, required claims.
5. Lifetime cap (``exp - iat`` <= 1 h), tenant allow-list, and finally the
   ``jti`` replay check (last, so rejected tokens do not burn a ``jti``).

Any failure raises :class:`Unauthorized`; its ``reason`` is for the log only
and never contains the token. Failures are logged at WARNING with the reason
and the (unverified) ``iss``, ``kid`` and ``jti``.

Time: ``exp``/``nbf``/``iat`` are checked by PyJWT against the wall clock; the
injected ``clock`` drives the JWKS cache/rate limit and the replay cache.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import jwt
from jwt.utils import base64url_decode

from cds_service.auth.jwks import HttpJwksFetcher
from cds_service.auth.jwks import JwksEntry
from cds_service.auth.jwks import parse_fetched_jwks
from cds_service.auth.replay import InMemoryReplayCache
from cds_service.auth.replay import ReplayCache
from cds_service.auth.trust import ALG_KEY_TYPES
from cds_service.auth.trust import TrustConfigError
from cds_service.auth.trust import TrustedClient
from cds_service.auth.trust import base_url

log = logging.getLogger(__name__)

MAX_TOKEN_LIFETIME = 3600  # seconds, exp - iat
MAX_TOKEN_LENGTH = 16 * 1024  # characters
MAX_KEY_OBJECTS = 256  # key objects built from JWKs, kept for reuse
_REQUIRED_CLAIMS = ["exp", "iat", "iss", "aud", "jti"]
_WHITESPACE = re.compile(r"\s")


class Unauthorized(Exception):
    """The request is not authenticated. ``reason`` is for the log only."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ClientAuthenticator:
    """Verifies CDS client JWTs against a set of :class:`TrustedClient`. Thread-safe."""

    #: Cached JWKS older than this are refreshed on use (keeping old keys if the fetch fails).
    jwks_max_age: float = 3600.0

    def __init__(
        self,
        trusted_clients: Mapping[str, TrustedClient],
        *,
        public_base_url: str,
        replay_cache: ReplayCache | None = None,
        fetch_jwks: Callable[[str], dict[str, Any]] | None = None,
        clock: Callable[[], float] = time.time,
        leeway: float = 60,
        jwks_refetch_interval: float = 5,
        http_timeout: float = 2.0,
    ) -> None:
        try:
            self._public_base_url = base_url(public_base_url, "public_base_url")
        except TrustConfigError as exc:
            raise ValueError(str(exc)) from None
        self._clients = dict(trusted_clients)
        self._clock = clock
        self._replay = replay_cache if replay_cache is not None else InMemoryReplayCache(clock)
        self._fetch = fetch_jwks if fetch_jwks is not None else HttpJwksFetcher(http_timeout)
        self._leeway = leeway
        self._refetch_interval = jwks_refetch_interval
        self._http_timeout = http_timeout
        self._jwks: dict[str, JwksEntry] = {}
        self._url_locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        # (issuer or JWKS URL, kid, alg) -> (the JWK, its key object); a re-fetched JWKS brings new JWK objects
        self._key_objects: dict[tuple[str, str, str], tuple[Mapping[str, Any], jwt.PyJWK]] = {}
        self._key_objects_guard = threading.Lock()
        self._all_algorithms = frozenset().union(*(c.algorithms for c in self._clients.values()))

    # ---- public

    def authenticate(self, authorization_header: str | None, endpoint_path: str) -> dict:
        """Verify the request's JWT for ``endpoint_path`` (e.g. ``/cds-services/x``).

        Returns the verified claims. Raises :class:`Unauthorized`.
        """
        if not isinstance(endpoint_path, str) or not endpoint_path.startswith("/") or any(
            c in endpoint_path for c in "?# \t\r\n"
        ):
            raise ValueError("endpoint_path must be a plain absolute path such as '/cds-services'")
        ctx: dict[str, Any] = {"iss": None, "kid": None, "jti": None, "aud": None, "expected_aud": None}
        token: str | None = None
        try:
            token = _bearer_token(authorization_header)
            return self._verify(token, endpoint_path, ctx)
        except Unauthorized as exc:
            reason = _scrub(exc.reason, token)
            log.warning(
                "CDS client JWT rejected: %s (iss=%r kid=%r jti=%r endpoint=%s aud=%r expected_aud=%r)",
                reason, ctx["iss"], ctx["kid"], ctx["jti"], endpoint_path, ctx["aud"], ctx["expected_aud"],
            )
            if reason != exc.reason:
                raise Unauthorized(reason) from None
            raise

    def fhir_servers_for(self, issuer: str) -> tuple[str, ...] | None:
        """The FHIR servers a (verified) issuer may name in ``fhirServer``; None = any."""
        client = self._clients.get(issuer)
        return client.fhir_servers if client is not None else ()

    # ---- steps

    def _verify(self, token: str, endpoint_path: str, ctx: dict[str, Any]) -> dict:
        header = self._check_header(token, ctx)
        client = self._client_for(_unverified_claims(token, header), ctx)
        alg = header["alg"]
        if alg not in client.algorithms:
            raise Unauthorized(f"alg {alg} not allowed for this issuer")
        jku = header.get("jku")
        if jku is not None and jku not in client.jku_urls:
            raise Unauthorized("jku not on the issuer's allow-list")
        source, jwk = self._resolve_key(client, header["kid"], jku)
        audiences = ctx["expected_aud"] = self._audiences(client, endpoint_path)
        claims = self._decode(token, self._key_object(source, header["kid"], jwk, alg), alg, client, audiences)
        ctx["jti"] = _short(claims.get("jti"))
        self._check_claims(claims, client)
        if self._replay.seen_before(client.issuer, claims["jti"], claims["exp"] + self._leeway):
            raise Unauthorized("jti replayed")
        return claims

    def _check_header(self, token: str, ctx: dict[str, Any]) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unauthorized("malformed token (header)") from None
        ctx["kid"] = _short(header.get("kid"))
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self._all_algorithms:
            raise Unauthorized(f"alg {_short(alg)!r} not allowed")
        if not isinstance(header.get("kid"), str) or not header["kid"]:
            raise Unauthorized("kid missing")
        typ = header.get("typ")
        if not isinstance(typ, str) or typ.upper() != "JWT":
            raise Unauthorized("typ is not JWT")
        if "crit" in header:
            raise Unauthorized("crit header not supported")
        if "jku" in header and not isinstance(header["jku"], str):
            raise Unauthorized("jku is not a string")
        return header

    def _client_for(self, unverified: dict[str, Any], ctx: dict[str, Any]) -> TrustedClient:
        iss = unverified.get("iss")
        ctx["iss"] = _short(iss)
        ctx["jti"] = _short(unverified.get("jti"))
        aud = unverified.get("aud")
        ctx["aud"] = [_short(a) for a in aud[:5]] if isinstance(aud, list) else _short(aud)
        client = self._clients.get(iss) if isinstance(iss, str) else None
        if client is None:
            raise Unauthorized("iss is not a trusted client")
        return client

    def _decode(
        self, token: str, key: jwt.PyJWK, alg: str, client: TrustedClient, audiences: list[str]
    ) -> dict[str, Any]:
        try:
            return jwt.decode(
                token,
                key,
                algorithms=[alg],
                audience=audiences,
                issuer=client.issuer,
                leeway=self._leeway,
                options={"require": _REQUIRED_CLAIMS, "enforce_minimum_key_length": True},
            )
        except jwt.DecodeError:
            raise Unauthorized("malformed token or bad signature") from None
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"{type(exc).__name__}: {exc}") from None

    def _audiences(self, client: TrustedClient, endpoint_path: str) -> list[str]:
        """The accepted ``aud`` values: the service's public base URL (always) and the client's own
        ``audience_base_urls``, each plus the endpoint path."""
        bases = dict.fromkeys((*client.audience_base_urls, self._public_base_url))
        return [base + endpoint_path for base in bases]

    def _check_claims(self, claims: dict[str, Any], client: TrustedClient) -> None:
        for name in ("exp", "iat", "nbf"):
            value = claims.get(name)
            if name in claims and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise Unauthorized(f"{name} is not a number")
        if not claims["jti"] or len(claims["jti"]) > 256:
            raise Unauthorized("jti empty or too long")
        if claims["exp"] - claims["iat"] > MAX_TOKEN_LIFETIME:
            raise Unauthorized(f"token lifetime exceeds {MAX_TOKEN_LIFETIME} s")
        tenant = claims.get("tenant")
        if tenant is not None and not isinstance(tenant, str):
            raise Unauthorized("tenant is not a string")
        if client.tenants is not None and tenant not in client.tenants:
            raise Unauthorized(f"tenant {_short(tenant)!r} not allowed for this issuer")

    # ---- keys

    def _resolve_key(self, client: TrustedClient, kid: str, jku: str | None) -> tuple[str, Mapping[str, Any]]:
        """(where the JWK came from: the issuer for its static keys, else the JWKS URL; the JWK)."""
        jwk = client.static_keys.get(kid)
        if jwk is not None:
            return client.issuer, jwk
        for url in (jku,) if jku else client.jku_urls:
            jwk = self._key_from_url(url, kid)
            if jwk is not None:
                return url, jwk
        raise Unauthorized("unknown kid")

    def _key_object(self, source: str, kid: str, jwk: Mapping[str, Any], alg: str) -> jwt.PyJWK:
        """The key object of ``jwk`` for ``alg``, built once and reused while the same JWK is served
        (a re-fetched JWKS has new JWK objects, so its keys are built anew). At most ``MAX_KEY_OBJECTS``."""
        slot = (source, kid, alg)
        cached = self._key_objects.get(slot)
        if cached is not None and cached[0] is jwk:
            return cached[1]
        key = _pyjwk_for(jwk, alg)
        with self._key_objects_guard:
            self._key_objects.pop(slot, None)
            if len(self._key_objects) >= MAX_KEY_OBJECTS:
                del self._key_objects[next(iter(self._key_objects))]  # the oldest
            self._key_objects[slot] = (jwk, key)
        return key

    def _key_from_url(self, url: str, kid: str) -> Mapping[str, Any] | None:
        lock = self._url_lock(url)
        if not lock.acquire(timeout=self._http_timeout + 0.5):  # another request is fetching this URL
            entry = self._jwks.get(url)
            return entry.keys.get(kid) if entry is not None else None
        try:
            entry = self._jwks.get(url)
            now = self._clock()
            wanted = (
                entry is None
                or kid not in entry.keys
                or now - entry.fetched_at >= self.jwks_max_age
            )
            if wanted and (entry is None or now - entry.attempted_at >= self._refetch_interval):
                entry = self._refresh(url, entry, now)
            return entry.keys.get(kid) if entry is not None else None
        finally:
            lock.release()

    def _refresh(self, url: str, old: JwksEntry | None, now: float) -> JwksEntry:
        try:
            keys = parse_fetched_jwks(self._fetch(url), url)
            entry = JwksEntry(MappingProxyType(keys), fetched_at=now, attempted_at=now)
        except Exception as exc:  # network, HTTP, JSON: all mean "no new keys"
            log.warning("JWKS fetch from %s failed: %s: %s", url, type(exc).__name__, exc)
            keys = old.keys if old is not None else MappingProxyType({})
            fetched = old.fetched_at if old is not None else float("-inf")
            entry = JwksEntry(keys, fetched_at=fetched, attempted_at=now)
        self._jwks[url] = entry
        return entry

    def _url_lock(self, url: str) -> threading.Lock:
        with self._locks_guard:
            return self._url_locks.setdefault(url, threading.Lock())


# --------------------------------------------------------------------------- helpers


def _bearer_token(authorization_header: str | None) -> str:
    if not authorization_header or not authorization_header.strip():
        raise Unauthorized("missing Authorization header")
    scheme, _, token = authorization_header.strip().partition(" ")
    if scheme.lower() != "bearer":
        raise Unauthorized("Authorization scheme is not Bearer")
    token = token.strip()
    if not token or _WHITESPACE.search(token):
        raise Unauthorized("malformed Bearer token")
    if len(token) > MAX_TOKEN_LENGTH:
        raise Unauthorized("token too long")
    return token


def _unverified_claims(token: str, header: Mapping[str, Any]) -> dict[str, Any]:
    """The payload before its signature is checked: what names the client and its key.

    ``jwt.get_unverified_header`` has already checked every segment's base64url; as PyJWT would, an
    unencoded payload (RFC 7797 ``b64``: false) and a payload that is not a JSON object are refused.
    """
    try:
        if header.get("b64", True) is False:
            raise ValueError("unencoded payload")
        claims = json.loads(base64url_decode(token.split(".")[1]))
    except (ValueError, RecursionError):
        raise Unauthorized("malformed token (payload)") from None
    if not isinstance(claims, dict):
        raise Unauthorized("malformed token (payload)")
    return claims


def _pyjwk_for(jwk: Mapping[str, Any], alg: str) -> jwt.PyJWK:
    """Bind a JWK to the (already allow-listed) header ``alg`` after checking they fit."""
    kty, crv = ALG_KEY_TYPES[alg]
    if jwk.get("alg", alg) != alg or jwk.get("kty") != kty or (crv and jwk.get("crv") != crv):
        raise Unauthorized(f"key does not match alg {alg}")
    try:
        return jwt.PyJWK(dict(jwk), algorithm=alg)
    except jwt.PyJWTError:
        raise Unauthorized("key unusable") from None


def _short(value: Any, limit: int = 128) -> Any:
    """Unverified values for the log: strings truncated, other types by type name."""
    if value is None:
        return None
    if isinstance(value, str):
        return value if len(value) <= limit else value[:limit] + "..."
    return f"<{type(value).__name__}>"


def _scrub(reason: str, token: str | None) -> str:
    """Belt and braces: make sure no part of the token ends up in a reason."""
    if not token:
        return reason
    for part in sorted({token, *token.split(".")}, key=len, reverse=True):
        if len(part) >= 8 and part in reason:
            reason = reason.replace(part, "[redacted]")
    return reason

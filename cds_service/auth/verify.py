"""Authentication of CDS clients (EHRs, the CDS Hooks Sandbox) by their JWT.

CDS Hooks 2.0 (§ Security) makes every discovery, service and feedback call
carry ``Authorization: Bearer <JWT>``. The JWT is signed by the client with an
asymmetric key (ES384 or RS384 recommended; never ``none``, never HMAC) and
names the endpoint being invoked in ``aud``. This module verifies such tokens
against an allow-list of trusted clients. It has no Flask dependency: the app
passes the raw header value and the invoked endpoint path.

Trusted-clients file (JSON; any key starting with ``_`` is ignored)::

    {
      "_comment": "free text",
      "clients": {
        "<iss>": {
          "jku": ["https://ehr.example.org/jwks.json"],       # allowed jku URLs
          "jwks": {"keys": [...]},                            # static JWKS, or
          "jwks_file": "keys/ehr-jwks.json",                  # path (relative to this file)
          "audience_base_urls": ["https://cds.example.org"],  # default: public base URL
          "tenants": ["tenant-a"],                            # optional allow-list
          "extra_algorithms": ["RS256"]                       # optional: ES256 / RS256
        }
      }
    }

At least one of ``jku``, ``jwks`` or ``jwks_file`` is required per issuer.

Verification order (``ClientAuthenticator.authenticate``):

1. ``Bearer`` scheme; header parsed unverified: ``alg`` on the issuer's
   allow-list (default ES384, RS384), ``kid`` present, ``typ`` ``JWT``, no
   ``crit``.
2. ``iss`` (read unverified) is a trusted client; ``jku``, if present, is on
   that client's allow-list *before* anything is fetched.
3. Key by ``kid``: the client's static keys first, then the JWKS at ``jku``
   (or, with no ``jku`` in the token, the client's configured jku URLs),
   cached per URL and refetched on an unknown ``kid`` at most once per
   ``jwks_refetch_interval`` seconds per URL.
4. ``jwt.decode``: signature, ``aud`` == public base URL + endpoint path (string
   or array; base URLs come from configuration, never from the request),
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

import heapq
import ipaddress
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from types import MappingProxyType
from typing import Any
from typing import Protocol
from urllib.parse import urlsplit

import jwt
import requests

__all__ = [
    "ClientAuthenticator",
    "DEFAULT_ALGORITHMS",
    "InMemoryReplayCache",
    "ReplayCache",
    "TrustConfigError",
    "TrustedClient",
    "Unauthorized",
    "load_trusted_clients",
]

log = logging.getLogger(__name__)

DEFAULT_ALGORITHMS: frozenset[str] = frozenset({"ES384", "RS384"})
EXTRA_ALGORITHMS: frozenset[str] = frozenset({"ES256", "RS256"})
SUPPORTED_ALGORITHMS: frozenset[str] = DEFAULT_ALGORITHMS | EXTRA_ALGORITHMS

#: alg -> (JWK kty, required EC curve or None)
_ALG_KEY_TYPES: Mapping[str, tuple[str, str | None]] = {
    "ES256": ("EC", "P-256"),
    "ES384": ("EC", "P-384"),
    "RS256": ("RSA", None),
    "RS384": ("RSA", None),
}
_PRIVATE_JWK_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})

MAX_TOKEN_LIFETIME = 3600  # seconds, exp - iat
MAX_TOKEN_LENGTH = 16 * 1024  # characters
MAX_JWKS_BYTES = 256 * 1024
_REQUIRED_CLAIMS = ["exp", "iat", "iss", "aud", "jti"]
_CLIENT_KEYS = frozenset(
    {"jku", "jwks", "jwks_file", "audience_base_urls", "tenants", "extra_algorithms"}
)


# --------------------------------------------------------------------------- errors


class Unauthorized(Exception):
    """The request is not authenticated. ``reason`` is for the log only."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TrustConfigError(Exception):
    """The trusted-clients configuration is invalid."""


# --------------------------------------------------------------------------- config


@dataclass(frozen=True)
class TrustedClient:
    """One trusted CDS client, identified by its ``iss``.

    ``static_keys`` maps ``kid`` to a public JWK (dict). An empty
    ``audience_base_urls`` means "the service's public base URL". ``tenants``
    of ``None`` accepts any (or no) tenant.
    """

    issuer: str
    jku_urls: tuple[str, ...] = ()
    static_keys: Mapping[str, Mapping[str, Any]] = field(
        default_factory=lambda: MappingProxyType({}), hash=False
    )
    audience_base_urls: tuple[str, ...] = ()
    tenants: frozenset[str] | None = None
    algorithms: frozenset[str] = DEFAULT_ALGORITHMS

    def __post_init__(self) -> None:
        if not self.jku_urls and not self.static_keys:
            raise TrustConfigError(
                f"issuer {self.issuer!r}: no key source (need 'jku', 'jwks' or 'jwks_file')"
            )
        bad = set(self.algorithms) - SUPPORTED_ALGORITHMS
        if bad:
            raise TrustConfigError(f"issuer {self.issuer!r}: unsupported algorithms {sorted(bad)}")


def load_trusted_clients(path: str | os.PathLike[str]) -> dict[str, TrustedClient]:
    """Load and validate a trusted-clients file; returns clients keyed by ``iss``.

    Raises :class:`TrustConfigError` naming the file, issuer and key at fault.
    """
    path = Path(path)
    doc = _read_json(path, what="trusted-clients file")
    if not isinstance(doc, dict):
        raise TrustConfigError(f"{path}: top level must be a JSON object")
    unknown = [k for k in _public_keys(doc) if k != "clients"]
    if unknown:
        raise TrustConfigError(f"{path}: unknown top-level key {unknown[0]!r}")
    clients = doc.get("clients")
    if not isinstance(clients, dict) or not _public_keys(clients):
        raise TrustConfigError(f"{path}: 'clients' must be a non-empty object keyed by iss")
    return {
        iss: _parse_client(iss, clients[iss], base_dir=path.parent, source=path)
        for iss in _public_keys(clients)
    }


def _public_keys(obj: dict[str, Any]) -> list[str]:
    return [k for k in obj if not k.startswith("_")]


def _read_json(path: Path, *, what: str) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TrustConfigError(f"cannot read {what} {str(path)!r}: {exc.strerror or exc}") from None
    try:
        return json.loads(text, object_pairs_hook=_no_duplicate_keys)
    except TrustConfigError as exc:
        raise TrustConfigError(f"{what} {str(path)!r}: {exc}") from None
    except ValueError as exc:
        raise TrustConfigError(f"{what} {str(path)!r} is not valid JSON: {exc}") from None


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise TrustConfigError(f"duplicate key {key!r}")
        out[key] = value
    return out


def _parse_client(iss: str, entry: Any, *, base_dir: Path, source: Path) -> TrustedClient:
    where = f"{source}: issuer {iss!r}"
    if not iss.strip():
        raise TrustConfigError(f"{source}: empty issuer key in 'clients'")
    if not isinstance(entry, dict):
        raise TrustConfigError(f"{where}: entry must be an object")
    for key in _public_keys(entry):
        if key not in _CLIENT_KEYS:
            raise TrustConfigError(f"{where}: unknown key {key!r}")
    if "jwks" in entry and "jwks_file" in entry:
        raise TrustConfigError(f"{where}: use either 'jwks' or 'jwks_file', not both")

    jku_urls = tuple(_jku_url(u, where) for u in _str_list(entry, "jku", where))
    static_keys = _static_keys(entry, base_dir, where)
    if not jku_urls and not static_keys:
        raise TrustConfigError(f"{where}: no key source (need 'jku', 'jwks' or 'jwks_file')")
    audiences = tuple(
        _base_url(u, f"{where}: 'audience_base_urls'")
        for u in _str_list(entry, "audience_base_urls", where)
    )
    tenants = _str_list(entry, "tenants", where) if "tenants" in entry else None
    extra = _str_list(entry, "extra_algorithms", where)
    bad = [a for a in extra if a not in EXTRA_ALGORITHMS]
    if bad:
        raise TrustConfigError(
            f"{where}: 'extra_algorithms' value {bad[0]!r} not allowed "
            f"(allowed: {sorted(EXTRA_ALGORITHMS)})"
        )
    return TrustedClient(
        issuer=iss,
        jku_urls=jku_urls,
        static_keys=static_keys,
        audience_base_urls=audiences,
        tenants=frozenset(tenants) if tenants is not None else None,
        algorithms=DEFAULT_ALGORITHMS | frozenset(extra),
    )


def _str_list(entry: dict[str, Any], key: str, where: str) -> list[str]:
    """``entry[key]`` as a non-empty list of non-empty strings ([] when absent)."""
    if key not in entry:
        return []
    value = entry[key]
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(v, str) and v.strip() for v in value)
    ):
        raise TrustConfigError(f"{where}: {key!r} must be a non-empty list of non-empty strings")
    return value


def _jku_url(url: str, where: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme == "https" and host:
        return url
    if parts.scheme == "http" and _is_loopback(host):
        return url
    raise TrustConfigError(
        f"{where}: 'jku' URL {url!r} must be https (plain http only for loopback hosts)"
    )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _base_url(url: str, where: str) -> str:
    """Validate an http(s) base URL (no query/fragment); strip a trailing slash."""
    parts = urlsplit(url) if isinstance(url, str) else None
    if (
        parts is None
        or parts.scheme not in ("http", "https")
        or not parts.netloc
        or parts.query
        or parts.fragment
    ):
        raise TrustConfigError(f"{where}: {url!r} is not an http(s) base URL")
    return url.rstrip("/")


def _static_keys(entry: dict[str, Any], base_dir: Path, where: str) -> Mapping[str, Mapping]:
    if "jwks" in entry:
        doc, label = entry["jwks"], "'jwks'"
    elif "jwks_file" in entry:
        ref = entry["jwks_file"]
        if not isinstance(ref, str) or not ref.strip():
            raise TrustConfigError(f"{where}: 'jwks_file' must be a path string")
        file = Path(ref) if Path(ref).is_absolute() else base_dir / ref
        doc, label = _read_json(file, what=f"JWKS file for {where}"), f"'jwks_file' {ref!r}"
    else:
        return MappingProxyType({})
    if not isinstance(doc, dict) or not isinstance(doc.get("keys"), list) or not doc["keys"]:
        raise TrustConfigError(f"{where}: {label} must be a JWKS object with a non-empty 'keys' list")
    keys: dict[str, Mapping[str, Any]] = {}
    for jwk in doc["keys"]:
        try:
            kid = _check_public_jwk(jwk)
        except ValueError as exc:
            raise TrustConfigError(f"{where}: {label}: {exc}") from None
        if kid in keys:
            raise TrustConfigError(f"{where}: {label}: duplicate kid {kid!r}")
        keys[kid] = MappingProxyType(dict(jwk))
    return MappingProxyType(keys)


def _check_public_jwk(jwk: Any) -> str:
    """Validate one JWK as a usable public signing key; return its ``kid``."""
    if not isinstance(jwk, dict):
        raise ValueError("key is not an object")
    kid = jwk.get("kid")
    if not isinstance(kid, str) or not kid:
        raise ValueError("key without a 'kid'")
    if jwk.get("kty") not in ("EC", "RSA"):
        raise ValueError(f"key {kid!r}: 'kty' must be EC or RSA")
    if _PRIVATE_JWK_MEMBERS & jwk.keys():
        raise ValueError(f"key {kid!r} contains private key material")
    if jwk.get("use", "sig") != "sig":
        raise ValueError(f"key {kid!r}: 'use' is not 'sig'")
    try:
        jwt.PyJWK(jwk)
    except jwt.PyJWTError as exc:
        raise ValueError(f"key {kid!r} is not a valid JWK ({exc})") from None
    return kid


# --------------------------------------------------------------------------- replay


class ReplayCache(Protocol):
    """Remembers ``(iss, jti)`` pairs until their token expires."""

    def seen_before(self, issuer: str, jti: str, expires_at: float) -> bool:
        """Return True if the pair is already recorded; otherwise record it and return False."""
        ...


class InMemoryReplayCache:
    """Thread-safe, per-process :class:`ReplayCache`; prunes expired entries.

    With several worker processes a ``jti`` replayed to another worker is not
    detected; a shared store can implement :class:`ReplayCache` instead.
    """

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
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


# --------------------------------------------------------------------------- JWKS cache


@dataclass
class _JwksEntry:
    keys: Mapping[str, Mapping[str, Any]]
    fetched_at: float  # last successful fetch (-inf if never)
    attempted_at: float  # last fetch attempt, successful or not


def _parse_fetched_jwks(doc: Any, url: str) -> dict[str, Mapping[str, Any]]:
    """Usable public keys of a fetched JWKS by kid; unusable keys are skipped."""
    if not isinstance(doc, dict) or not isinstance(doc.get("keys"), list):
        raise ValueError("not a JWKS object")
    keys: dict[str, Mapping[str, Any]] = {}
    for jwk in doc["keys"]:
        try:
            kid = _check_public_jwk(jwk)
        except ValueError as exc:
            log.info("JWKS %s: skipping key: %s", url, exc)
            continue
        keys.setdefault(kid, MappingProxyType(dict(jwk)))
    return keys


class _HttpJwksFetcher:
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


# --------------------------------------------------------------------------- authenticator


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
        jwks_refetch_interval: float = 60,
        http_timeout: float = 2.0,
    ) -> None:
        try:
            self._public_base_url = _base_url(public_base_url, "public_base_url")
        except TrustConfigError as exc:
            raise ValueError(str(exc)) from None
        self._clients = dict(trusted_clients)
        self._clock = clock
        self._replay = replay_cache if replay_cache is not None else InMemoryReplayCache(clock)
        self._fetch = fetch_jwks if fetch_jwks is not None else _HttpJwksFetcher(http_timeout)
        self._leeway = leeway
        self._refetch_interval = jwks_refetch_interval
        self._jwks: dict[str, _JwksEntry] = {}
        self._url_locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()
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
        ctx: dict[str, Any] = {"iss": None, "kid": None, "jti": None}
        token: str | None = None
        try:
            token = _bearer_token(authorization_header)
            return self._verify(token, endpoint_path, ctx)
        except Unauthorized as exc:
            reason = _scrub(exc.reason, token)
            log.warning(
                "CDS client JWT rejected: %s (iss=%r kid=%r jti=%r endpoint=%s)",
                reason, ctx["iss"], ctx["kid"], ctx["jti"], endpoint_path,
            )
            if reason != exc.reason:
                raise Unauthorized(reason) from None
            raise

    # ---- steps

    def _verify(self, token: str, endpoint_path: str, ctx: dict[str, Any]) -> dict:
        header = self._check_header(token, ctx)
        client = self._client_for(token, ctx)
        alg = header["alg"]
        if alg not in client.algorithms:
            raise Unauthorized(f"alg {alg} not allowed for this issuer")
        jku = header.get("jku")
        if jku is not None and jku not in client.jku_urls:
            raise Unauthorized("jku not on the issuer's allow-list")
        jwk = self._resolve_key(client, header["kid"], jku)
        claims = self._decode(token, _pyjwk_for(jwk, alg), alg, client, endpoint_path)
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

    def _client_for(self, token: str, ctx: dict[str, Any]) -> TrustedClient:
        try:
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise Unauthorized("malformed token (payload)") from None
        iss = unverified.get("iss")
        ctx["iss"] = _short(iss)
        ctx["jti"] = _short(unverified.get("jti"))
        client = self._clients.get(iss) if isinstance(iss, str) else None
        if client is None:
            raise Unauthorized("iss is not a trusted client")
        return client

    def _decode(
        self, token: str, key: jwt.PyJWK, alg: str, client: TrustedClient, endpoint_path: str
    ) -> dict[str, Any]:
        bases = client.audience_base_urls or (self._public_base_url,)
        try:
            return jwt.decode(
                token,
                key,
                algorithms=[alg],
                audience=[base + endpoint_path for base in bases],
                issuer=client.issuer,
                leeway=self._leeway,
                options={"require": _REQUIRED_CLAIMS, "enforce_minimum_key_length": True},
            )
        except jwt.DecodeError:
            raise Unauthorized("malformed token or bad signature") from None
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"{type(exc).__name__}: {exc}") from None

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

    def _resolve_key(self, client: TrustedClient, kid: str, jku: str | None) -> Mapping[str, Any]:
        jwk = client.static_keys.get(kid)
        if jwk is not None:
            return jwk
        for url in (jku,) if jku else client.jku_urls:
            jwk = self._key_from_url(url, kid)
            if jwk is not None:
                return jwk
        raise Unauthorized("unknown kid")

    def _key_from_url(self, url: str, kid: str) -> Mapping[str, Any] | None:
        with self._url_lock(url):
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

    def _refresh(self, url: str, old: _JwksEntry | None, now: float) -> _JwksEntry:
        try:
            keys = _parse_fetched_jwks(self._fetch(url), url)
            entry = _JwksEntry(MappingProxyType(keys), fetched_at=now, attempted_at=now)
        except Exception as exc:  # network, HTTP, JSON: all mean "no new keys"
            log.warning("JWKS fetch from %s failed: %s: %s", url, type(exc).__name__, exc)
            keys = old.keys if old is not None else MappingProxyType({})
            fetched = old.fetched_at if old is not None else float("-inf")
            entry = _JwksEntry(keys, fetched_at=fetched, attempted_at=now)
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
    if not token or any(c.isspace() for c in token):
        raise Unauthorized("malformed Bearer token")
    if len(token) > MAX_TOKEN_LENGTH:
        raise Unauthorized("token too long")
    return token


def _pyjwk_for(jwk: Mapping[str, Any], alg: str) -> jwt.PyJWK:
    """Bind a JWK to the (already allow-listed) header ``alg`` after checking they fit."""
    kty, crv = _ALG_KEY_TYPES[alg]
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

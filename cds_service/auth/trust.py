"""The trusted-clients file: which EHRs (by ``iss``) may call the service, with which keys.

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
          "extra_algorithms": ["RS256"],                      # optional: ES256 / RS256
          "fhir_servers": ["https://ehr.example.org"]         # optional: fhirServer origins it may name
        }
      }
    }

At least one of ``jku``, ``jwks`` or ``jwks_file`` is required per issuer. ``fhir_servers``
lists the FHIR server origins (scheme, host, port; a path is ignored) the issuer's requests may
name in ``fhirServer``: any other is never contacted. Without it, any http(s) server may be named.
"""

from __future__ import annotations

import ipaddress
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

import jwt

DEFAULT_ALGORITHMS: frozenset[str] = frozenset({"ES384", "RS384"})
EXTRA_ALGORITHMS: frozenset[str] = frozenset({"ES256", "RS256"})
SUPPORTED_ALGORITHMS: frozenset[str] = DEFAULT_ALGORITHMS | EXTRA_ALGORITHMS

#: alg -> (JWK kty, required EC curve or None)
ALG_KEY_TYPES: Mapping[str, tuple[str, str | None]] = {
    "ES256": ("EC", "P-256"),
    "ES384": ("EC", "P-384"),
    "RS256": ("RSA", None),
    "RS384": ("RSA", None),
}
_PRIVATE_JWK_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
_CLIENT_KEYS = frozenset(
    {"jku", "jwks", "jwks_file", "audience_base_urls", "tenants", "extra_algorithms", "fhir_servers"}
)


class TrustConfigError(Exception):
    """The trusted-clients configuration is invalid."""


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
    fhir_servers: tuple[str, ...] | None = None       # None: any fhirServer may be named

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
        base_url(u, f"{where}: 'audience_base_urls'")
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
    fhir_servers = (tuple(base_url(u, f"{where}: 'fhir_servers'") for u in _str_list(entry, "fhir_servers", where))
                    if "fhir_servers" in entry else None)
    return TrustedClient(
        issuer=iss,
        fhir_servers=fhir_servers,
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


def base_url(url: str, where: str) -> str:
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
            kid = check_public_jwk(jwk)
        except ValueError as exc:
            raise TrustConfigError(f"{where}: {label}: {exc}") from None
        if kid in keys:
            raise TrustConfigError(f"{where}: {label}: duplicate kid {kid!r}")
        keys[kid] = MappingProxyType(dict(jwk))
    return MappingProxyType(keys)


def check_public_jwk(jwk: Any) -> str:
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

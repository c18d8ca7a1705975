"""Tests for cds_service.auth.verify: CDS client JWT verification.

Tokens are signed with keys generated here (EC P-384, RSA 2048) and, where a
jku is involved, the JWKS is served by a real loopback HTTP server that counts
the requests it receives per path. An autouse fixture checks that no token
text ever reaches a log record.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler
from http.server import ThreadingHTTPServer
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric import rsa

from cds_service.auth import ClientAuthenticator
from cds_service.auth import InMemoryReplayCache
from cds_service.auth import TrustConfigError
from cds_service.auth import TrustedClient
from cds_service.auth import Unauthorized
from cds_service.auth import load_trusted_clients
from cds_service.auth import verify

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
BASE = "https://cds.example.org"
SERVICE_PATH = "/cds-services/milnacipran-order-sign"
SERVICE_AUD = BASE + SERVICE_PATH
EC_ISS = "https://ehr.example.org"
EPIC_ISS = "https://fhir.examplehospital.org/interconnect-fhir-oauth/api/FHIR/R4"
EPIC_AUD_BASE = "https://cds.examplehospital.org"
SANDBOX_ISS = "https://sandbox.cds-hooks.org"
SANDBOX_KID = "44823f3d-0b01-4a6c-a80e-b9d3e8a7226f"
EC_JWKS_PATH = "/ec/jwks.json"
EPIC_JWKS_PATH = "/epic/2019/Security/Open/PublicKeys/530005/OIDC"
EVIL_JWKS_PATH = "/evil/jwks.json"


# --------------------------------------------------------------------------- keys


class Key:
    def __init__(self, private, alg: str, kid: str) -> None:
        self.private, self.alg, self.kid = private, alg, kid

    def jwk(self, *, with_alg: bool = True) -> dict:
        algo = jwt.algorithms.ECAlgorithm if self.alg.startswith("ES") else jwt.algorithms.RSAAlgorithm
        jwk = algo.to_jwk(self.private.public_key(), as_dict=True)
        jwk.update(kid=self.kid, use="sig")
        if with_alg:
            jwk["alg"] = self.alg
        return jwk

    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


def ec_key(kid: str) -> Key:
    return Key(ec.generate_private_key(ec.SECP384R1()), "ES384", kid)


@pytest.fixture(scope="module")
def ec1() -> Key:
    return ec_key("ec-key-1")


@pytest.fixture(scope="module")
def rsa1() -> Key:
    # Epic-style base64-like kid
    return Key(rsa.generate_private_key(public_exponent=65537, key_size=2048), "RS384", "ZXBpYy1rZXk+MQ==")


# --------------------------------------------------------------------------- JWKS server


class JwksServer:
    """Loopback HTTP server: ``routes[path] = dict`` is served as JSON; counts requests per path."""

    def __init__(self) -> None:
        self.routes: dict[str, dict] = {}
        self.hits: dict[str, int] = {}
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                owner.hits[self.path] = owner.hits.get(self.path, 0) + 1
                doc = owner.routes.get(self.path)
                body = json.dumps(doc).encode() if doc is not None else b"{}"
                self.send_response(200 if doc is not None else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def total_hits(self) -> int:
        return sum(self.hits.values())

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(ec1, rsa1):
    srv = JwksServer()
    srv.routes[EC_JWKS_PATH] = {"keys": [ec1.jwk()]}
    # Epic's JWKS may omit "alg": the RS384 header alg must still work.
    srv.routes[EPIC_JWKS_PATH] = {"keys": [rsa1.jwk(with_alg=False)]}
    yield srv
    srv.close()


class FakeClock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


# --------------------------------------------------------------------------- config + authenticator


@pytest.fixture
def trust_file(tmp_path, server, ec1):
    config = {
        "_comment": "test configuration",
        "clients": {
            EC_ISS: {
                "_comment": "EC client fetching keys from the loopback JWKS server",
                "jku": [server.url(EC_JWKS_PATH)],
            },
            EPIC_ISS: {
                "jku": [server.url(EPIC_JWKS_PATH)],
                "audience_base_urls": [EPIC_AUD_BASE],
                "tenants": ["examplehospital-prod"],
            },
            "https://static.example.org": {"jwks": {"keys": [ec1.jwk()]}},
        },
    }
    path = tmp_path / "trusted-clients.json"
    path.write_text(json.dumps(config))
    return path


@pytest.fixture
def auth(trust_file, clock) -> ClientAuthenticator:
    return ClientAuthenticator(
        load_trusted_clients(trust_file), public_base_url=BASE, clock=clock, http_timeout=1.0
    )


# --------------------------------------------------------------------------- tokens + log guard

_ISSUED: list[str] = []


def make_token(key: Key, *, iss=EC_ISS, aud=SERVICE_AUD, header_extra=None, drop=(), **claims) -> str:
    now = int(time.time())
    payload = {"iss": iss, "aud": aud, "iat": now, "exp": now + 300, "jti": str(uuid.uuid4())}
    payload.update(claims)
    for name in drop:
        payload.pop(name, None)
    headers = {"kid": key.kid, "typ": "JWT", **(header_extra or {})}
    token = jwt.encode(payload, key.private, algorithm=key.alg, headers=headers)
    _ISSUED.append(token)
    return token


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned_token(header: dict, payload: dict, signature: bytes = b"") -> str:
    token = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(payload).encode())}.{b64url(signature)}"
    _ISSUED.append(token)
    return token


def default_payload(**claims) -> dict:
    now = int(time.time())
    return {"iss": EC_ISS, "aud": SERVICE_AUD, "iat": now, "exp": now + 300, "jti": str(uuid.uuid4()), **claims}


def secret_parts(token: str) -> list[str]:
    """The token and its payload/signature segments (the header segment is not secret)."""
    parts = token.split(".")
    return [p for p in [token, *parts[1:]] if len(p) >= 8]


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(autouse=True)
def no_token_in_logs(caplog):
    """Collect every log record of the test (independently of caplog.clear()) and check for token text."""
    caplog.set_level(logging.DEBUG)
    collector = _Collect()
    root = logging.getLogger()
    root.addHandler(collector)
    _ISSUED.clear()
    yield
    root.removeHandler(collector)
    for record in collector.records:
        text = record.getMessage() + repr(record.args) + (record.exc_text or "")
        for token in _ISSUED:
            for part in secret_parts(token):
                assert part not in text, f"token text leaked into log: {record.getMessage()!r}"


def accept(auth: ClientAuthenticator, token: str, path: str = SERVICE_PATH) -> dict:
    return auth.authenticate(f"Bearer {token}", path)


def reject(auth: ClientAuthenticator, header: str | None, caplog, path: str = SERVICE_PATH) -> str:
    caplog.clear()
    with pytest.raises(Unauthorized) as info:
        auth.authenticate(header, path)
    reason = info.value.reason
    assert reason and str(info.value) == reason
    credentials = (header or "").strip().partition(" ")[2]
    for secret in secret_parts(credentials):
        assert secret not in reason
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and r.name == "cds_service.auth.verify"]
    assert warnings and reason in warnings[-1].getMessage()
    return reason


# --------------------------------------------------------------------------- success paths


def test_valid_es384_via_jku(auth, server, ec1, caplog):
    token = make_token(ec1, header_extra={"jku": server.url(EC_JWKS_PATH)})
    claims = accept(auth, token)
    assert claims["iss"] == EC_ISS and claims["aud"] == SERVICE_AUD
    assert server.hits == {EC_JWKS_PATH: 1}
    # cached: a second (new-jti) token does not fetch again
    accept(auth, make_token(ec1, header_extra={"jku": server.url(EC_JWKS_PATH)}))
    assert server.hits == {EC_JWKS_PATH: 1}
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_valid_rs384_epic_style(auth, server, rsa1):
    now = int(time.time())
    token = make_token(
        rsa1,
        iss=EPIC_ISS,
        aud=EPIC_AUD_BASE + SERVICE_PATH,
        iat=now,
        nbf=now - 300,
        exp=now + 900,
        sub="cds-client-id-123",
        tenant="examplehospital-prod",
        header_extra={"jku": server.url(EPIC_JWKS_PATH)},
    )
    claims = accept(auth, token)
    assert claims["sub"] == "cds-client-id-123" and claims["tenant"] == "examplehospital-prod"
    assert server.hits == {EPIC_JWKS_PATH: 1}


def test_no_jku_uses_static_keys_without_fetching(auth, server, ec1):
    accept(auth, make_token(ec1, iss="https://static.example.org"))
    assert server.total_hits() == 0


def test_no_jku_falls_back_to_configured_jku(auth, server, ec1):
    accept(auth, make_token(ec1))
    assert server.hits == {EC_JWKS_PATH: 1}


def test_aud_array_containing_endpoint_is_accepted(auth, ec1):
    accept(auth, make_token(ec1, aud=["https://other.example.org/x", SERVICE_AUD]))


def test_discovery_and_feedback_audiences(auth, ec1, caplog):
    accept(auth, make_token(ec1, aud=BASE + "/cds-services"), "/cds-services")
    accept(auth, make_token(ec1, aud=SERVICE_AUD + "/feedback"), SERVICE_PATH + "/feedback")
    # a token for the service endpoint is not valid for its feedback endpoint
    reject(auth, f"Bearer {make_token(ec1)}", caplog, SERVICE_PATH + "/feedback")


# --------------------------------------------------------------------------- header / algorithm attacks


def test_alg_none_rejected(auth, server, ec1, caplog):
    token = unsigned_token({"alg": "none", "kid": ec1.kid, "typ": "JWT"}, default_payload())
    assert "alg" in reject(auth, f"Bearer {token}", caplog)
    assert server.total_hits() == 0


def test_hs256_key_confusion_rejected(trust_file, clock, server, ec1, caplog):
    # Static-key client: the attacker knows the public key and uses its PEM as an HMAC secret.
    auth = ClientAuthenticator(load_trusted_clients(trust_file), public_base_url=BASE, clock=clock)
    header = {"alg": "HS256", "kid": ec1.kid, "typ": "JWT"}
    payload = default_payload(iss="https://static.example.org")
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(payload).encode())}"
    sig = hmac.new(ec1.public_pem(), signing_input.encode(), hashlib.sha256).digest()
    token = signing_input + "." + b64url(sig)
    _ISSUED.append(token)
    assert "alg" in reject(auth, f"Bearer {token}", caplog)
    assert server.total_hits() == 0


def test_es256_not_allowed_by_default_but_allowed_as_extra(tmp_path, clock):
    key = Key(ec.generate_private_key(ec.SECP256R1()), "ES256", "p256")
    clients = {"jwks": {"keys": [key.jwk()]}}
    for extra, ok in ((None, False), (["ES256"], True)):
        entry = dict(clients, **({"extra_algorithms": extra} if extra else {}))
        path = tmp_path / "tc.json"
        path.write_text(json.dumps({"clients": {EC_ISS: entry}}))
        auth = ClientAuthenticator(load_trusted_clients(path), public_base_url=BASE, clock=clock)
        token = make_token(key)
        if ok:
            accept(auth, token)
        else:
            with pytest.raises(Unauthorized):
                accept(auth, token)


def test_header_requires_kid_and_typ(auth, ec1, caplog):
    no_kid = jwt.encode(default_payload(), ec1.private, algorithm="ES384", headers={"typ": "JWT"})
    bad_typ = jwt.encode(default_payload(), ec1.private, algorithm="ES384", headers={"kid": ec1.kid, "typ": "at+jwt"})
    _ISSUED.extend([no_kid, bad_typ])
    assert "kid" in reject(auth, f"Bearer {no_kid}", caplog)
    assert "typ" in reject(auth, f"Bearer {bad_typ}", caplog)


def test_key_type_must_match_alg(auth, ec1, caplog):
    # RS384 header but the kid names an EC key
    rsa_other = Key(rsa.generate_private_key(public_exponent=65537, key_size=2048), "RS384", ec1.kid)
    reject(auth, f"Bearer {make_token(rsa_other, iss='https://static.example.org')}", caplog)


# --------------------------------------------------------------------------- claims


def test_wrong_aud_rejected(auth, ec1, caplog):
    reject(auth, f"Bearer {make_token(ec1, aud='https://evil.example.org' + SERVICE_PATH)}", caplog)
    reject(auth, f"Bearer {make_token(ec1, aud=BASE + '/cds-services')}", caplog)


def test_expired_rejected(auth, ec1, caplog):
    now = int(time.time())
    reason = reject(auth, f"Bearer {make_token(ec1, iat=now - 600, exp=now - 120)}", caplog)
    assert "expired" in reason


def test_expiry_within_leeway_accepted(auth, ec1):
    now = int(time.time())
    accept(auth, make_token(ec1, iat=now - 300, exp=now - 30))


def test_nbf_in_future_rejected(auth, ec1, caplog):
    now = int(time.time())
    reason = reject(auth, f"Bearer {make_token(ec1, nbf=now + 300, exp=now + 600)}", caplog)
    assert "nbf" in reason


def test_missing_jti_rejected(auth, ec1, caplog):
    assert "jti" in reject(auth, f"Bearer {make_token(ec1, drop=('jti',))}", caplog)


@pytest.mark.parametrize("claim", ["iat", "exp", "aud", "iss"])
def test_missing_required_claim_rejected(auth, ec1, caplog, claim):
    reject(auth, f"Bearer {make_token(ec1, drop=(claim,))}", caplog)


def test_replayed_jti_rejected(auth, ec1, caplog):
    token = make_token(ec1)
    accept(auth, token)
    assert "replay" in reject(auth, f"Bearer {token}", caplog)


def test_lifetime_over_one_hour_rejected(auth, ec1, caplog):
    now = int(time.time())
    assert "lifetime" in reject(auth, f"Bearer {make_token(ec1, iat=now, exp=now + 7200)}", caplog)


def test_unknown_iss_rejected(auth, server, ec1, caplog):
    token = make_token(ec1, iss="https://unknown.example.org", header_extra={"jku": server.url(EC_JWKS_PATH)})
    assert "iss" in reject(auth, f"Bearer {token}", caplog)
    assert server.total_hits() == 0


def test_tenant_not_allowed_rejected(auth, server, rsa1, caplog):
    token = make_token(
        rsa1, iss=EPIC_ISS, aud=EPIC_AUD_BASE + SERVICE_PATH, tenant="other-hospital",
        header_extra={"jku": server.url(EPIC_JWKS_PATH)},
    )
    assert "tenant" in reject(auth, f"Bearer {token}", caplog)
    no_tenant = make_token(rsa1, iss=EPIC_ISS, aud=EPIC_AUD_BASE + SERVICE_PATH)
    assert "tenant" in reject(auth, f"Bearer {no_tenant}", caplog)


# --------------------------------------------------------------------------- jku + key rotation


def test_jku_not_on_allow_list_is_never_fetched(auth, server, caplog):
    attacker = ec_key("attacker-key")
    server.routes[EVIL_JWKS_PATH] = {"keys": [attacker.jwk()]}
    token = make_token(attacker, header_extra={"jku": server.url(EVIL_JWKS_PATH)})
    assert "jku" in reject(auth, f"Bearer {token}", caplog)
    assert server.hits.get(EVIL_JWKS_PATH, 0) == 0
    assert server.total_hits() == 0


def test_unknown_kid_refetch_and_rate_limit(auth, server, clock, ec1, caplog):
    jku = {"jku": server.url(EC_JWKS_PATH)}
    accept(auth, make_token(ec1, header_extra=jku))
    assert server.hits[EC_JWKS_PATH] == 1

    # The client rotates its key.
    clock.advance(61)
    ec2 = ec_key("ec-key-2")
    server.routes[EC_JWKS_PATH] = {"keys": [ec2.jwk()]}

    # First unknown kid: one refetch, and the new key verifies.
    accept(auth, make_token(ec2, header_extra=jku))
    assert server.hits[EC_JWKS_PATH] == 2

    # Another unknown kid within the rate-limit window (5 s by default): no refetch.
    clock.advance(2)
    ec3 = ec_key("ec-key-3")
    assert "kid" in reject(auth, f"Bearer {make_token(ec3, header_extra=jku)}", caplog)
    assert server.hits[EC_JWKS_PATH] == 2
    # The rotated key is still served from cache meanwhile.
    accept(auth, make_token(ec2, header_extra=jku))
    assert server.hits[EC_JWKS_PATH] == 2

    # After the window, an unknown kid may trigger one more fetch.
    clock.advance(60)
    reject(auth, f"Bearer {make_token(ec3, header_extra=jku)}", caplog)
    assert server.hits[EC_JWKS_PATH] == 3


def test_key_objects_are_reused_until_the_jwks_is_refetched(auth, server, clock, ec1, caplog, monkeypatch):
    built = []
    monkeypatch.setattr(verify, "_pyjwk_for", lambda jwk, alg: built.append(jwk["kid"]) or jwt.PyJWK(dict(jwk), alg))
    jku = {"jku": server.url(EC_JWKS_PATH)}
    for _ in range(3):
        accept(auth, make_token(ec1, header_extra=jku))
    assert built == ["ec-key-1"]

    # The client replaces the key behind the same kid; the JWKS is refetched when it is an hour old.
    replacement = ec_key("ec-key-1")
    server.routes[EC_JWKS_PATH] = {"keys": [replacement.jwk()]}
    clock.advance(ClientAuthenticator.jwks_max_age + 1)
    accept(auth, make_token(replacement, header_extra=jku))
    assert "bad signature" in reject(auth, f"Bearer {make_token(ec1, header_extra=jku)}", caplog)
    assert built == ["ec-key-1", "ec-key-1"] and server.hits[EC_JWKS_PATH] == 2


def test_key_objects_kept_are_bounded(auth, server, ec1, monkeypatch):
    monkeypatch.setattr(verify, "MAX_KEY_OBJECTS", 1)
    accept(auth, make_token(ec1, header_extra={"jku": server.url(EC_JWKS_PATH)}))
    accept(auth, make_token(ec1, iss="https://static.example.org"))
    assert len(auth._key_objects) == 1


def test_jwks_fetch_failure_is_unauthorized_and_rate_limited(tmp_path, server, clock, ec1, caplog):
    path = tmp_path / "tc.json"
    path.write_text(json.dumps({"clients": {EC_ISS: {"jku": [server.url("/missing.json")]}}}))
    auth = ClientAuthenticator(load_trusted_clients(path), public_base_url=BASE, clock=clock)
    reject(auth, f"Bearer {make_token(ec1)}", caplog)
    reject(auth, f"Bearer {make_token(ec1)}", caplog)
    assert server.hits == {"/missing.json": 1}


# --------------------------------------------------------------------------- Authorization header


@pytest.mark.parametrize("value", ["Bearer abc.def", "Bearer not-a-jwt", "Bearer a.b.c", "Bearer ", "Bearer a b"])
def test_malformed_token_rejected(auth, caplog, value):
    reject(auth, value, caplog)


@pytest.mark.parametrize("value", [None, "", "   "])
def test_missing_header_rejected(auth, caplog, value):
    assert "missing" in reject(auth, value, caplog)


def test_non_bearer_scheme_rejected(auth, ec1, caplog):
    assert "Bearer" in reject(auth, "Basic dXNlcjpwYXNzd29yZA==", caplog)
    token = make_token(ec1)
    reject(auth, f"Token {token}", caplog)
    # lower-case scheme is fine (schemes are case-insensitive)
    accept_header = f"bearer {make_token(ec1)}"
    assert auth.authenticate(accept_header, SERVICE_PATH)["iss"] == EC_ISS


def test_endpoint_path_must_be_a_path(auth, ec1):
    with pytest.raises(ValueError):
        auth.authenticate(f"Bearer {make_token(ec1)}", "https://cds.example.org/cds-services")


# --------------------------------------------------------------------------- shipped profiles


def test_dev_profile_and_example_load():
    dev = load_trusted_clients(FIXTURES / "trusted-clients.sandbox-dev.json")
    assert set(dev) == {SANDBOX_ISS}
    sandbox = dev[SANDBOX_ISS]
    assert SANDBOX_KID in sandbox.static_keys
    assert sandbox.jku_urls == ("https://sandbox.cds-hooks.org/.well-known/jwks.json",)
    assert sandbox.audience_base_urls == ("http://localhost:8080", "http://127.0.0.1:8080")
    example = load_trusted_clients(FIXTURES / "trusted-clients.example.json")
    assert SANDBOX_ISS in example and EPIC_ISS in example
    assert example[EPIC_ISS].tenants == frozenset({"examplehospital-prod"})


def test_sandbox_iss_with_forged_key_rejected_without_fetch(caplog):
    fetched: list[str] = []
    auth = ClientAuthenticator(
        load_trusted_clients(FIXTURES / "trusted-clients.sandbox-dev.json"),
        public_base_url="http://localhost:8080",
        fetch_jwks=lambda url: fetched.append(url) or {"keys": []},
    )
    forged = ec_key(SANDBOX_KID)
    token = make_token(
        forged, iss=SANDBOX_ISS, aud="http://localhost:8080/cds-services",
        header_extra={"jku": "https://sandbox.cds-hooks.org/.well-known/jwks.json"},
    )
    reject(auth, f"Bearer {token}", caplog, "/cds-services")
    assert fetched == []  # the static sandbox key is used; nothing is fetched


# --------------------------------------------------------------------------- configuration errors


def write_config(tmp_path, clients) -> Path:
    path = tmp_path / "tc.json"
    path.write_text(json.dumps({"clients": clients}))
    return path


@pytest.mark.parametrize(
    ("entry", "named"),
    [
        ({}, "no key source"),
        ({"_comment": "only a comment"}, "no key source"),
        ({"jku": "https://ehr.example.org/jwks.json"}, "'jku'"),
        ({"jku": []}, "'jku'"),
        ({"jku": ["http://ehr.example.org/jwks.json"]}, "'jku'"),
        ({"jku": ["https://e.org/j"], "audience_base_urls": "https://x"}, "'audience_base_urls'"),
        ({"jku": ["https://e.org/j"], "audience_base_urls": ["ftp://x"]}, "'audience_base_urls'"),
        ({"jku": ["https://e.org/j"], "tenants": []}, "'tenants'"),
        ({"jku": ["https://e.org/j"], "extra_algorithms": ["HS256"]}, "'extra_algorithms'"),
        ({"jku": ["https://e.org/j"], "audience": ["https://x"]}, "'audience'"),
        ({"jwks": {"keys": []}}, "'jwks'"),
        ({"jwks": {"keys": [{"kty": "EC"}]}}, "kid"),
        ({"jwks_file": "does-not-exist.json"}, "does-not-exist.json"),
        ({"jwks": {"keys": [{"kty": "oct", "kid": "s", "k": "c2VjcmV0"}]}}, "'s'"),
    ],
)
def test_trust_config_errors_name_issuer_and_key(tmp_path, entry, named):
    with pytest.raises(TrustConfigError) as info:
        load_trusted_clients(write_config(tmp_path, {EC_ISS: entry}))
    message = str(info.value)
    assert named in message and EC_ISS in message


def test_trust_config_rejects_private_keys(tmp_path):
    private_jwk = jwt.algorithms.ECAlgorithm.to_jwk(ec_key("x").private, as_dict=True)
    private_jwk["kid"] = "x"
    with pytest.raises(TrustConfigError, match="private"):
        load_trusted_clients(write_config(tmp_path, {EC_ISS: {"jwks": {"keys": [private_jwk]}}}))


def test_a_missing_trust_config_file_is_a_config_error(tmp_path):
    with pytest.raises(TrustConfigError, match="cannot read"):
        load_trusted_clients(tmp_path / "missing.json")


@pytest.mark.parametrize("content, message", [
    ("{not json", "not valid JSON"),
    ('{"clients": {"https://a": {"jku": ["https://a/j"]}, "https://a": {"jku": ["https://a/j"]}}}',
     "duplicate key 'https://a'"),
    ('{"clients": {}}', "'clients'"),
    ('{"client": {}}', "'client'"),
])
def test_trust_config_file_level_errors(tmp_path, content, message):
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    with pytest.raises(TrustConfigError, match=message):
        load_trusted_clients(bad)


def test_jwks_file_resolved_relative_to_config(tmp_path, ec1, clock):
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "ehr.json").write_text(json.dumps({"keys": [ec1.jwk()]}))
    clients = load_trusted_clients(write_config(tmp_path, {EC_ISS: {"jwks_file": "keys/ehr.json"}}))
    assert ec1.kid in clients[EC_ISS].static_keys
    auth = ClientAuthenticator(clients, public_base_url=BASE + "/", clock=clock)
    accept(auth, make_token(ec1))


def test_trusted_client_requires_key_source():
    with pytest.raises(TrustConfigError, match="no key source"):
        TrustedClient(issuer=EC_ISS)


# --------------------------------------------------------------------------- replay cache


def test_in_memory_replay_cache_prunes_expired(clock):
    cache = InMemoryReplayCache(clock)
    assert cache.seen_before("iss", "a", clock.now + 10) is False
    assert cache.seen_before("iss", "a", clock.now + 10) is True
    assert cache.seen_before("other-iss", "a", clock.now + 10) is False
    assert len(cache) == 2
    clock.advance(11)
    assert len(cache) == 0
    assert cache.seen_before("iss", "a", clock.now + 10) is False


def test_in_memory_replay_cache_is_thread_safe(clock):
    cache = InMemoryReplayCache(clock)
    results: list[bool] = []
    lock = threading.Lock()

    def worker() -> None:
        r = cache.seen_before("iss", "same-jti", clock.now + 60)
        with lock:
            results.append(r)

    threads = [threading.Thread(target=worker) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(False) == 1 and results.count(True) == 19


def test_concurrent_authentication_fetches_once(auth, server, ec1):
    tokens = [make_token(ec1, header_extra={"jku": server.url(EC_JWKS_PATH)}) for _ in range(10)]
    errors: list[Exception] = []

    def worker(token: str) -> None:
        try:
            accept(auth, token)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(t,)) for t in tokens]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert server.hits == {EC_JWKS_PATH: 1}

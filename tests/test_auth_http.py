"""CDS client JWT authentication through the HTTP app (and once through a live `cds-service serve`).

Tokens are signed with keys generated here; jku keys are served by a loopback JWKS server
(``JwksServer`` from test_auth, which counts the requests it gets per path). Every test runs
under ``log_guard``: all log records (root logger at DEBUG, formatted as the app formats them)
and everything written to stderr (where the app's JSON log handler writes) are checked for the
token, its payload and its signature, both after each request and at the end of the test.
"""

import hashlib
import hmac
import json
import logging
import time
import uuid

import jwt
import pytest
import requests
from conftest import load_fixture
from server_process import free_port
from server_process import running_server
from test_auth import EC_JWKS_PATH
from test_auth import EPIC_JWKS_PATH
from test_auth import JwksServer
from test_auth import Key
from test_auth import b64url
from test_auth import ec1  # noqa: F401  (key and JWKS-server fixtures)
from test_auth import ec_key
from test_auth import rsa1  # noqa: F401
from test_auth import server  # noqa: F401

from cds_service import create_app
from cds_service.logs import JsonFormatter

BASE = "https://cds.example.org"
DISCOVERY = "/cds-services"
SERVICE = "/cds-services/milnacipran-order-sign"
FEEDBACK = SERVICE + "/feedback"
EC_ISS = "https://ehr.example.org"
RSA_ISS = "https://fhir.examplehospital.org/interconnect-fhir-oauth/api/FHIR/R4"
EVIL_JWKS = "/evil/jwks.json"
FEEDBACK_BODY = {"feedback": [{"card": "9368d37b-283f-44a0-93ea-547cebab93ed", "outcome": "overridden",
                               "outcomeTimestamp": "2026-11-20T10:05:31Z"}]}
OFF_WARNING = "authentication is OFF"


# --------------------------------------------------------------------------- log guard

class LogGuard:
    """Every secret sent to the app, and every log record and stderr byte the app produced."""

    def __init__(self, caplog, capfd) -> None:
        self.caplog, self.capfd = caplog, capfd
        self.secrets: list[str] = []
        self.stderr = ""  # fd 2 as captured by capfd: where the app's JSON log handler writes

    def remember(self, credentials: str) -> str:
        """Register a token (or any Authorization credentials) that must never be logged."""
        parts = credentials.split(".")
        self.secrets += [p for p in {credentials, *parts[1:]} if len(p) >= 8]
        return credentials

    def records(self) -> list[logging.LogRecord]:
        return self.caplog.get_records("setup") + self.caplog.get_records("call")

    def check(self) -> str:
        """Assert no secret is in any log record or on stderr; return all that text."""
        formatter = JsonFormatter()
        lines = [formatter.format(r) + repr(r.args) for r in self.records()]
        self.stderr += self.capfd.readouterr().err
        text = "\n".join(lines) + "\n" + self.stderr
        for secret in self.secrets:
            assert secret not in text, "token text leaked into the log"
        return text


@pytest.fixture(autouse=True)
def log_guard(caplog, capfd):
    """Capture all logging (root, DEBUG) and stderr; after the test no secret may be in either."""
    caplog.set_level(logging.DEBUG)
    guard = LogGuard(caplog, capfd)
    yield guard
    guard.check()


# --------------------------------------------------------------------------- keys, JWKS server, app


@pytest.fixture
def trust_file(tmp_path, server):
    path = tmp_path / "trusted-clients.json"
    path.write_text(json.dumps({"_comment": "HTTP auth tests", "clients": {
        EC_ISS: {"jku": [server.url(EC_JWKS_PATH)]},
        RSA_ISS: {"jku": [server.url(EPIC_JWKS_PATH)]},
    }}))
    return path


def make_app(trust_file, auth_clock=time.time, **overrides):
    config = {"require_jwt": True, "trusted_clients_file": str(trust_file), "public_base_url": BASE,
              "log_level": "DEBUG", **overrides}
    return create_app(config, auth_clock=auth_clock)


@pytest.fixture
def client(trust_file):
    return make_app(trust_file).test_client()


class Tokens:
    def __init__(self, guard: LogGuard, server: JwksServer) -> None:
        self.guard, self.server = guard, server

    def sign(self, key: Key, *, path=SERVICE, iss=EC_ISS, aud=None, jku=None, header=None, drop=(), **claims):
        now = int(time.time())
        payload = {"iss": iss, "aud": BASE + path if aud is None else aud, "iat": now, "exp": now + 300,
                   "jti": str(uuid.uuid4()), **claims}
        for name in drop:
            payload.pop(name)
        headers = {"kid": key.kid, "typ": "JWT", **(header or {})}
        if jku:
            headers["jku"] = self.server.url(jku)
        return self.guard.remember(jwt.encode(payload, key.private, algorithm=key.alg, headers=headers))

    def raw(self, header: dict, payload: dict, signature: bytes = b"") -> str:
        """An unsigned token; ``signature`` as given."""
        signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(payload).encode())}"
        return self.guard.remember(signing_input + "." + b64url(signature))

    def payload(self, path=SERVICE, **claims) -> dict:
        now = int(time.time())
        return {"iss": EC_ISS, "aud": BASE + path, "iat": now, "exp": now + 300, "jti": str(uuid.uuid4()), **claims}


@pytest.fixture
def tokens(log_guard, server) -> Tokens:
    return Tokens(log_guard, server)


def call(client, guard: LogGuard, path: str, authorization: str | None = None, **kwargs):
    headers = dict(kwargs.pop("headers", {}))
    if authorization is not None:
        headers["Authorization"] = authorization
        guard.remember(authorization.strip().partition(" ")[2] or authorization)
    if path == DISCOVERY:
        return client.get(path, headers=headers, **kwargs)
    body = FEEDBACK_BODY if path == FEEDBACK else load_fixture("requests/non-milnacipran-order.json")
    return client.post(path, json=body, headers=headers, **kwargs)


def ok(response, guard: LogGuard) -> None:
    assert response.status_code == 200, response.get_data(as_text=True)
    assert '"status": 200' in guard.check()


def unauthorized(response, guard: LogGuard, reason: str) -> None:
    """401, an OperationOutcome without the reason, the reason logged (as JSON on stderr), no token logged."""
    assert response.status_code == 401
    body = response.get_data(as_text=True)
    outcome = json.loads(body)
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"] == [{"severity": "error", "code": "security", "diagnostics": "Unauthorized"}]
    assert reason not in body
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    guard.check()
    rejected = [json.loads(line) for line in guard.stderr.splitlines() if "CDS client JWT rejected" in line]
    assert rejected and reason in rejected[-1]["message"], "the reason must be logged"


# --------------------------------------------------------------------------- accepted


@pytest.mark.parametrize("path", [DISCOVERY, SERVICE, FEEDBACK])
def test_valid_es384_via_jku(client, server, tokens, ec1, log_guard, path):
    ok(call(client, log_guard, path, "Bearer " + tokens.sign(ec1, path=path, jku=EC_JWKS_PATH)), log_guard)
    assert server.hits == {EC_JWKS_PATH: 1}


@pytest.mark.parametrize("path", [DISCOVERY, SERVICE, FEEDBACK])
def test_valid_rs384_epic_style(client, server, tokens, rsa1, log_guard, path):
    now = int(time.time())
    token = tokens.sign(rsa1, path=path, iss=RSA_ISS, jku=EPIC_JWKS_PATH, iat=now, nbf=now - 300, exp=now + 900,
                        sub="cds-client-id-123")
    ok(call(client, log_guard, path, "Bearer " + token), log_guard)
    assert server.hits == {EPIC_JWKS_PATH: 1}


def test_service_response_with_valid_token(client, tokens, ec1, log_guard):
    response = call(client, log_guard, SERVICE, "Bearer " + tokens.sign(ec1))  # no jku: configured URL
    ok(response, log_guard)
    assert response.get_json() == {"cards": []}


# --------------------------------------------------------------------------- rejected


def _hs256_with_the_public_key(tokens, keys):
    """Key confusion: the attacker HMACs with the RSA public key (PEM), hoping it is used as a secret."""
    header = {"alg": "HS256", "kid": keys["rsa"].kid, "typ": "JWT"}
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(tokens.payload(iss=RSA_ISS)).encode())}"
    signature = hmac.new(keys["rsa"].public_pem(), signing_input.encode(), hashlib.sha256).digest()
    return tokens.guard.remember(signing_input + "." + b64url(signature))


def _forged_signature(tokens, keys):
    head, payload, _ = tokens.sign(keys["ec"]).split(".")
    return tokens.guard.remember(f"{head}.{payload}.{b64url(b'x' * 96)}")


def _attacker_jku(tokens, keys):
    attacker = ec_key("attacker-key")
    tokens.server.routes[EVIL_JWKS] = {"keys": [attacker.jwk()]}
    return tokens.sign(attacker, jku=EVIL_JWKS)


# Each way a token is refused, through HTTP: the semantics are tested on the authenticator in test_auth.py;
# here each must answer a bare 401, log its reason and never log the token, and fetch no key when it cannot.
REJECTED = {
    "alg none": (lambda t, k: t.raw({"alg": "none", "kid": k["ec"].kid, "typ": "JWT"}, t.payload()),
                 "alg 'none' not allowed", 0),
    "HS256 with the public key": (_hs256_with_the_public_key, "alg 'HS256' not allowed", 0),
    "foreign aud": (lambda t, k: t.sign(k["ec"], aud="https://evil.example.org" + SERVICE), "InvalidAudienceError", None),
    "discovery aud at the service": (lambda t, k: t.sign(k["ec"], aud=BASE + DISCOVERY), "InvalidAudienceError", None),
    "feedback aud at the service": (lambda t, k: t.sign(k["ec"], aud=BASE + FEEDBACK), "InvalidAudienceError", None),
    "expired": (lambda t, k: t.sign(k["ec"], iat=int(time.time()) - 600, exp=int(time.time()) - 120),
                "ExpiredSignatureError", None),
    "nbf in the future": (lambda t, k: t.sign(k["ec"], nbf=int(time.time()) + 300, exp=int(time.time()) + 600),
                          "ImmatureSignatureError", None),
    "missing jti": (lambda t, k: t.sign(k["ec"], drop=("jti",)), 'missing the "jti" claim', None),
    "unknown iss": (lambda t, k: t.sign(k["ec"], iss="https://unknown.example.org", jku=EC_JWKS_PATH),
                    "iss is not a trusted client", 0),
    "jku not on the allow-list": (_attacker_jku, "jku not on the issuer's allow-list", 0),
    "forged signature": (_forged_signature, "bad signature", None),
}


@pytest.mark.parametrize("case", REJECTED)
def test_a_refused_token_is_a_bare_401_with_its_reason_logged_and_no_token(client, server, tokens, ec1, rsa1,
                                                                           log_guard, case):
    build, reason, fetches = REJECTED[case]
    token = build(tokens, {"ec": ec1, "rsa": rsa1})
    unauthorized(call(client, log_guard, SERVICE, "Bearer " + token), log_guard, reason)
    if fetches is not None:
        assert server.total_hits() == fetches


def test_aud_from_host_header_is_not_accepted(client, tokens, ec1, log_guard):
    """The audience comes from CDS_PUBLIC_BASE_URL, never from the request's Host header."""
    token = tokens.sign(ec1, aud="http://localhost" + DISCOVERY)
    response = call(client, log_guard, DISCOVERY, "Bearer " + token, base_url="http://localhost")
    unauthorized(response, log_guard, "InvalidAudienceError")
    token = tokens.sign(ec1, aud="https://attacker.example.net" + DISCOVERY)
    response = call(client, log_guard, DISCOVERY, "Bearer " + token, headers={"Host": "attacker.example.net"},
                    base_url="https://attacker.example.net")
    unauthorized(response, log_guard, "InvalidAudienceError")


def test_replayed_jti(client, tokens, ec1, log_guard):
    token = tokens.sign(ec1)
    ok(call(client, log_guard, SERVICE, "Bearer " + token), log_guard)
    unauthorized(call(client, log_guard, SERVICE, "Bearer " + token), log_guard, "jti replayed")


def test_unknown_kid_then_key_rotation(trust_file, server, tokens, ec1, log_guard):
    later = [0.0]
    client = make_app(trust_file, auth_clock=lambda: time.time() + later[0], jwks_refetch_seconds=30).test_client()
    ok(call(client, log_guard, SERVICE, "Bearer " + tokens.sign(ec1, jku=EC_JWKS_PATH)), log_guard)
    assert server.hits == {EC_JWKS_PATH: 1}

    ec2 = ec_key("ec-key-2")  # not published yet: unknown kid, and the refetch is rate-limited
    unauthorized(call(client, log_guard, SERVICE, "Bearer " + tokens.sign(ec2, jku=EC_JWKS_PATH)), log_guard, "unknown kid")
    assert server.hits == {EC_JWKS_PATH: 1}

    server.routes[EC_JWKS_PATH] = {"keys": [ec2.jwk()]}  # the client rotates to ec2
    later[0] = 31  # past the refetch interval
    ok(call(client, log_guard, SERVICE, "Bearer " + tokens.sign(ec2, jku=EC_JWKS_PATH)), log_guard)
    assert server.hits == {EC_JWKS_PATH: 2}
    ok(call(client, log_guard, SERVICE, "Bearer " + tokens.sign(ec2, jku=EC_JWKS_PATH)), log_guard)  # cached
    assert server.hits == {EC_JWKS_PATH: 2}
    # the retired key is gone from the cache, and no refetch happens inside the window
    unauthorized(call(client, log_guard, SERVICE, "Bearer " + tokens.sign(ec1, jku=EC_JWKS_PATH)), log_guard, "unknown kid")
    assert server.hits == {EC_JWKS_PATH: 2}


@pytest.mark.parametrize(("value", "reason"), [
    ("Bearer not-a-jwt-at-all", "malformed token"),
    ("Bearer eyJhbGciOiJFUzM4NCJ9.eyJpc3MiOiJ4In0.c2lnbmF0dXJl", "kid missing"),
    ("Bearer abc.def.ghi", "malformed token"),
    ("Bearer two parts", "malformed Bearer token"),
])
def test_malformed_token(client, log_guard, value, reason):
    unauthorized(call(client, log_guard, SERVICE, value), log_guard, reason)


@pytest.mark.parametrize("path", [DISCOVERY, SERVICE, FEEDBACK])
@pytest.mark.parametrize("value", [None, "", "   "])
def test_missing_header(client, log_guard, path, value):
    unauthorized(call(client, log_guard, path, value), log_guard, "missing Authorization header")


@pytest.mark.parametrize("scheme", ["Token", "JWT", "Basic", "Bearer:"])
def test_token_in_a_non_bearer_scheme(client, tokens, ec1, log_guard, scheme):
    token = tokens.sign(ec1)
    unauthorized(call(client, log_guard, SERVICE, f"{scheme} {token}"), log_guard, "scheme is not Bearer")
    ok(call(client, log_guard, SERVICE, f"bearer {token}"), log_guard)  # schemes are case-insensitive


# --------------------------------------------------------------------------- preflight, local mode


@pytest.mark.parametrize("path", [DISCOVERY, SERVICE, FEEDBACK])
def test_options_preflight_needs_no_token(client, server, log_guard, path):
    response = client.options(path, headers={"Origin": "https://sandbox.cds-hooks.org",
                                             "Access-Control-Request-Method": "POST",
                                             "Access-Control-Request-Headers": "authorization,content-type"})
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert "Authorization" in response.headers["Access-Control-Allow-Headers"]
    assert "POST" in response.headers["Access-Control-Allow-Methods"]
    assert "CDS client JWT rejected" not in log_guard.check()
    assert server.total_hits() == 0


def test_require_jwt_false_passes_without_token_and_warns(log_guard):
    app = create_app({"require_jwt": False})
    started = [r for r in log_guard.records() if r.levelno == logging.WARNING and OFF_WARNING in r.getMessage()]
    assert len(started) == 1 and "production" in started[0].getMessage()
    response = app.test_client().get(DISCOVERY)
    assert response.status_code == 200
    warnings = [r for r in log_guard.records() if r.levelno == logging.WARNING and OFF_WARNING in r.getMessage()]
    assert len(warnings) == 2 and warnings[-1].name == "cds_service.http.views"
    assert app.test_client().post(SERVICE, json=load_fixture("requests/non-milnacipran-order.json")).status_code == 200
    assert log_guard.check().count(OFF_WARNING) >= 3 + 3  # records and the JSON lines on stderr


# --------------------------------------------------------------------------- live server


def test_live_server_es384_and_missing_token(tmp_path, tokens, ec1, log_guard):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    trust = tmp_path / "trusted-clients.json"
    trust.write_text(json.dumps({"clients": {EC_ISS: {"jwks": {"keys": [ec1.jwk()]}}}}))
    log_path = tmp_path / "server.log"
    environment = {"CDS_REQUIRE_JWT": "true", "CDS_TRUSTED_CLIENTS_FILE": str(trust),
                   "CDS_PUBLIC_BASE_URL": base, "CDS_WORKERS": "1", "CDS_LOG_LEVEL": "DEBUG"}
    with running_server(log_path, environment, port) as base:
        discovery_token = tokens.sign(ec1, aud=base + DISCOVERY)
        response = requests.get(base + DISCOVERY, headers={"Authorization": "Bearer " + discovery_token}, timeout=5)
        assert response.status_code == 200
        service_token = tokens.sign(ec1, aud=base + SERVICE)
        response = requests.post(base + SERVICE, json=load_fixture("requests/non-milnacipran-order.json"),
                                 headers={"Authorization": "Bearer " + service_token}, timeout=5)
        assert response.status_code == 200 and response.json() == {"cards": []}
        response = requests.get(base + DISCOVERY, timeout=5)
        assert response.status_code == 401 and response.json()["resourceType"] == "OperationOutcome"
        response = requests.get(base + DISCOVERY, headers={"Authorization": "Bearer " + discovery_token}, timeout=5)
        assert response.status_code == 401 and "replayed" not in response.text
    server_log = log_path.read_text()
    assert "missing Authorization header" in server_log and "jti replayed" in server_log
    for secret in log_guard.secrets:
        assert secret not in server_log, "token text leaked into the server log"

"""Operations at scale: metrics, one JSON log stream with request ids, the replay cache shared by
workers, readiness, the chart cache keyed by token. The served tests run a real `cds-service serve`."""

import datetime
import json
import os
import re
import time
import uuid

import jwt
import pytest
import requests
from conftest import load_fixture
from fhir_stub import FhirStub
from server_process import free_port
from server_process import running_server
from test_auth import ec_key
from test_fhir_fallback import PATIENT
from test_fhir_fallback import RESOURCES
from test_fhir_fallback import envelope
from test_fhir_fallback import only
from test_fhir_fallback import paths
from test_fhir_fallback import reasons
from test_fhir_fallback import settings

from cds_service import create_app
from cds_service.audit.replay_cache import DatabaseReplayCache
from cds_service.audit.store import Store
from cds_service.auth.replay import InMemoryReplayCache
from cds_service.chart.source import ChartSource
from cds_service.http import observability
from cds_service.metrics import exposition
from cds_service.metrics import rejection_kind

ISS = "https://ehr.example.org"
SERVICE = "/cds-services/milnacipran-order-sign"
DISCOVERY = "/cds-services"


# --------------------------------------------------------------------------- a served process


class Served:
    def __init__(self, base: str, log_path, key) -> None:
        self.base, self.log_path, self.key = base, log_path, key
        self.tokens: list[str] = []

    def token(self, path: str, **claims) -> str:
        now = int(time.time())
        token = jwt.encode({"iss": ISS, "aud": self.base + path, "iat": now, "exp": now + 300,
                            "jti": str(uuid.uuid4()), **claims}, self.key.private, algorithm="ES384",
                           headers={"kid": self.key.kid, "typ": "JWT"})
        self.tokens.append(token)
        return token

    def call(self, path=SERVICE, body=None, token=None, request_id=None, traceparent=None, **claims):
        headers = {"Authorization": "Bearer " + (token or self.token(path, **claims))}
        if request_id:
            headers["X-Request-ID"] = request_id
        if traceparent:
            headers["traceparent"] = traceparent
        with requests.Session() as session:  # a new connection each time: any worker may take it
            if body is None:
                return session.get(self.base + path, headers=headers, timeout=10)
            return session.post(self.base + path, json=body, headers=headers, timeout=10)

    def lines(self) -> list[dict]:
        text = self.log_path.read_text()
        parsed = []
        for line in text.splitlines():
            if line.strip():
                try:
                    parsed.append(json.loads(line))
                except ValueError:
                    raise AssertionError(f"a log line is not JSON: {line[:300]!r}") from None
        return parsed

    def lines_of(self, request_id: str, wait_for: int = 2) -> list[dict]:
        deadline = time.monotonic() + 5
        while True:
            found = [line for line in self.lines() if line.get("requestId") == request_id]
            if len(found) >= wait_for or time.monotonic() > deadline:
                return found
            time.sleep(0.05)


@pytest.fixture(scope="module")
def key():
    return ec_key("ops-1")


def serve(tmp_path, key, workers=2, **environment):
    trust = tmp_path / "trusted-clients.json"
    trust.write_text(json.dumps({"clients": {ISS: {"jwks": {"keys": [key.jwk()]}}}}))
    port = free_port()
    env = {"CDS_REQUIRE_JWT": "true", "CDS_TRUSTED_CLIENTS_FILE": str(trust),
           "CDS_PUBLIC_BASE_URL": f"http://127.0.0.1:{port}", "CDS_WORKERS": str(workers),
           "CDS_DATA_DIR": str(tmp_path / "data"), "CDS_DATABASE_URL": "", **environment}
    return running_server(tmp_path / "server.log", env, port)


def metric(text: str, name: str, **labels) -> float:
    """The sum of the samples of ``name`` whose labels include ``labels``."""
    total = 0.0
    for line in text.splitlines():
        match = re.fullmatch(r"([a-z_]+)(?:\{(.*)\})? (\S+)", line)
        if match and match.group(1) == name:
            found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(2) or ""))
            if all(found.get(k) == v for k, v in labels.items()):
                total += float(match.group(3))
    return total


# --------------------------------------------------------------------------- metrics and logs, served


def test_served_metrics_logs_and_request_ids(tmp_path, key):
    body = load_fixture("requests/sandbox-order-sign.json")
    with serve(tmp_path, key, CDS_LOG_LEVEL="DEBUG") as base:
        served = Served(base, tmp_path / "server.log", key)
        scrape = requests.get(base + "/metrics", timeout=5)  # no JWT needed
        assert scrape.status_code == 200 and scrape.headers["Content-Type"].startswith("text/plain")
        before = metric(scrape.text, "cds_http_requests_total", service="milnacipran-order-sign", status="200")

        traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        answers = [served.call(body=body, request_id=f"req-{n}", traceparent=traceparent, tenant="t1")
                   for n in range(6)]
        assert [a.status_code for a in answers] == [200] * 6
        assert [a.headers["X-Request-ID"] for a in answers] == [f"req-{n}" for n in range(6)]
        cards = answers[0].json()["cards"]
        assert cards
        generated = served.call(path=DISCOVERY)
        assert re.fullmatch(r"[0-9a-f]{32}", generated.headers["X-Request-ID"])
        refused = served.call(body=body, token="not-a-jwt", request_id="refused-1")
        assert refused.status_code == 401 and refused.headers["X-Request-ID"] == "refused-1"

        text = requests.get(base + "/metrics", timeout=5).text  # summed over both workers
        assert metric(text, "cds_http_requests_total", service="milnacipran-order-sign", status="200") == before + 6
        assert metric(text, "cds_http_requests_total", service="milnacipran-order-sign", status="401") >= 1
        assert metric(text, "cds_jwt_rejections_total", reason="malformed") >= 1
        for phase in ("auth", "parse", "gather", "rules", "render"):
            assert metric(text, "cds_phase_duration_seconds_count", phase=phase) >= 6, phase
        topic = cards[0]["source"]["topic"]["code"]
        assert metric(text, "cds_cards_total", topic=topic, indicator=cards[0]["indicator"]) >= 6

        request_line_checked = False
        for n in range(6):
            lines = served.lines_of(f"req-{n}")
            assert {line["logger"] for line in lines} >= {"cds_service.http.views", "gunicorn.access"}
            assert all(line["traceparent"] == traceparent for line in lines)
            request_line = next(line for line in lines if line["message"] == "request")
            assert request_line["iss"] == ISS and request_line["tenant"] == "t1"
            assert request_line["cardIds"] == [card["uuid"] for card in answers[n].json()["cards"]]
            assert request_line["ruleIds"] and all(isinstance(rule, str) for rule in request_line["ruleIds"])
            request_line_checked = True
        assert request_line_checked
        access = [line for line in served.lines_of("refused-1") if line["logger"] == "gunicorn.access"]
        assert access and access[0]["status"] == 401 and access[0]["path"] == SERVICE
    lines = served.lines()  # every line, start to stop, is JSON (lines() raises otherwise)
    request_scoped = ("cds_service.http", "cds_service.auth", "cds_service.chart", "cds_service.pipeline",
                      "gunicorn.access")
    scoped = [line for line in lines if line["logger"].startswith(request_scoped)]
    assert len(scoped) >= 2 * 8 and all(line.get("requestId") for line in scoped), \
        [line for line in scoped if not line.get("requestId")][:3]
    assert any(line["logger"] == "cds_service.auth.verify" and line["requestId"] == "refused-1" for line in scoped)
    messages = " ".join(line["message"] for line in lines)
    assert "Starting gunicorn" in messages and "Booting worker" in messages and "trust profile loaded" in messages
    assert "Handling signal" in messages or "Shutting down" in messages
    log_text = (tmp_path / "server.log").read_text()
    for token in served.tokens:
        assert token not in log_text and token.split(".")[2] not in log_text
    patient = body["context"]["patientId"]
    assert f'"{patient}"' not in log_text


# --------------------------------------------------------------------------- replay to another worker


@pytest.mark.parametrize("cache", ["database", "postgresql", "memory"])
def test_a_token_replayed_to_another_worker(tmp_path, key, cache):
    """With the database replay cache (SQLite, or PostgreSQL when CDS_TEST_DATABASE_URL is set) every
    replay is refused, on whichever worker it lands; the per-process cache (the control) lets a
    replay through on the other worker."""
    environment = {"CDS_REPLAY_CACHE": "memory" if cache == "memory" else "database"}
    if cache == "postgresql":
        if not os.environ.get("CDS_TEST_DATABASE_URL"):
            pytest.skip("CDS_TEST_DATABASE_URL is not set (.ci/run sets it)")
        environment["CDS_DATABASE_URL"] = os.environ["CDS_TEST_DATABASE_URL"]
    with serve(tmp_path, key, workers=2, **environment) as base:
        served = Served(base, tmp_path / "server.log", key)
        token = served.token(DISCOVERY)
        first = served.call(path=DISCOVERY, token=token, request_id="first")
        assert first.status_code == 200
        first_pid = served.lines_of("first")[0]["pid"]
        outcome = None
        for attempt in range(60):
            answer = served.call(path=DISCOVERY, token=token, request_id=f"replay-{attempt}")
            if served.lines_of(f"replay-{attempt}")[0]["pid"] != first_pid:
                outcome = answer.status_code
                break
            assert answer.status_code == 401  # the same worker: refused by either cache
        assert outcome is not None, "no replay reached the other worker"
        assert outcome == (200 if cache == "memory" else 401)


# --------------------------------------------------------------------------- replay cache, unit


def test_database_replay_cache_refuses_a_replay_across_instances_and_deletes_expired_rows(tmp_path):
    url = f"sqlite:///{tmp_path}/audit.sqlite3"
    store = Store.from_url(url)
    store.migrate()
    now = [time.time()]
    one, two = DatabaseReplayCache(store, clock=lambda: now[0]), DatabaseReplayCache(Store.from_url(url))
    assert one.seen_before("iss", "a", now[0] + 60) is False
    assert two.seen_before("iss", "a", now[0] + 60) is True  # another process's view of the same database
    assert one.seen_before("other-iss", "a", now[0] + 60) is False
    assert one.delete_expired() == 0
    store.clock = lambda: datetime.datetime.fromtimestamp(now[0] + 120, datetime.timezone.utc)
    assert one.delete_expired() == 2
    store.clock = lambda: datetime.datetime.fromtimestamp(now[0], datetime.timezone.utc)
    assert one.seen_before("iss", "c", now[0] + 60) is False
    now[0] += 120  # "c" has expired; the periodic clean-up (at most once a minute) deletes it on the next check
    assert one.seen_before("iss", "d", now[0] + 60) is False
    assert one.delete_expired() == 0


def test_database_replay_cache_falls_back_to_this_process_when_the_database_is_down(tmp_path):
    store = Store.from_url(f"sqlite:///{tmp_path}/missing-dir/x/audit.sqlite3")  # cannot be opened
    cache = DatabaseReplayCache(store)
    assert cache.seen_before("iss", "a", time.time() + 60) is False
    assert cache.seen_before("iss", "a", time.time() + 60) is True


def test_in_memory_replay_cache_is_bounded():
    now = [0.0]
    cache = InMemoryReplayCache(lambda: now[0], max_entries=3)
    for n in range(10):
        assert cache.seen_before("iss", f"jti-{n}", 100.0 + n) is False
    assert len(cache) == 3
    assert cache.seen_before("iss", "jti-9", 200.0) is True  # the latest are kept


@pytest.mark.parametrize("reason, kind", [
    ("missing Authorization header", "missing-header"), ("jti replayed", "replay"),
    ("ExpiredSignatureError: Signature has expired", "expired"), ("iss is not a trusted client", "untrusted-issuer"),
    ("InvalidAudienceError: Audience doesn't match", "audience"), ("unknown kid", "unknown-key"),
    ("malformed token or bad signature", "malformed"), ("something new", "other"),
])
def test_jwt_rejection_reasons_map_to_few_label_values(reason, kind):
    assert rejection_kind(reason) == kind


# --------------------------------------------------------------------------- readiness and version


@pytest.fixture
def local_app():
    app = create_app({"require_jwt": False, "log_level": "ERROR"})
    yield app
    observability._draining.clear()


def test_readyz_turns_false_while_draining(local_app):
    client = local_app.test_client()
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.get_json()["knowledgeVersion"]
    observability.start_draining()
    draining = client.get("/readyz")
    assert draining.status_code == 503 and draining.get_json()["status"] == "draining"
    assert client.get("/healthz").status_code == 200  # alive: not to be restarted


def test_version_names_the_package_knowledge_and_policy(local_app):
    body = local_app.test_client().get("/version").get_json()
    assert body["version"] and body["version"] != "unknown"
    assert body["knowledgeVersion"] and body["policy"]["name"] == "label-defaults"


class DownStore:
    def ping(self):
        raise ConnectionError("no route")


@pytest.mark.parametrize("required, status", [(True, 503), (False, 200)])
def test_readyz_and_an_unreachable_database(required, status):
    from cds_service.http.components import components

    app = create_app({"require_jwt": False, "log_level": "ERROR", "require_database": required})
    parts = components(app)
    app.extensions["cds_service"] = type(parts)(**{**parts.__dict__, "database": DownStore()})
    answer = app.test_client().get("/readyz")
    assert answer.status_code == status and answer.get_json()["database"].startswith("unreachable")


# --------------------------------------------------------------------------- chart cache and tokens


def test_the_chart_cache_never_answers_with_data_fetched_under_another_token():
    source = ChartSource(settings(chart_cache_seconds=60))
    keys = only("patient", "conditions")
    counted = {outcome: metric(exposition()[0].decode(), "cds_fhir_queries_total", outcome=outcome)
               for outcome in ("ok", "unavailable", "cached")}
    try:
        with FhirStub(RESOURCES, required_token="token-a") as fhir:
            first = source.gather(envelope({}, fhir.base_url, token="token-a"), keys)
            assert first.patient == PATIENT and paths(fhir) == ["Condition", "Patient/p1"]
            fhir.reset_log()
            other = source.gather(envelope({}, fhir.base_url, token="token-b"), keys)
            assert paths(fhir) == ["Condition", "Patient/p1"]  # asked again, under its own token ...
            assert other.patient is None and set(reasons(other)) == {"patient", "conditions"}  # ... and refused
            fhir.reset_log()
            again = source.gather(envelope({}, fhir.base_url, token="token-a"), keys)
            assert paths(fhir) == [] and again.patient == PATIENT  # the same token: from the cache
            assert all(not isinstance(part, str) or "token-a" not in part
                       for cache_key in source.cache.entries for part in cache_key)  # hashed, never in clear
        text = exposition()[0].decode()
        assert {outcome: metric(text, "cds_fhir_queries_total", outcome=outcome) - before
                for outcome, before in counted.items()} == {"ok": 2, "unavailable": 2, "cached": 2}
    finally:
        source.close()


# --------------------------------------------------------------------------- a newcomer's setup


def test_a_client_with_its_own_audiences_is_also_accepted_at_the_public_base_url(tmp_path, key, caplog):
    """The sandbox profile lists http://localhost:8080; served on another port with CDS_PUBLIC_BASE_URL
    set to it, the sandbox's tokens (addressed to that URL) are accepted. A wrong audience is refused,
    and the log line says which audience was expected and which was received (never the token)."""
    trust = tmp_path / "trusted-clients.json"
    trust.write_text(json.dumps({"clients": {ISS: {"jwks": {"keys": [key.jwk()]},
                                                   "audience_base_urls": ["http://localhost:8080"]}}}))
    caplog.set_level("INFO")
    app = create_app({"require_jwt": True, "trusted_clients_file": str(trust), "replay_cache": "memory",
                      "public_base_url": "http://localhost:9090"})
    client = app.test_client()

    def call(aud):
        now = int(time.time())
        token = jwt.encode({"iss": ISS, "aud": aud, "iat": now, "exp": now + 300, "jti": str(uuid.uuid4())},
                           key.private, algorithm="ES384", headers={"kid": key.kid, "typ": "JWT"})
        return client.get(DISCOVERY, headers={"Authorization": "Bearer " + token}), token

    assert call("http://localhost:9090/cds-services")[0].status_code == 200
    assert call("http://localhost:8080/cds-services")[0].status_code == 200
    refused, token = call("http://localhost:7000/cds-services")
    assert refused.status_code == 401
    line = next(r.getMessage() for r in caplog.records if "JWT rejected" in r.getMessage())
    assert "aud='http://localhost:7000/cds-services'" in line
    assert "'http://localhost:8080/cds-services'" in line and "'http://localhost:9090/cds-services'" in line
    assert token not in line and token.split(".")[2] not in line
    loaded = next(r for r in caplog.records if r.getMessage() == "trust profile loaded")
    assert loaded.fields["trustedClientsFile"] == str(trust) and loaded.fields["issuers"] == [ISS]


def test_a_configuration_error_at_start_is_one_json_line(tmp_path):
    import subprocess

    from server_process import cds_service_command

    env = {**os.environ, "CDS_REQUIRE_JWT": "true", "CDS_TRUSTED_CLIENTS_FILE": str(tmp_path / "missing.json"),
           "CDS_DATA_DIR": str(tmp_path)}
    done = subprocess.run(cds_service_command() + ["serve", "--port", str(free_port())], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    lines = [json.loads(line) for line in done.stderr.splitlines() if line.strip()]
    assert lines[-1]["level"] == "CRITICAL" and "missing.json" in lines[-1]["error"]

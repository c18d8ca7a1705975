"""Hostile FHIR servers (issue 13): bulkheads per origin, one deadline per request, byte budgets,
and the FHIR servers each client may name."""

import copy
import json
import threading
import time

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from shape_server import ShapeServer
from shape_server import big_body
from shape_server import hang
from shape_server import json_answer
from shape_server import slow
from test_unreadable_chart import NOW
from test_unreadable_chart import REQUEST
from test_unreadable_chart import searchset

from cds_service import create_app
from cds_service.chart import fetch as fhir_fetch
from cds_service.chart.prefetch import prefetch_templates
from cds_service.chart.source import NOT_ALLOWED
from cds_service.chart.source import ChartSource
from cds_service.http.components import components
from cds_service.knowledge import default_knowledge
from cds_service.request.envelope import parse_envelope
from cds_service.settings import load_settings

SERVICE = "/cds-services/milnacipran-order-sign"
TEMPLATES = prefetch_templates(default_knowledge())
CHART = {key: value for key, value in REQUEST["prefetch"].items()}
PATIENT = CHART["patient"]


def healthy_routes():
    """A FHIR server answering every query of the chart of REQUEST."""
    routes = {"Patient": json_answer(PATIENT)}
    by_type = {"Observation": [], "MedicationRequest": [], "MedicationStatement": [], "Condition": [], "Procedure": []}
    for key, value in CHART.items():
        if key != "patient":
            for entry in value.get("entry", []):
                by_type[entry["resource"]["resourceType"]].append(entry)
    routes.update({kind: json_answer(searchset(*entries)) for kind, entries in by_type.items()})
    return routes


def without_prefetch(server_url):
    return {**{k: v for k, v in copy.deepcopy(REQUEST).items() if k != "prefetch"}, "fhirServer": server_url}


def app(**config):
    return create_app({"require_jwt": False, "log_level": "ERROR", "fhir_deadline_seconds": 1.0,
                       "fhir_timeout_seconds": 0.8, **config}, clock=lambda: NOW)


def post(client, request):
    started = time.monotonic()
    response = client.post(SERVICE, json=request)
    return response, time.monotonic() - started


def topics(response):
    return {card["source"]["topic"]["code"]: card for card in response.get_json()["cards"]}


# -- bulkheads -------------------------------------------------------------------------------

def test_by_default_one_requests_chart_queries_run_at_once_in_its_servers_lane():
    default = load_settings({}, {}).fhir_max_concurrent_per_server
    assert default >= len(prefetch_templates(default_knowledge()))   # else every fallback takes two rounds


def test_a_hanging_server_does_not_delay_requests_to_a_healthy_one_or_to_none():
    service = app(fhir_max_concurrent_per_server=4)
    results = {"hanging": [], "healthy": [], "prefetch": []}

    def call(kind, request):
        response, elapsed = post(service.test_client(), request)
        results[kind].append((response.status_code, elapsed, response.get_json()))

    with ShapeServer({"": hang()}) as hostile, ShapeServer(healthy_routes()) as healthy:
        threads = [threading.Thread(target=call, args=("hanging", without_prefetch(hostile.base_url)))
                   for _ in range(12)]
        for thread in threads:
            thread.start()
        time.sleep(0.2)             # the hostile server's lane is full and its queue too
        later = [threading.Thread(target=call, args=("healthy", without_prefetch(healthy.base_url)))
                 for _ in range(6)]
        later += [threading.Thread(target=call, args=("prefetch", REQUEST)) for _ in range(3)]
        for thread in later:
            thread.start()
        for thread in threads + later:
            thread.join(10)
        # never more queries at once than its lane's 4 threads (up to x3 as the stub counts: it notices a
        # closed connection late, later on a loaded machine, while the freed thread already sends its next
        # query; 9 was seen in a full suite run); without lanes: ~100
        assert hostile.most_active <= 3 * 4
        assert hostile.hits[""] < 12 * 9 / 2    # most of the 108 queries never reached it
    assert [status for status, _, _ in results["hanging"]] == [412] * 12     # no Patient: 412, never a hang
    assert all(elapsed < 1.0 + 0.6 for _, elapsed, _ in results["hanging"])
    for status, elapsed, body in results["healthy"]:
        assert status == 200 and elapsed < 1.0, (status, elapsed)
        assert "data-availability" not in {c["source"]["topic"]["code"] for c in body["cards"]}
        assert "maoi-contraindication" in {c["source"]["topic"]["code"] for c in body["cards"]}
    for status, elapsed, _ in results["prefetch"]:
        assert status == 200 and elapsed < 0.5, elapsed


def test_queries_beyond_an_origins_queue_are_refused_at_once():
    source = ChartSource(load_settings({}, {"fhir_max_concurrent_per_server": 1, "fhir_deadline_seconds": 0.5}))
    source.lanes.queue = 3
    try:
        with ShapeServer({"": hang()}) as hostile:
            envelope = parse_envelope(without_prefetch(hostile.base_url), "order-sign")
            started = time.monotonic()
            chart = source.gather(envelope, TEMPLATES)
            assert time.monotonic() - started < 0.9
            assert hostile.hits[""] == 1                   # one thread for this origin
        assert {u.reason for u in chart.unavailable} == {fhir_fetch.TIMED_OUT}
        assert {u.detail for u in chart.unavailable} >= {"too many queries waiting for this server"}
    finally:
        source.close()


# -- one deadline per request ----------------------------------------------------------------

def test_a_draft_medication_read_and_the_chart_share_one_deadline():
    """The draft's Medication comes after 0.7 of the deadline; the chart queries hang: all by the deadline."""
    request = without_prefetch(None)
    draft = request["context"]["draftOrders"]["entry"][0]["resource"]
    concept = draft.pop("medicationCodeableConcept")
    draft["medicationReference"] = {"reference": "Medication/m1"}
    medication = {"resourceType": "Medication", "id": "m1", "code": concept}
    request["prefetch"] = {"patient": PATIENT}
    with ShapeServer({"Medication/": slow(0.7, json_answer(medication)), "": hang()}) as server:
        request["fhirServer"] = server.base_url
        response, elapsed = post(app().test_client(), request)
    assert response.status_code == 200
    assert elapsed < 1.0 + 0.3, f"{elapsed:.2f} s against a 1.0 s deadline"
    cards = topics(response)
    assert "renal-function" in cards and cards["data-availability"]["indicator"] == "warning"


# -- byte budgets ------------------------------------------------------------------------------

@pytest.mark.parametrize("compressed", [False, True], ids=["plain", "gzip"])
def test_a_body_over_the_per_query_cap_makes_its_key_unavailable(compressed):
    with ShapeServer({**healthy_routes(), "Condition": big_body(30_000_000, compressed)}) as server:
        response, elapsed = post(app(fhir_deadline_seconds=3.0, fhir_timeout_seconds=2.0).test_client(),
                                 without_prefetch(server.base_url))
    assert response.status_code == 200
    card = topics(response)["data-availability"]
    assert "conditions: FHIR server sent more data than the service reads" in card["detail"]


def test_the_request_budget_is_shared_by_its_queries():
    """Three queries of 3 MB each: the per-query cap (4 MB) lets each through, the request budget (7 MB) not all."""
    routes = {**healthy_routes(), **{kind: big_body(3_000_000) for kind in ("Condition", "Procedure", "MedicationStatement")}}
    with ShapeServer(routes) as server:
        response, _ = post(app(fhir_deadline_seconds=3.0, fhir_timeout_seconds=2.0,
                               fhir_request_budget_bytes=7_000_000).test_client(), without_prefetch(server.base_url))
    detail = topics(response)["data-availability"]["detail"]
    assert detail.count("FHIR server sent more data than the service reads") == 1


def test_the_process_budget_is_returned_after_each_request():
    service = app(fhir_deadline_seconds=3.0, fhir_timeout_seconds=2.0)
    budget = components(service).check.chart_source.process_budget
    with ShapeServer({**healthy_routes(), "Condition": big_body(3_000_000)}) as server:
        for _ in range(3):
            response, _ = post(service.test_client(), without_prefetch(server.base_url))
            assert response.status_code == 200 and "data-availability" not in topics(response)
    assert budget.used == 0 and budget.peak >= 3_000_000


# -- the FHIR servers a client may name ---------------------------------------------------------

def test_without_authentication_only_loopback_servers_are_contacted():
    response, elapsed = post(app().test_client(), without_prefetch("http://192.0.2.1/fhir"))  # TEST-NET-1
    assert response.status_code == 412 and elapsed < 0.5


def test_without_authentication_the_setting_allows_more_servers():
    source = ChartSource(load_settings({}, {"fhir_allowed_servers": "https://ehr.example.org"}))
    assert source.default_servers.allows("https://ehr.example.org/fhir/R4")
    assert source.default_servers.allows("http://127.0.0.1:9999/fhir")
    assert not source.default_servers.allows("https://other.example.org/fhir")
    assert ChartSource(load_settings({}, {"fhir_allowed_servers": "*"})).default_servers.allows("http://10.0.0.1")


@pytest.fixture(scope="module")
def signing_key():
    return ec.generate_private_key(ec.SECP384R1())


def trusted_app(tmp_path, key, fhir_servers):
    public = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    client = {"jwks": {"keys": [{**public, "kid": "k1", "use": "sig", "alg": "ES384"}]}}
    if fhir_servers is not None:
        client["fhir_servers"] = fhir_servers
    path = tmp_path / "trusted.json"
    path.write_text(json.dumps({"clients": {"https://ehr.example.org": client}}))
    return create_app({"require_jwt": True, "trusted_clients_file": str(path), "log_level": "ERROR",
                       "public_base_url": "https://cds.example.org", "fhir_deadline_seconds": 1.0},
                      clock=lambda: NOW)


def signed(key):
    now = int(time.time())
    token = jwt.encode({"iss": "https://ehr.example.org", "aud": "https://cds.example.org" + SERVICE, "iat": now,
                        "exp": now + 300, "jti": str(time.monotonic_ns())}, key, algorithm="ES384",
                       headers={"kid": "k1", "typ": "JWT"})
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize("listed, contacted", [
    (None, True),                                   # no list: any server the client names
    (["LOOPBACK"], True),
    (["https://ehr.example.org"], False),
])
def test_the_trusted_clients_file_lists_the_fhir_servers_each_issuer_may_name(tmp_path, signing_key, listed, contacted):
    request = copy.deepcopy(REQUEST)
    del request["prefetch"]["medicationRequests"]
    with ShapeServer(healthy_routes()) as server:
        origin = server.base_url.removesuffix("/fhir")
        servers = None if listed is None else [origin if s == "LOOPBACK" else s for s in listed]
        client = trusted_app(tmp_path, signing_key, servers).test_client()
        response = client.post(SERVICE, json={**request, "fhirServer": server.base_url}, headers=signed(signing_key))
        assert response.status_code == 200
        assert bool(server.hits) == contacted
    cards = topics(response)
    if contacted:
        assert "data-availability" not in cards
    else:
        assert f"medicationRequests: it was not prefetched, and {NOT_ALLOWED}" in cards["data-availability"]["detail"]


def test_card_text_names_no_network_detail_and_the_log_does(caplog):
    request = copy.deepcopy(REQUEST)
    del request["prefetch"]["conditions"]
    with ShapeServer({"Condition": json_answer({"resourceType": "OperationOutcome"}, status=404)}) as server:
        with caplog.at_level("INFO", logger="cds_service"):
            response, _ = post(app(log_level="INFO").test_client(), {**request, "fhirServer": server.base_url})
    detail = topics(response)["data-availability"]["detail"]
    assert "404" not in detail and "conditions: FHIR server refused the query or could not be reached" in detail
    logged = [getattr(r, "fields", {}) for r in caplog.records if r.getMessage() == "chart gathered"]
    assert logged and logged[0]["details"] == {"conditions": "answered 404"}

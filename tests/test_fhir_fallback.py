"""Chart data: prefetch semantics and the FHIR server fallback, against a real loopback FhirStub."""
from __future__ import annotations

import datetime
import json
import logging
import time
from pathlib import Path

import pytest
import requests
from fhir_stub import FhirStub
from test_scenarios import SCENARIOS
from test_scenarios import assert_expected_cards
from test_scenarios import load_scenario
from test_scenarios import run_scenario

from cds_service import create_app
from cds_service.chart import fetch as fhir_fetch
from cds_service.chart.fetch import FhirUnavailable
from cds_service.chart.fetch import fetch
from cds_service.chart.prefetch import prefetch_templates
from cds_service.chart.source import ChartSource
from cds_service.chart.source import usable_prefetch
from cds_service.fhir.bounded_get import new_session
from cds_service.knowledge import default_knowledge
from cds_service.request.envelope import parse_envelope
from cds_service.settings import load_settings

LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
TOKEN = "s3cret-token-value"
TEMPLATES = prefetch_templates(default_knowledge())


def observation(id_, code, when):
    return {"resourceType": "Observation", "id": id_, "status": "final", "subject": {"reference": "Patient/p1"},
            "code": {"coding": [{"system": LOINC, "code": code}]}, "effectiveDateTime": when,
            "valueQuantity": {"value": 1.0}}


def condition(id_, code="203082005"):
    return {"resourceType": "Condition", "id": id_, "subject": {"reference": "Patient/p1"},
            "clinicalStatus": {"coding": [{"code": "active"}]}, "code": {"coding": [{"system": SNOMED, "code": code}]}}


def medication_request(id_, medication):
    return {"resourceType": "MedicationRequest", "id": id_, "status": "active", "intent": "order",
            "subject": {"reference": "Patient/p1"}, **medication}


PATIENT = {"resourceType": "Patient", "id": "p1", "gender": "female", "birthDate": "1960-05-01"}
RESOURCES = [
    PATIENT,
    observation("scr1", "2160-0", "2024-05-01T08:00:00Z"),
    observation("wt1", "29463-7", "2024-05-01T08:00:00Z"),
    observation("bp1", "85354-9", "2024-05-02T08:00:00Z"),
    observation("hr1", "8867-4", "2024-05-02T08:00:00Z"),
    observation("alt1", "1742-6", "2024-05-03T08:00:00Z"),
    condition("c1"),
    medication_request("mr1", {"medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": "10689"}]}}),
    {"resourceType": "MedicationStatement", "id": "ms1", "status": "active", "subject": {"reference": "Patient/p1"},
     "medicationCodeableConcept": {"text": "sertraline"}},
    {"resourceType": "Procedure", "id": "pr1", "status": "completed", "subject": {"reference": "Patient/p1"},
     "code": {"coding": [{"system": SNOMED, "code": "265764009"}]}},
]


ERROR = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "timeout"}]}


def settings(**overrides):
    return load_settings(environ={}, overrides={"fhir_deadline_seconds": 3.0, "fhir_timeout_seconds": 2.0,
                                                "fhir_max_pages": 5, **overrides})


@pytest.fixture
def make_source():
    sources = []

    def make(**overrides):
        sources.append(ChartSource(settings(**overrides)))
        return sources[-1]
    yield make
    for source in sources:
        source.close()


@pytest.fixture
def stub():
    with FhirStub(RESOURCES) as fhir:
        yield fhir


def envelope(prefetch=None, fhir_server=None, token=None, patient_id="p1", hook="order-sign"):
    data = {"hook": hook, "hookInstance": "h-1", "context": {
        "patientId": patient_id, "userId": "Practitioner/u1",
        "draftOrders": {"resourceType": "Bundle", "entry": []}}, "prefetch": prefetch or {}}
    if fhir_server is not None:
        data["fhirServer"] = fhir_server
    if token is not None:
        data["fhirAuthorization"] = {"access_token": token, "token_type": "Bearer", "expires_in": 300,
                                     "scope": "patient/*.read", "subject": "cds"}
    return parse_envelope(data, hook)


def only(*keys):
    return {key: TEMPLATES[key] for key in keys}


def paths(fhir):
    return sorted(r.path.removeprefix("/fhir/") for r in fhir.requests)


def reasons(chart):
    return {u.key: u.reason for u in chart.unavailable}


def ids(chart, resource_type):
    return sorted(r["id"] for r in chart.of_type(resource_type))


def searchset(*resources):
    return {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": r} for r in resources]}


# -- prefetch states ---------------------------------------------------------------------------

def test_each_prefetch_state(stub, make_source):
    prefetch = {
        "patient": PATIENT,                                     # resource: used
        "renalLabs": None,                                      # null: known empty, not re-queried
        # bodyMeasures absent: fetched
        "vitalSigns": ERROR,                                    # OperationOutcome: fetched
        "conditions": {"resourceType": "Bundle", "type": "searchset",
                       "entry": [{"resource": ERROR, "search": {"mode": "outcome"}}]},  # OO in a Bundle: fetched
        "medicationRequests": searchset(),                      # empty Bundle: used
    }
    keys = ("patient", "renalLabs", "bodyMeasures", "vitalSigns", "conditions", "medicationRequests")
    chart = make_source().gather(envelope(prefetch, stub.base_url), only(*keys))

    assert paths(stub) == ["Condition", "Observation", "Observation"]
    codes = sorted(r.query["code"][0] for r in stub.requests if r.path.endswith("Observation"))
    assert codes == sorted([f"{LOINC}|29463-7,{LOINC}|3141-9,{LOINC}|8302-2",
                            f"{LOINC}|85354-9,{LOINC}|8480-6,{LOINC}|8462-4,{LOINC}|8867-4"])
    assert all(r.query["patient"] == ["p1"] for r in stub.requests)
    assert chart.patient == PATIENT
    assert ids(chart, "Observation") == ["bp1", "hr1", "wt1"]       # no scr1: renalLabs was null
    assert ids(chart, "Condition") == ["c1"] and ids(chart, "MedicationRequest") == []
    assert chart.unavailable == ()


def test_no_fhir_server_reports_unusable_keys(make_source):
    chart = make_source().gather(envelope({"patient": PATIENT, "vitalSigns": ERROR}),
                                 only("patient", "vitalSigns", "conditions"), ["Medication/m9"])
    assert chart.patient == PATIENT
    assert reasons(chart) == {"vitalSigns": "the EHR sent an error for it, and no FHIR server was given",
                              "conditions": "it was not prefetched, and no FHIR server was given",
                              "Medication/m9": "no FHIR server was given"}


@pytest.mark.parametrize("server", ["ftp://127.0.0.1:{port}/fhir", "file:///etc/passwd", "127.0.0.1:{port}/fhir",
                                    "javascript:alert(1)"])
def test_non_http_fhir_server_is_never_contacted(stub, make_source, server):
    port = stub.base_url.split(":")[2].split("/")[0]
    chart = make_source().gather(envelope({}, server.format(port=port), TOKEN), only("patient", "conditions"))
    assert stub.requests == []
    assert chart.patient is None
    assert reasons(chart) == {k: "it was not prefetched, and fhirServer is not an http(s) URL"
                              for k in ("patient", "conditions")}


@pytest.mark.parametrize("server", ["http://user:pw@127.0.0.1:{port}/fhir", "http://127.0.0.1:{port}/fhir?x=1"])
def test_fhir_server_with_credentials_or_query_is_never_contacted(stub, make_source, server):
    port = stub.base_url.split(":")[2].split("/")[0]
    chart = make_source().gather(envelope({}, server.format(port=port), TOKEN), only("patient"))
    assert stub.requests == [] and chart.patient is None
    assert reasons(chart) == {"patient": "it was not prefetched, and fhirServer is not a plain base URL "
                                         "(it has credentials, a query or a fragment)"}


# -- parallel fetching and the deadline ----------------------------------------------------------

def test_queries_run_in_parallel(stub, make_source):
    stub.set_fault("latency", delay=0.3)
    keys = ("patient", "renalLabs", "bodyMeasures", "vitalSigns", "conditions")
    chart = make_source().gather(envelope({}, stub.base_url), only(*keys))

    assert chart.unavailable == () and chart.patient == PATIENT
    assert len(stub.requests) == 5
    # all five were in flight at the same moment: the last to start started before the first to finish
    last_start = max(r.started for r in stub.requests)
    first_finish = min(r.finished for r in stub.requests)
    assert last_start < first_finish, f"queries did not overlap (spread {last_start - first_finish:.3f} s)"


def test_deadline_holds_when_the_server_hangs(stub, make_source):
    deadline = 0.5
    stub.set_fault("hang", match="Condition")
    source = make_source(fhir_deadline_seconds=deadline, fhir_timeout_seconds=5.0)
    started = time.monotonic()
    chart = source.gather(envelope({}, stub.base_url), only("patient", "vitalSigns", "conditions"))
    elapsed = time.monotonic() - started

    assert elapsed < deadline + 0.5, f"gather took {elapsed:.3f} s"
    assert reasons(chart) == {"conditions": "FHIR server timed out"}
    assert chart.patient == PATIENT and ids(chart, "Observation") == ["bp1", "hr1"]


def test_a_server_that_trickles_bytes_is_cut_off_at_the_deadline(stub, make_source):
    deadline = 0.5
    stub.set_fault("trickle", delay=0.1, match="Condition")
    source = make_source(fhir_deadline_seconds=deadline, fhir_timeout_seconds=5.0)
    started = time.monotonic()
    chart = source.gather(envelope({}, stub.base_url), only("patient", "conditions"))
    assert time.monotonic() - started < deadline + 0.5
    assert reasons(chart) == {"conditions": "FHIR server timed out"}


def test_an_abandoned_trickling_query_ends_at_the_deadline_and_frees_its_thread(stub):
    # each read gets a byte within the 5 s read timeout, so only the deadline check can stop it
    stub.set_fault("trickle", delay=0.1)
    session = new_session(2)
    started = time.monotonic()
    with pytest.raises(fhir_fetch.FhirUnavailable, match="timed out"):
        fhir_fetch.fetch(session, stub.base_url, f"{stub.base_url}/Condition?patient=p1", token=None, expect="Bundle",
                         timeout=5.0, deadline=started + 0.5, max_pages=1)
    assert time.monotonic() - started < 1.0


@pytest.mark.parametrize("kind, status, reason", [
    ("status", 500, fhir_fetch.REFUSED),
    ("status", 503, fhir_fetch.REFUSED),
    ("status", 401, fhir_fetch.REFUSED),
    ("status", 403, fhir_fetch.REFUSED),
    ("garbage", 200, fhir_fetch.UNREADABLE),
    ("not_fhir", 200, fhir_fetch.UNREADABLE),
])
def test_a_failing_query_is_unavailable_and_the_others_arrive(stub, make_source, kind, status, reason):
    stub.set_fault(kind, status=status, match="Condition")
    chart = make_source().gather(envelope({}, stub.base_url, TOKEN), only("patient", "vitalSigns", "conditions"))
    assert reasons(chart) == {"conditions": reason}
    assert chart.patient == PATIENT and ids(chart, "Observation") == ["bp1", "hr1"]


def test_refused_connection(stub, make_source):
    stub.set_fault("refuse")
    chart = make_source().gather(envelope({"patient": PATIENT}, stub.base_url), only("patient", "conditions"))
    assert reasons(chart) == {"conditions": fhir_fetch.REFUSED}   # card text: no network detail (issue 13)
    assert chart.patient == PATIENT


def test_unknown_patient_leaves_the_chart_without_patient(stub, make_source):
    chart = make_source().gather(envelope({}, stub.base_url, patient_id="nobody"), only("patient", "conditions"))
    assert chart.patient is None
    assert reasons(chart) == {"patient": fhir_fetch.REFUSED}
    assert ids(chart, "Condition") == []            # an empty searchset: known empty, not unavailable


def test_a_search_answered_by_another_type_is_rejected(stub):
    with requests.Session() as session, pytest.raises(FhirUnavailable) as failure:
        fetch(session, stub.base_url, f"{stub.base_url}/Patient/p1", token=None, expect="Bundle",
              timeout=1.0, deadline=time.monotonic() + 1.0, max_pages=5)
    assert failure.value.reason == fhir_fetch.UNREADABLE
    assert failure.value.detail == "a Patient where a Bundle was expected"


# -- the bearer token ------------------------------------------------------------------------

def test_token_goes_only_to_the_fhir_server(make_source, caplog):
    conditions = [condition(f"c{i}") for i in range(1, 6)]
    with FhirStub([PATIENT, *conditions]) as elsewhere, \
            FhirStub([PATIENT, *conditions], page_size=2, required_token=TOKEN,
                     next_link_base=elsewhere.base_url) as fhir:
        with caplog.at_level(logging.DEBUG, logger="cds_service"):
            chart = make_source().gather(envelope({}, fhir.base_url, TOKEN), only("patient", "conditions"),
                                         [f"{elsewhere.base_url}/Medication/m1"])
        assert elsewhere.requests == []
        assert fhir.requests and all(r.headers["Authorization"] == f"Bearer {TOKEN}" for r in fhir.requests)
    assert chart.patient == PATIENT
    assert ids(chart, "Condition") == ["c1", "c2"]                  # the first page only
    assert reasons(chart) == {
        "conditions": "FHIR server's next page is on another server, so it was not read",
        "Medication/m1": "it is on another server than fhirServer, so it was not read"}
    ours = [r for r in caplog.records if r.name.startswith("cds_service")]
    logged = repr([(r.getMessage(), getattr(r, "fields", None)) for r in ours])
    assert "chart gathered" in logged
    assert TOKEN not in logged and "127.0.0.1" not in logged


def test_open_server_gets_no_authorization_header(stub, make_source):
    chart = make_source().gather(envelope({}, stub.base_url), only("patient", "conditions"))
    assert chart.unavailable == ()
    assert all("Authorization" not in r.headers for r in stub.requests)


def test_missing_or_wrong_token_is_401(make_source):
    with FhirStub([PATIENT], required_token=TOKEN) as fhir:
        chart = make_source().gather(envelope({}, fhir.base_url, "wrong"), only("patient"))
    assert chart.patient is None and reasons(chart) == {"patient": fhir_fetch.REFUSED}


# -- paging --------------------------------------------------------------------------------

@pytest.mark.parametrize("max_pages, expected_requests, complete", [(3, 3, False), (4, 4, True), (5, 4, True)])
def test_paging_follows_next_links_up_to_the_cap(make_source, max_pages, expected_requests, complete):
    conditions = [condition(f"c{i}") for i in range(1, 8)]            # 7 conditions, 2 a page: 4 pages
    with FhirStub(conditions, page_size=2) as fhir:
        chart = make_source(fhir_max_pages=max_pages).gather(envelope({}, fhir.base_url), only("conditions"))
        assert len(fhir.requests) == expected_requests
    assert len(chart.of_type("Condition")) == (7 if complete else 6)
    assert reasons(chart) == ({} if complete else {"conditions": "FHIR server had more pages than the "
                                                                 "service reads; the rest were not read"})


def test_a_paginated_prefetch_is_completed_from_the_server(make_source):
    conditions = [condition(f"c{i}") for i in range(1, 6)]
    with FhirStub(conditions, page_size=2) as fhir:
        first_page = requests.get(f"{fhir.base_url}/Condition", params={"patient": "p1"}, timeout=2).json()
        fhir.reset_log()
        chart = make_source().gather(envelope({"conditions": first_page}, fhir.base_url), only("conditions"))
        assert [r.query["_offset"] for r in fhir.requests] == [["2"], ["4"]]
    assert ids(chart, "Condition") == ["c1", "c2", "c3", "c4", "c5"] and chart.unavailable == ()


# -- medication references -----------------------------------------------------------------

def test_medication_references_are_read(make_source):
    medications = [{"resourceType": "Medication", "id": f"med{i}", "code": {"text": f"drug {i}"}} for i in (1, 2, 3)]
    with FhirStub([*medications]) as fhir:
        fhir.add(
            medication_request("mr1", {"medicationReference": {"reference": "Medication/med1"}}),
            medication_request("mr2", {"medicationReference": {"reference": "#in"},
                                       "contained": [{"resourceType": "Medication", "id": "in"}]}),
            medication_request("mr3", {"medicationReference": {"reference": f"{fhir.base_url}/Medication/med2"}}),
            medication_request("mr4", {"medicationReference": {"reference": "Medication/gone"}}),
            medication_request("mr5", {"medicationReference": {"reference": "Medication/med1"}}))  # read once
        statements = searchset({"resourceType": "MedicationStatement", "id": "ms1", "status": "active",
                                "subject": {"reference": "Patient/p1"},
                                "medicationReference": {"reference": "Medication/known"}},
                               {"resourceType": "Medication", "id": "known"})            # already in the chart
        chart = make_source().gather(
            envelope({"patient": PATIENT, "medicationStatements": statements}, fhir.base_url),
            only("patient", "medicationRequests", "medicationStatements"), ["Medication/med3"])
        assert paths(fhir) == ["Medication/gone", "Medication/med1", "Medication/med2", "Medication/med3",
                               "MedicationRequest"]
    assert sorted(chart.medications) == sorted(["Medication/known", "Medication/med1", "Medication/med2",
                                                f"{fhir.base_url}/Medication/med2", "Medication/med3"])
    assert chart.medications["Medication/med2"]["code"]["text"] == "drug 2"
    assert reasons(chart) == {"Medication/gone": fhir_fetch.REFUSED}


# -- caching -------------------------------------------------------------------------------

@pytest.mark.parametrize("cache_seconds", [0, 60])
def test_fetched_results_are_cached_only_when_enabled(stub, make_source, cache_seconds):
    source = make_source(chart_cache_seconds=cache_seconds)
    keys = only("patient", "vitalSigns", "conditions")
    first = source.gather(envelope({"conditions": searchset()}, stub.base_url, hook="order-select"), keys)
    assert paths(stub) == ["Observation", "Patient/p1"]
    stub.reset_log()
    second = source.gather(envelope({}, stub.base_url, hook="order-sign"), keys)
    if cache_seconds:
        assert paths(stub) == ["Condition"]           # only what was prefetched before is fetched now
    else:
        assert paths(stub) == ["Condition", "Observation", "Patient/p1"]
    assert second.patient == first.patient == PATIENT
    assert ids(second, "Observation") == ids(first, "Observation") == ["bp1", "hr1"]
    assert ids(second, "Condition") == ["c1"]
    stub.reset_log()
    source.gather(envelope({}, stub.base_url, patient_id="p2"), keys)   # another patient: never from the cache
    assert len(stub.requests) == 3


# -- end to end through HTTP -------------------------------------------------------------------

FIXTURES = Path(__file__).parent.parent / "fixtures"


def http_client(clock=None, **config):
    app = create_app({"require_jwt": False, "fhir_deadline_seconds": 1.0, "fhir_timeout_seconds": 0.5, **config},
                     **({"clock": clock} if clock else {}))
    return app.test_client()


def prefetched_resources(prefetch):
    """Every resource of a prefetch (Bundle entries unpacked, OperationOutcomes and nulls dropped)."""
    found = []
    for value in prefetch.values():
        if isinstance(value, dict):
            found += [e["resource"] for e in value.get("entry", [])] if value["resourceType"] == "Bundle" else [value]
    return [r for r in found if r.get("resourceType") != "OperationOutcome"]


def card_summary(response):
    assert response.status_code == 200, response.get_json()
    return sorted((c["source"]["topic"]["code"], c["indicator"]) for c in response.get_json()["cards"])


def service_path(request):
    return f"/cds-services/milnacipran-{request['hook']}"


def test_http_fhir_server_instead_of_prefetch():
    request = json.loads((FIXTURES / "requests" / "sandbox-order-sign.json").read_text())

    def clock():
        return datetime.datetime(2026, 11, 20, 12, tzinfo=datetime.UTC)
    with FhirStub(prefetched_resources(request["prefetch"])) as fhir:
        client = http_client(clock)
        with_prefetch = card_summary(client.post(service_path(request), json=request))
        fetched = card_summary(client.post(service_path(request), json={
            **{k: v for k, v in request.items() if k != "prefetch"}, "fhirServer": fhir.base_url}))
        assert len(fhir.requests) == len(request["prefetch"])
    assert fetched == with_prefetch


@pytest.mark.parametrize("code, milnacipran", [("833146", True), ("312941", False)])
def test_http_a_draft_medication_known_only_to_the_fhir_server(code, milnacipran):
    """Epic-style: medicationReference to a Medication that is neither in the Bundle nor named."""
    request = json.loads((FIXTURES / "requests" / "sandbox-order-sign.json").read_text())
    draft = request["context"]["draftOrders"]["entry"][0]["resource"]
    del draft["medicationCodeableConcept"]
    draft["medicationReference"] = {"reference": "Medication/eMed.1"}
    medication = {"resourceType": "Medication", "id": "eMed.1", "code": {"coding": [{"system": RXNORM, "code": code}]}}
    with FhirStub([medication]) as fhir:
        response = http_client().post(service_path(request), json={**request, "fhirServer": fhir.base_url})
        paths = [r.path for r in fhir.requests]
    assert response.status_code == 200
    assert paths == ["/fhir/Medication/eMed.1"]  # the chart itself was prefetched; nothing else was asked
    cards = response.get_json()["cards"]
    assert bool(cards) == milnacipran


@pytest.mark.parametrize("server", ["not found", "refusing", "hanging", "none"])
def test_http_412_when_the_patient_cannot_be_had(server):
    request = json.loads((FIXTURES / "requests" / "sandbox-order-sign.json").read_text())
    request = {**request, "prefetch": {k: v for k, v in request["prefetch"].items() if k != "patient"}}
    request.pop("fhirServer")
    with FhirStub(prefetched_resources(request["prefetch"])) as fhir:   # every resource but the Patient
        if server == "refusing":
            fhir.set_fault("refuse")
        elif server == "hanging":
            fhir.set_fault("hang", match="Patient")
        if server != "none":
            request["fhirServer"] = fhir.base_url
        started = time.monotonic()
        response = http_client().post(service_path(request), json=request)
        elapsed = time.monotonic() - started
    assert response.status_code == 412
    body = response.get_json()
    assert body["resourceType"] == "OperationOutcome" and body["issue"][0]["severity"] == "error"
    assert elapsed < 1.0 + 0.5


# -- every scenario, with its prefetch served by a FHIR server instead ---------------------------

@pytest.fixture(scope="module")
def scenario_server():
    with FhirStub() as fhir:
        yield fhir


def failing_query_match(key: str) -> str:
    """A fault ``match`` that hits the query of ``key`` and no other key's."""
    template = TEMPLATES[key]
    resource_type = template.split("?")[0].split("/")[0]
    shared = [k for k in TEMPLATES if k != key and TEMPLATES[k].startswith(resource_type)]
    return template.split("code=")[1].split(",")[0] if shared else resource_type


@pytest.mark.parametrize("path", SCENARIOS, ids=[path.stem for path in SCENARIOS])
def test_scenario_from_fhir_server(path, scenario_server):
    scenario = load_scenario(path)
    request = scenario.request
    prefetch = request.get("prefetch") or {}
    unusable = [key for key in TEMPLATES if not usable_prefetch(prefetch, key)[0]]
    assert len(unusable) <= 1, "the stub can fail one key's query at a time"
    scenario_server.clear()
    scenario_server.reset_log()
    scenario_server.add(*prefetched_resources(prefetch))
    # a key the scenario leaves unusable stays unusable: its query fails on the server
    scenario_server.set_fault(*(("status",) if unusable else ()), status=503,
                              match=failing_query_match(unusable[0]) if unusable else None)
    stripped = {**{k: v for k, v in request.items() if k != "prefetch"}, "fhirServer": scenario_server.base_url}

    assert_expected_cards(run_scenario(scenario, stripped), scenario.expected)
    assert len(scenario_server.requests) >= len(TEMPLATES)

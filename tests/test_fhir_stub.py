"""Tests of the FHIR test server in tests/fhir_stub.py."""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

try:  # tests/ has no __init__.py today (pytest puts tests/ on sys.path); tolerate one being added
    from fhir_stub import FhirStub
except ImportError:  # pragma: no cover
    from tests.fhir_stub import FhirStub

LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"


def obs(id_, code, when, patient="p1", system=LOINC, category="laboratory"):
    return {"resourceType": "Observation", "id": id_, "status": "final",
            "subject": {"reference": f"Patient/{patient}"},
            "category": [{"coding": [{"code": category}]}],
            "code": {"coding": [{"system": system, "code": code}]}, "effectiveDateTime": when}


RESOURCES = [
    {"resourceType": "Patient", "id": "p1", "gender": "female"},
    {"resourceType": "Patient", "id": "p2", "gender": "male"},
    obs("cr1", "2160-0", "2024-01-10T08:00:00Z"),
    obs("cr2", "2160-0", "2024-03-05T23:30:00-05:00"),  # 2024-03-06T04:30Z
    obs("cr3", "2160-0", "2024-06-01"),
    obs("cr-other", "2160-0", "2024-05-01T00:00:00Z", patient="p2"),
    obs("hr1", "8867-4", "2024-02-01T10:00:00Z", category="vital-signs"),
    obs("local1", "2160-0", "2024-02-02T10:00:00Z", system="urn:local"),
    {"resourceType": "Condition", "id": "c1", "subject": {"reference": "Patient/p1"},
     "clinicalStatus": {"coding": [{"code": "active"}]}, "code": {"coding": [{"system": SNOMED, "code": "203082005"}]}},
    {"resourceType": "Condition", "id": "c2", "subject": {"reference": "Patient/p1"},
     "clinicalStatus": {"coding": [{"code": "resolved"}]}, "code": {"coding": [{"system": SNOMED, "code": "38341003"}]}},
    {"resourceType": "MedicationRequest", "id": "m1", "status": "active", "subject": {"reference": "Patient/p1"},
     "authoredOn": "2024-04-01", "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": "1"}]}},
    {"resourceType": "MedicationRequest", "id": "m2", "status": "stopped", "subject": {"reference": "p1"},
     "authoredOn": "2023-04-01", "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": "2"}]}},
    {"resourceType": "AllergyIntolerance", "id": "a1", "patient": {"reference": "Patient/p1"}},
]


@pytest.fixture
def fhir():
    with FhirStub(RESOURCES) as stub:
        yield stub


def search(stub, rtype, params=None, **kw):
    resp = requests.get(f"{stub.base_url}/{rtype}", params=params, timeout=2, **kw)
    assert resp.status_code == 200, resp.text
    bundle = resp.json()
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "searchset"
    return bundle


def ids(bundle):
    return [e["resource"]["id"] for e in bundle.get("entry", [])]


def test_metadata_and_read(fhir):
    assert fhir.base_url.startswith("http://127.0.0.1:") and fhir.base_url.endswith("/fhir")
    meta = requests.get(f"{fhir.base_url}/metadata", timeout=2).json()
    assert meta["resourceType"] == "CapabilityStatement" and meta["fhirVersion"] == "4.0.1"
    resp = requests.get(f"{fhir.base_url}/Patient/p1", timeout=2)
    assert resp.status_code == 200 and resp.headers["Content-Type"] == "application/fhir+json"
    assert resp.json()["gender"] == "female"
    missing = requests.get(f"{fhir.base_url}/Patient/nope", timeout=2)
    assert missing.status_code == 404 and missing.json()["resourceType"] == "OperationOutcome"


def test_search_by_patient_and_code(fhir):
    bundle = search(fhir, "Observation", {"patient": "p1", "code": f"{LOINC}|2160-0"})
    assert sorted(ids(bundle)) == ["cr1", "cr2", "cr3"] and bundle["total"] == 3
    entry = bundle["entry"][0]
    assert entry["search"]["mode"] == "match"
    assert entry["fullUrl"] == f"{fhir.base_url}/Observation/{entry['resource']['id']}"
    assert bundle["link"][0]["relation"] == "self"
    # bare code matches any system; OR list; "Patient/<id>" and `subject` accepted
    assert sorted(ids(search(fhir, "Observation", {"subject": "Patient/p1", "code": "2160-0"}))) == [
        "cr1", "cr2", "cr3", "local1"]
    assert sorted(ids(search(fhir, "Observation", {"patient": "p1", "code": f"{LOINC}|8867-4,urn:local|2160-0"}))) == [
        "hr1", "local1"]
    assert ids(search(fhir, "MedicationRequest", {"patient": "p1", "code": f"{RXNORM}|2"})) == ["m2"]
    assert ids(search(fhir, "AllergyIntolerance", {"patient": "p1"})) == ["a1"]
    assert ids(search(fhir, "Observation", {"patient": "p1", "category": "vital-signs"})) == ["hr1"]
    assert ids(search(fhir, "Observation", {"_id": "cr2", "unknown-param": "x"})) == ["cr2"]


def test_status_filters(fhir):
    assert ids(search(fhir, "MedicationRequest", {"patient": "p1", "status": "active"})) == ["m1"]
    assert sorted(ids(search(fhir, "MedicationRequest", {"status": "active,stopped"}))) == ["m1", "m2"]
    assert ids(search(fhir, "Condition", {"patient": "p1", "clinical-status": "active"})) == ["c1"]


def test_date_filters(fhir):
    q = {"patient": "p1", "code": "2160-0"}
    assert sorted(ids(search(fhir, "Observation", {**q, "date": ["ge2024-02-01", "le2024-05-31"]}))) == [
        "cr2", "local1"]
    # date-only values compare at day precision on the date as written
    assert ids(search(fhir, "Observation", {**q, "date": "2024-03-05"})) == ["cr2"]
    # dateTime values compare instants (cr2 is 04:30Z on the 6th); date-only resources start at midnight UTC
    assert sorted(ids(search(fhir, "Observation", {**q, "date": "gt2024-03-06T04:00:00Z"}))) == ["cr2", "cr3"]
    assert ids(search(fhir, "MedicationRequest", {"date": "lt2024-01-01"})) == ["m2"]
    bad = requests.get(f"{fhir.base_url}/Observation", params={"date": "ge-not-a-date"}, timeout=2)
    assert bad.status_code == 400 and bad.json()["resourceType"] == "OperationOutcome"


def test_sort_desc_with_count_one(fhir):
    bundle = search(fhir, "Observation", {"patient": "p1", "code": f"{LOINC}|2160-0", "_sort": "-date", "_count": 1})
    assert ids(bundle) == ["cr3"] and bundle["total"] == 3
    assert ids(search(fhir, "Observation", {"patient": "p1", "code": "2160-0", "_sort": "date"})) == [
        "cr1", "local1", "cr2", "cr3"]


def test_paging_follows_next_links_to_the_end():
    with FhirStub(RESOURCES, page_size=2) as stub:
        url, params, seen, pages = f"{stub.base_url}/Observation", {"patient": "p1", "_sort": "date"}, [], 0
        while url:
            bundle = requests.get(url, params=params, timeout=2).json()
            params, pages = None, pages + 1
            seen += ids(bundle)
            assert bundle["total"] == 5
            url = next((link["url"] for link in bundle["link"] if link["relation"] == "next"), None)
            assert url is None or url.startswith(f"{stub.base_url}/Observation?")
        assert pages == 3 and seen == ["cr1", "hr1", "local1", "cr2", "cr3"]
        # explicit _count overrides the default page size; next_link_base redirects next links
        stub.next_link_base = "http://elsewhere.example/fhir"
        bundle = search(stub, "Observation", {"patient": "p1", "_count": 4})
        assert len(bundle["entry"]) == 4
        nxt = [link["url"] for link in bundle["link"] if link["relation"] == "next"]
        assert len(nxt) == 1 and nxt[0].startswith("http://elsewhere.example/fhir/Observation?")
        assert "_offset=4" in nxt[0]


def test_required_token():
    with FhirStub(RESOURCES, required_token="s3cret") as stub:
        url = f"{stub.base_url}/Patient/p1"
        assert requests.get(url, timeout=2).status_code == 401
        wrong = requests.get(url, headers={"Authorization": "Bearer nope"}, timeout=2)
        assert wrong.status_code == 401 and wrong.json()["resourceType"] == "OperationOutcome"
        assert requests.get(url, headers={"Authorization": "Bearer s3cret"}, timeout=2).status_code == 200
        assert requests.get(f"{stub.base_url}/metadata", timeout=2).status_code == 200
        assert stub.requests[2].headers["AUTHORIZATION"] == "Bearer s3cret"
        assert stub.requests[2].headers.get("authorization") == "Bearer s3cret"


def test_request_log(fhir):
    search(fhir, "Observation", {"patient": "p1", "code": "a,b"})
    (rec,) = fhir.requests
    assert rec.method == "GET" and rec.path == "/fhir/Observation"
    assert rec.query == {"patient": ["p1"], "code": ["a,b"]}
    assert rec.started <= rec.finished
    fhir.reset_log()
    assert fhir.requests == []


def test_fault_latency_and_match(fhir):
    fhir.set_fault("latency", delay=0.2, match="Observation")
    t0 = time.monotonic()
    search(fhir, "Observation", {"patient": "p1"})
    assert time.monotonic() - t0 >= 0.2
    t0 = time.monotonic()
    requests.get(f"{fhir.base_url}/Patient/p1", timeout=2).raise_for_status()
    assert time.monotonic() - t0 < 0.15  # match did not apply


@pytest.mark.parametrize("status", [500, 401, 403, 404])
def test_fault_status(fhir, status):
    fhir.set_fault("status", status=status)
    resp = requests.get(f"{fhir.base_url}/Patient/p1", timeout=2)
    assert resp.status_code == status and resp.json()["resourceType"] == "OperationOutcome"
    fhir.set_fault(None)
    assert requests.get(f"{fhir.base_url}/Patient/p1", timeout=2).status_code == 200


def test_fault_garbage_and_not_fhir(fhir):
    fhir.set_fault("garbage")
    resp = requests.get(f"{fhir.base_url}/Patient/p1", timeout=2)
    assert resp.status_code == 200 and resp.headers["Content-Type"] == "application/fhir+json"
    with pytest.raises(ValueError):
        resp.json()
    fhir.set_fault("not_fhir")
    assert requests.get(f"{fhir.base_url}/Patient/p1", timeout=2).json() == {"hello": "world"}


def test_fault_hang_times_out_and_stop_is_prompt():
    stub = FhirStub(RESOURCES).start()
    stub.set_fault("hang")
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.get(f"{stub.base_url}/Patient/p1", timeout=(1, 0.3))
    assert len(stub.requests) == 1
    t0 = time.monotonic()
    stub.stop()
    assert time.monotonic() - t0 < 2


def test_fault_refuse(fhir):
    fhir.set_fault("refuse")
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(f"{fhir.base_url}/Patient/p1", timeout=1)
    fhir.stop()  # idempotent after refuse


def test_concurrent_requests_overlap(fhir):
    fhir.set_fault("latency", delay=0.3)
    urls = [f"{fhir.base_url}/Observation?patient=p1", f"{fhir.base_url}/Condition?patient=p1"]
    with ThreadPoolExecutor(2) as pool:
        for resp in pool.map(lambda u: requests.get(u, timeout=2), urls):
            assert resp.status_code == 200
    a, b = fhir.requests
    assert a.started < b.finished and b.started < a.finished

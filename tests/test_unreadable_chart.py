"""Unreadable is not empty (issue 13): chart data that cannot be read as what its key promises makes
that key unavailable, and the data-availability card names the checks that are blind."""

import copy
import datetime

import pytest
from shape_server import ShapeServer
from shape_server import json_answer

from cds_service import create_app
from cds_service.chart.source import read_prefetch
from cds_service.scenario import build_request

NOW = datetime.datetime(2026, 11, 20, 15, tzinfo=datetime.UTC)
FACTS = {"age": 45, "sex": "female", "weight_kg": 70, "height_cm": 165, "creatinine_mg_dl": 0.8,
         "medications": ["phenelzine"]}
BLIND = "MAOI, linezolid and methylene blue"
REQUEST = build_request(NOW, FACTS)
PHENELZINE = REQUEST["prefetch"]["medicationRequests"]["entry"][0]["resource"]


def searchset(*entries, **extra):
    return {"resourceType": "Bundle", "type": "searchset", "entry": list(entries), **extra}


OBSERVATION = {"resourceType": "Observation", "id": "o1", "status": "final", "code": {"text": "weight"}}
DSTU2_ORDER = {"resourceType": "MedicationOrder", "id": "mo1", "status": "active",
               "medicationCodeableConcept": PHENELZINE["medicationCodeableConcept"]}
ERROR = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "too-costly"}]}

UNREADABLE_MEDICATIONS = {
    "observations answer the search": searchset({"resource": OBSERVATION}),
    "entries without resource": searchset({"fullUrl": "MedicationRequest/x"}, {"fullUrl": "MedicationRequest/y"}),
    "DSTU2 MedicationOrder entries": searchset({"resource": DSTU2_ORDER}),
    "a total with no entries": {"resourceType": "Bundle", "type": "searchset", "total": 3},
    "a total larger than the entries": searchset({"resource": PHENELZINE}, total=2),
    "a total of 0 with entries": searchset({"resource": PHENELZINE}, total=0),
    "a total that is not a count": searchset(total="1"),
    "entries that are not a list": {"resourceType": "Bundle", "entry": {"resource": PHENELZINE}},
    "an entry that is not an object": searchset("MedicationRequest/x"),
    "an error among the results": searchset({"resource": PHENELZINE}, {"resource": ERROR}),
    "a resource of another type": {"resourceType": "Patient", "id": "p"},
    "not a FHIR resource": {"entry": [{"resource": PHENELZINE}]},
    "a string": "no medications",
    "a list": [PHENELZINE],
    "a number": 0,
}
READABLE_EMPTY = {
    "null": None,
    "an empty searchset": searchset(),
    "a searchset with total 0": {"resourceType": "Bundle", "type": "searchset", "total": 0},
    "an informational OperationOutcome only": searchset(
        {"resource": {"resourceType": "OperationOutcome", "issue": [{"severity": "information", "code": "informational"}]},
         "search": {"mode": "outcome"}}),
}


@pytest.fixture(scope="module")
def client():
    return create_app({"require_jwt": False, "log_level": "ERROR", "fhir_deadline_seconds": 1.0},
                      clock=lambda: NOW).test_client()


def cards_for(client, request):
    response = client.post("/cds-services/milnacipran-order-sign", json=request)
    assert response.status_code == 200, response.get_json()
    return {card["source"]["topic"]["code"]: card for card in response.get_json()["cards"]}


def with_medications(value):
    request = copy.deepcopy(REQUEST)
    request["prefetch"]["medicationRequests"] = copy.deepcopy(value)
    return request


def test_the_readable_list_gives_the_maoi_card(client):
    cards = cards_for(client, REQUEST)
    assert cards["maoi-contraindication"]["indicator"] == "critical"
    assert "data-availability" not in cards


def _dated(where, value):
    request = copy.deepcopy(REQUEST)
    if where == "creatinine":
        request["prefetch"]["renalLabs"]["entry"][0]["resource"]["effectiveDateTime"] = value
    elif where == "phenelzine":
        request["prefetch"]["medicationRequests"]["entry"][0]["resource"]["authoredOn"] = value
    else:
        request["context"]["draftOrders"]["entry"][0]["resource"]["authoredOn"] = value
    return request


@pytest.mark.parametrize("value", ["9999-12-31T23:59:59-12:00", "0001-01-01T00:00:00+01:00", "9999-12-31", "9999",
                                   "0001"])
@pytest.mark.parametrize("where", ["creatinine", "phenelzine", "draft"])
def test_a_date_at_the_edge_of_the_calendar_costs_that_date_only(client, where, value):
    cards = cards_for(client, _dated(where, value))
    assert cards["maoi-contraindication"]["indicator"] == "critical"
    assert not [card["summary"] for card in cards.values() if "could not run" in card["summary"]]


@pytest.mark.parametrize("shape", UNREADABLE_MEDICATIONS, ids=list(UNREADABLE_MEDICATIONS))
def test_an_unreadable_medication_prefetch_names_the_blind_checks(client, shape):
    cards = cards_for(client, with_medications(UNREADABLE_MEDICATIONS[shape]))
    card = cards["data-availability"]
    assert card["indicator"] == "warning"
    assert BLIND in card["summary"] and BLIND in card["detail"]
    assert "medicationRequests" in card["detail"] and "could not be read" in card["detail"]


@pytest.mark.parametrize("shape", READABLE_EMPTY, ids=list(READABLE_EMPTY))
def test_only_a_readable_empty_result_means_none(client, shape):
    cards = cards_for(client, with_medications(READABLE_EMPTY[shape]))
    assert "data-availability" not in cards and "maoi-contraindication" not in cards


@pytest.mark.parametrize("shape", [s for s in UNREADABLE_MEDICATIONS
                                   if isinstance(UNREADABLE_MEDICATIONS[s], dict)
                                   and "resourceType" in UNREADABLE_MEDICATIONS[s]],
                         ids=lambda s: s)
def test_an_unreadable_search_answer_from_the_fhir_server_names_the_blind_checks(client, shape):
    request = copy.deepcopy(REQUEST)
    del request["prefetch"]["medicationRequests"]
    with ShapeServer({"MedicationRequest": json_answer(UNREADABLE_MEDICATIONS[shape])}) as server:
        cards = cards_for(client, {**request, "fhirServer": server.base_url})
        assert server.hits == {"MedicationRequest": 1}
    card = cards["data-availability"]
    assert card["indicator"] == "warning" and BLIND in card["summary"]
    assert "FHIR server sent data the service could not read" in card["detail"]


def test_an_unreadable_prefetch_is_asked_again_of_the_fhir_server(client):
    request = with_medications(UNREADABLE_MEDICATIONS["DSTU2 MedicationOrder entries"])
    with ShapeServer({"MedicationRequest": json_answer(searchset({"resource": PHENELZINE}))}) as server:
        cards = cards_for(client, {**request, "fhirServer": server.base_url})
    assert cards["maoi-contraindication"]["indicator"] == "critical"
    assert "data-availability" not in cards


@pytest.mark.parametrize("key, value, why", [
    ("patient", {"resourceType": "Observation"}, "the prefetched value is a Observation where a Patient was expected"),
    ("renalLabs", searchset({"resource": PHENELZINE}), "a MedicationRequest among the Observation results"),
    ("conditions", searchset({"resource": {"resourceType": "Condition"}, "search": {"mode": "match"}},
                             {"resource": {"resourceType": "Patient"}, "search": {"mode": "include"}}), None),
    ("medicationRequests", searchset({"resource": PHENELZINE}, {"resource": {"resourceType": "Medication"}}), None),
])
def test_what_each_key_promises(key, value, why):
    from cds_service.chart.prefetch import prefetch_templates
    from cds_service.knowledge import default_knowledge
    template = prefetch_templates(default_knowledge())[key]
    state, _, reason = read_prefetch({key: value}, key, template)
    assert (state, reason) == (("unreadable", why) if why else ("usable", None))

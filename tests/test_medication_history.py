"""Medication history: status, stop instant (kb §0.5 Decision 4), routes; and what the MAOI rules make of it."""

import datetime

import pytest
from builders import MATCHER
from builders import NOW
from builders import POLICY
from builders import orders
from builders import run_rules
from builders import snapshot

from cds_service.rules import maoi_washout
from cds_service.scenario import load_scenario
from cds_service.snapshot.medication_history import read_medications
from cds_service.snapshot.medication_history import stop_instant

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
UTC = datetime.timezone.utc


def request(status="stopped", medication=None, **fields):
    return {"resourceType": "MedicationRequest", "id": "m", "status": status, "intent": "order",
            "subject": {"reference": "Patient/p1"},
            "medicationCodeableConcept": medication or {"coding": [{"system": RXNORM, "code": "8123"}]}, **fields}


def bounded(*periods, **repeat):
    return [{"timing": {"repeat": {"boundsPeriod": period, **repeat}}} for period in periods]


@pytest.mark.parametrize("resource, expected", [
    # a tapered order: the LATEST end of its dosage lines counts
    (request(dosageInstruction=bounded({"start": "2026-10-01", "end": "2026-11-01"},
                                       {"start": "2026-11-02", "end": "2026-11-15T10:00:00Z"})),
     datetime.datetime(2026, 11, 15, 10, tzinfo=UTC)),
    (request(effectivePeriod={"end": "2026-11-10T08:00:00Z"}), datetime.datetime(2026, 11, 10, 8, tzinfo=UTC)),
    # a course: start + boundsDuration, a date-only start counted from the end of its day (UTC-12)
    (request(authoredOn="2026-11-10", dosageInstruction=[{"timing": {"repeat": {
        "boundsDuration": {"value": 10, "code": "d"}, "frequency": 2, "period": 1, "periodUnit": "d"}}}]),
     datetime.datetime(2026, 11, 21, 12, tzinfo=UTC)),
    # the last timing.event
    (request(dosageInstruction=[{"timing": {"event": ["2026-11-18T09:00:00Z", "2026-11-19T17:40:00Z"]}}]),
     datetime.datetime(2026, 11, 19, 17, 40, tzinfo=UTC)),
    # a single dose: count 1, the start
    (request(authoredOn="2026-11-19T17:25:00Z", dosageInstruction=[{"timing": {"repeat": {"count": 1}}}]),
     datetime.datetime(2026, 11, 19, 17, 25, tzinfo=UTC)),
    # a statement's effectiveDateTime says when it was taken, not that it ended (the MAOI rule uses both)
    ({"resourceType": "MedicationStatement", "id": "s", "status": "completed", "effectiveDateTime": "2026-11-15",
      "medicationCodeableConcept": {"text": "phenelzine"}}, None),
    (request(), None),
])
def test_stop_instant(resource, expected):
    assert stop_instant(resource) == expected


def maoi_cards(*resources):
    uses, _ = read_medications(resources, [], MATCHER, {})
    findings = run_rules(maoi_washout, orders(), snapshot(medications=uses))
    return [(f.rule_id, f.indicator) for f in findings]


@pytest.mark.parametrize("resources, expected", [
    # the reference's own example (Decision 6): a completed order, IV methylene blue dose yesterday
    ((request("completed", {"coding": [{"system": RXNORM, "code": "6878"}]}, authoredOn="2026-11-19T17:25:00Z",
              dosageInstruction=[{"route": {"text": "Intravenous"}, "timing": {"repeat": {"count": 1}}}]),),
     [("M3", "critical")]),
    ((request("completed", {"coding": [{"system": RXNORM, "code": "190376"}]}, authoredOn="2026-11-10",
              dosageInstruction=[{"timing": {"repeat": {"boundsDuration": {"value": 10, "code": "d"}}}}]),),
     [("M2", "critical")]),
    ((request("completed", {"coding": [{"system": RXNORM, "code": "190376"}]}, authoredOn="2026-11-12"),),
     [("M2u", "warning")]),                                           # no end at all: confirm the last dose
    ((request("completed", {"coding": [{"system": RXNORM, "code": "190376"}]}, authoredOn="2026-09-01"),), []),
    ((request("completed", {"text": "methylene blue 50 mg/10 mL injection"}, authoredOn="2026-11-12",
              dosageInstruction=[{"route": {"text": "Intravenous"}}]),),
     [("M3u", "warning")]),                                           # IV methylene blue, no end: confirm the last dose
    (({"resourceType": "MedicationStatement", "id": "s", "status": "completed", "effectiveDateTime": "2026-11-15",
       "medicationCodeableConcept": {"text": "phenelzine 15 mg"}},), [("M1", "critical")]),
    ((request(dosageInstruction=bounded({"end": "2026-11-01"}, {"end": "2026-11-15"})),), [("M1", "critical")]),
    # taken in June, but asserted stopped 3 days ago with no end date: Decision 4 -> inside
    (({"resourceType": "MedicationStatement", "id": "s", "status": "completed", "effectiveDateTime": "2026-06-01",
       "dateAsserted": "2026-11-17", "medicationCodeableConcept": {"text": "phenelzine 15 mg"}},), [("M1", "critical")]),
    # a linezolid course from a date-only start
    ((request("completed", {"coding": [{"system": RXNORM, "code": "190376"}]}, authoredOn="2026-11-01",
              dosageInstruction=[{"timing": {"repeat": {"count": 20, "frequency": 2, "period": 1, "periodUnit": "d",
                                                        "boundsPeriod": {"start": "2026-11-10"}}}}]),), [("M2", "critical")]),
    ((request("completed", {"coding": [{"system": RXNORM, "code": "6878"}]}, authoredOn="2026-11-17",
              dosageInstruction=[{"timing": {"event": ["2026-11-19T17:40:00Z"]}, "route": {"text": "IM/IV"}}]),),
     [("M3", "critical")]),
    # selegiline by name: the dose form decides the route
    ((request("active", {"text": "selegiline 6 mg/24 hr transdermal patch"}, dosageInstruction=[
        {"route": {"text": "Topical"}}]),), [("M1", "critical")]),
    ((request("active", {"text": "selegiline 5 mg capsule BID for Parkinson's"}),), [("M4", "warning")]),
    ((request("active", {"text": "methenamine/sodium phosphate/methylene blue/hyoscyamine tablet"}),), [("M3o", "info")]),
    # a local code whose display names the drug, while the text abbreviates it
    ((request("active", {"text": "PHENELZ 15MG TAB", "coding": [
        {"system": "urn:oid:1.2.3.4", "code": "12345", "display": "phenelzine sulfate 15 mg tablet"}]}),), [("M1", "critical")]),
    ((request("active", {"text": "NARDIL 15 MG TAB", "coding": [{"system": "urn:oid:1.2.3", "code": "9"}]}),),
     [("M1", "critical")]),                                            # brand name, local code
    ((request("active", {"coding": [{"system": RXNORM + "/", "code": "8123"}]}),), [("M1", "critical")]),
    ((request("active", {"text": "Emsam 6 mg/24 hr patch"}, dosageInstruction=[{"route": {"text": "Topical"}}]),),
     [("M1", "critical")]),                                            # the brand's transdermal route wins
    ((request("active", {"text": "Uribel capsule"}),), [("M3o", "info")]),   # oral methylene blue combination
])
def test_maoi_rules_on_chart_resources(resources, expected):
    assert maoi_cards(*resources) == expected


def test_now_is_the_fixture_time():
    assert NOW == datetime.datetime(2026, 11, 20, 15, tzinfo=UTC)


def procedure(status="completed", **fields):
    return {"resourceType": "Procedure", "id": "d", "status": status,
            "code": {"coding": [{"system": "http://snomed.info/sct", "code": "302497006"}]}, **fields}


@pytest.mark.parametrize("resource, counts", [
    (procedure(performedDateTime="2026-11-18"), True),
    (procedure("in-progress"), True),
    (procedure(performedPeriod={"start": "2026-11-01T08:00:00Z", "end": "2026-11-01T12:00:00Z"}), True),
    (procedure(performedDateTime="2015-03-02"), False),          # one session years ago is not active dialysis
    (procedure("entered-in-error", performedDateTime="2026-11-18"), False),
])
def test_dialysis_procedures_count_when_recent(resource, counts):
    from cds_service.snapshot.problem_list import read_conditions
    found = read_conditions([resource], MATCHER.knowledge, NOW, POLICY.thresholds)
    assert [c.category for c in found] == (["dialysis"] if counts else [])
    assert all(str(c).endswith("on the record") for c in found)


def phenelzine_by_reference(include_medication: bool) -> dict:
    """Scenario 18 with the phenelzine order pointing at its Medication by a urn:uuid reference."""
    from test_scenarios import FIXTURES_SCENARIOS
    scenario = load_scenario(FIXTURES_SCENARIOS / "18-maoi-phenelzine-active.json")
    bundle = scenario.request["prefetch"]["medicationRequests"]
    order = bundle["entry"][0]["resource"]
    medication = {"resourceType": "Medication", "code": order.pop("medicationCodeableConcept")}
    order["medicationReference"] = {"reference": "urn:uuid:0f3c7a52-1111-4c55-9a0b-2e4f6a7b8c9d"}
    if include_medication:
        bundle["entry"].append({"fullUrl": "urn:uuid:0f3c7a52-1111-4c55-9a0b-2e4f6a7b8c9d", "resource": medication})
    return scenario


@pytest.mark.parametrize("include_medication, expected", [
    (True, ("maoi-contraindication", "critical")),     # resolved by the Bundle entry's fullUrl
    (False, ("data-availability", "warning")),         # unresolvable: the drug is unknown, said so
])
def test_a_medication_reference_by_full_url(include_medication, expected):
    from test_scenarios import run_scenario
    cards = run_scenario(phenelzine_by_reference(include_medication))
    assert expected in [(c["source"]["topic"]["code"], c["indicator"]) for c in cards]

"""Milnacipran order detection in draftOrders, and dose extraction from R4 dosageInstruction."""

import pytest
from builders import MATCHER

from cds_service.fhir.r4 import is_valid_medication_request as is_valid_r4
from cds_service.orders.dose import extract_dosing
from cds_service.orders.milnacipran_orders import find_milnacipran_orders
from cds_service.request.envelope import parse_envelope

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
UCUM = "http://unitsofmeasure.org"


def request(*resources, selections=None, full_urls=None):
    entries = [{"resource": r} | ({"fullUrl": full_urls[i]} if full_urls else {}) for i, r in enumerate(resources)]
    context = {"patientId": "p1", "draftOrders": {"resourceType": "Bundle", "entry": entries}}
    if selections is not None:
        context["selections"] = selections
    return parse_envelope({"hook": "order-select", "hookInstance": "h", "context": context}, "order-select")


def medication_request(order_id="mr1", **fields):
    return {"resourceType": "MedicationRequest", "id": order_id, "status": "draft", "intent": "order",
            "subject": {"reference": "Patient/p1"}, **fields}


def coded(code, text=None):
    return {"medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": code}], **({"text": text} if text else {})}}


@pytest.mark.parametrize("code", ["588250", "30003", "833136", "833134", "833138", "833141", "833147", "833144",
                                  "833135", "833143", "833149", "833146", "833139", "833150", "833151", "1157278",
                                  "1177183"])
def test_every_milnacipran_code_is_found(code):
    [order] = find_milnacipran_orders(request(medication_request(**coded(code))), MATCHER)
    assert order.reference == "MedicationRequest/mr1"


@pytest.mark.parametrize("text", ["SAVELLA 50 MG TABLET", "Milnacipran HCl 25mg tab", "savella titration pack"])
def test_text_fallback_for_local_codes(text):
    resource = medication_request(medicationCodeableConcept={
        "coding": [{"system": "urn:oid:1.2.840.114350.1.13.0.1.7.2.698288", "code": "224815"}], "text": text})
    assert find_milnacipran_orders(request(resource), MATCHER)


@pytest.mark.parametrize("medication", [
    coded("312941", "sertraline 50 MG Oral Tablet"),          # another product
    coded("1433212", "levomilnacipran"),                      # the enantiomer is not milnacipran
    {"medicationCodeableConcept": {"text": "Savellamycin"}},  # whole words only
    {},                                                       # no medication at all
])
def test_other_drugs_are_not_milnacipran(medication):
    assert find_milnacipran_orders(request(medication_request(**medication)), MATCHER) == ()


def test_medication_reference_to_a_contained_medication():
    resource = medication_request(
        contained=[{"resourceType": "Medication", "id": "m", "code": {"coding": [{"system": RXNORM, "code": "833144"}]}}],
        medicationReference={"reference": "#m"})
    [order] = find_milnacipran_orders(request(resource), MATCHER)
    assert order.match.strength_mg == 50


@pytest.mark.parametrize("reference, full_url", [("Medication/m1", None), ("urn:uuid:5b8e", "urn:uuid:5b8e"),
                                                 ("https://ehr.example.org/fhir/Medication/m1", None)])
def test_medication_reference_to_another_bundle_entry(reference, full_url):
    medication = {"resourceType": "Medication", "id": "m1", "code": {"coding": [{"system": RXNORM, "code": "833146"}]}}
    order = medication_request(medicationReference={"reference": reference})
    found = find_milnacipran_orders(request(medication, order, full_urls=[full_url or "Medication/m1", "x"]), MATCHER)
    assert [o.match.rxcui for o in found] == ["833146"]


def test_order_select_checks_only_selections():
    one, two = medication_request("a", **coded("833144")), medication_request("b", **coded("833147"))
    assert [o.id for o in find_milnacipran_orders(request(one, two, selections=["MedicationRequest/b"]), MATCHER)] == ["b"]
    assert len(find_milnacipran_orders(request(one, two), MATCHER)) == 2  # no selections sent: all drafts


def test_the_draft_is_normalised_not_mutated():
    resource = medication_request(category={"text": "outpatient"}, **coded("833144"))
    del resource["intent"]
    [order] = find_milnacipran_orders(request(resource), MATCHER)
    assert order.resource["category"] == [{"text": "outpatient"}] and order.resource["intent"] == "order"
    assert isinstance(resource["category"], dict) and "intent" not in resource
    assert is_valid_r4(order.resource)


def dosage(quantity=None, timing=None, **extra):
    instruction = {**extra}
    if quantity is not None:
        instruction["doseAndRate"] = [{"doseQuantity": quantity}]
    if timing is not None:
        instruction["timing"] = timing
    return instruction


BID = {"repeat": {"frequency": 2, "period": 1, "periodUnit": "d"}}


@pytest.mark.parametrize("instruction, strength, per_dose, per_day", [
    (dosage({"value": 50, "unit": "mg", "system": UCUM, "code": "mg"}, BID), None, 50, 100),
    (dosage({"value": 0.1, "code": "g"}, BID), None, 100, 200),
    (dosage({"value": 1, "system": UCUM, "code": "{pill}"}, BID), 50, 50, 100),        # the sandbox's shape
    (dosage({"value": 2, "unit": "tablets"}, BID), 25, 50, 100),
    (dosage({"value": 1, "code": "{pill}"}, BID), None, None, None),                   # no strength: unknown
    (dosage({"value": 5, "unit": "mL"}, BID), 50, None, None),                         # odd unit: unknown
    (dosage({"value": 50, "code": "mg"}, {"code": {"coding": [{"code": "BID"}]}}), None, 50, 100),
    (dosage({"value": 50, "code": "mg"}, {"code": {"text": "qd"}}), None, 50, 50),
    (dosage({"value": 25, "code": "mg"}, {"repeat": {"frequency": 1, "period": 12, "periodUnit": "h"}}), None, 25, 50),
    (dosage({"value": 25, "code": "mg"}, {"repeat": {"period": 1, "periodUnit": "d", "when": ["MORN", "EVE"]}}),
     None, 25, 50),
    (dosage({"value": 50, "code": "mg"}), None, 50, None),                              # no timing
    ({"text": "50 mg twice daily"}, None, None, None),                                 # free text is not parsed
    ({"doseQuantity": {"value": 50, "code": "mg"}, "timing": BID}, None, 50, 100),     # STU3 shape
])
def test_dose_extraction(instruction, strength, per_dose, per_day):
    dosing = extract_dosing({"dosageInstruction": [instruction]}, strength)
    step = dosing.maintenance
    assert (step.mg_per_dose, step.mg_per_day) == (per_dose, per_day)


def test_no_dosage_instruction_means_no_dose():
    assert extract_dosing({}, 50) is None


def test_titration_steps_are_read_in_sequence():
    steps = [dosage({"value": mg, "code": "mg"}, BID, sequence=n) for n, mg in ((3, 50), (1, 12.5), (2, 25))]
    dosing = extract_dosing({"dosageInstruction": steps}, None)
    assert dosing.daily_doses_mg == (25, 50, 100) and dosing.is_titrated and dosing.max_daily_mg == 100


@pytest.mark.parametrize("instructions, per_day", [
    # the same sequence (or none): taken together
    ([dosage({"value": 100, "code": "mg"}, {"repeat": {"when": ["MORN"]}}, sequence=1),
      dosage({"value": 100, "code": "mg"}, {"repeat": {"when": ["HS"]}}, sequence=1)], 200),
    ([dosage({"value": 150, "code": "mg"}, {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}}),
      dosage({"value": 50, "code": "mg"}, {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}})], 200),
    # a range counts at its high end
    ([{"doseAndRate": [{"doseRange": {"low": {"value": 50, "code": "mg"}, "high": {"value": 100, "code": "mg"}}}],
       "timing": BID}], 200),
    # frequency per day without the period of 1; times of day without a period
    ([dosage({"value": 50, "code": "mg"}, {"repeat": {"frequency": 2, "periodUnit": "d"}})], 100),
    ([dosage({"value": 50, "code": "mg"}, {"repeat": {"when": ["MORN", "EVE"]}})], 100),
])
def test_concurrent_instructions_ranges_and_terse_timing(instructions, per_day):
    dosing = extract_dosing({"dosageInstruction": instructions}, None)
    assert dosing.max_daily_mg == per_day

"""Small builders for rule tests: a draft milnacipran order, medication uses, conditions, a snapshot."""

import dataclasses
import datetime

from cds_service.knowledge import default_knowledge
from cds_service.orders.milnacipran_orders import find_milnacipran_orders
from cds_service.orders.products import MedicationMatcher
from cds_service.policy import default_policy
from cds_service.request.envelope import parse_envelope
from cds_service.rules.engine import evaluate_rules
from cds_service.rules.registry import RULES
from cds_service.snapshot import Snapshot
from cds_service.snapshot.creatinine_clearance import RenalEstimate
from cds_service.snapshot.labs_and_vitals import BloodPressure
from cds_service.snapshot.labs_and_vitals import Measurement
from cds_service.snapshot.medication_history import MedicationUse
from cds_service.snapshot.problem_list import ConditionEntry

NOW = datetime.datetime(2026, 11, 20, 15, 0, tzinfo=datetime.timezone.utc)
KNOWLEDGE = default_knowledge()
POLICY = default_policy(KNOWLEDGE)
MATCHER = MedicationMatcher(KNOWLEDGE)
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
TABLET_BY_MG = {12.5: "833141", 25: "833147", 50: "833144", 100: "833135"}


def days_ago(days: float) -> datetime.datetime:
    return NOW - datetime.timedelta(days=days)


def draft_resource(mg_per_dose=50, per_day=2, tablet_mg=None, code=None, order_id="draft-1", steps=None) -> dict:
    """A draft MedicationRequest for milnacipran tablets, doses in mg (None: no dosage)."""
    tablet_mg = tablet_mg or (mg_per_dose if mg_per_dose in TABLET_BY_MG else 50)
    resource = {
        "resourceType": "MedicationRequest", "id": order_id, "status": "draft", "intent": "order",
        "subject": {"reference": "Patient/p1"},
        "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": code or TABLET_BY_MG[tablet_mg]}],
                                      "text": "milnacipran tablet"},
    }
    steps = steps if steps is not None else ([(mg_per_dose, per_day)] if mg_per_dose is not None else [])
    if steps:
        resource["dosageInstruction"] = [
            {"sequence": index, "timing": {"repeat": {"frequency": frequency, "period": 1, "periodUnit": "d"}},
             "doseAndRate": [{"doseQuantity": {"value": mg, "unit": "mg", "system": "http://unitsofmeasure.org",
                                               "code": "mg"}}]}
            for index, (mg, frequency) in enumerate(steps, start=1)]
    return resource


def orders(*resources) -> tuple:
    resources = resources or (draft_resource(),)
    envelope = parse_envelope({
        "hook": "order-sign", "hookInstance": "h1",
        "context": {"patientId": "p1", "draftOrders": {"resourceType": "Bundle",
                                                       "entry": [{"resource": r} for r in resources]}}},
        "order-sign")
    return find_milnacipran_orders(envelope, MATCHER)


def ingredient(name: str):
    if name == "st john's wort":
        return KNOWLEDGE.text_names[name][0][0]
    return next(i for i in KNOWLEDGE.ingredients.values() if i.name == name)


def use(name, status="active", route=None, stopped_at=None, recorded=None, start=None, as_needed=False,
        dose_form=None, ingredient_count=1, product_route=None) -> MedicationUse:
    return MedicationUse(ingredient(name), name, f"MedicationRequest/{name.replace(' ', '-')}", status, route,
                         product_route, dose_form, ingredient_count, as_needed, start, stopped_at, recorded)


def condition(category: str) -> ConditionEntry:
    return ConditionEntry(category, f"{category} (code)", days_ago(100))


def renal(crcl=90.0, **fields) -> RenalEstimate:
    defaults = dict(method="Cockcroft-Gault", inputs=("SCr 0.9 mg/dL",), notes=(), missing=(), measured_at=days_ago(10))
    if crcl is None:
        defaults.update(method="not estimated", inputs=(), missing=("serum creatinine within 365 days",))
    return RenalEstimate(crcl, **{**defaults, **fields})


def bp(systolic, diastolic, days=5) -> BloodPressure:
    return BloodPressure(systolic, diastolic, days_ago(days))


def hr(value, days=5) -> Measurement:
    return Measurement(value, "/min", days_ago(days))


def snapshot(**fields) -> Snapshot:
    """A healthy 45-year-old woman with current normal labs and vitals and no other drugs."""
    defaults = dict(now=NOW, age=45, sex="female", renal=renal(), blood_pressures=(bp(120, 76),),
                    heart_rates=(hr(72),), labs={}, hcg_results=(), medications=(), conditions=(), unavailable=())
    return Snapshot(**{**defaults, **fields})


def with_policy(**thresholds):
    return dataclasses.replace(POLICY, thresholds={**POLICY.thresholds, **thresholds})


def run_rules(module, draft_orders, patient, policy=POLICY) -> list:
    """The findings of one rule module's registered rules, through the engine (so ids are stamped)."""
    return evaluate_rules(draft_orders, patient, policy, rules=[r for r in RULES if r.check.__module__ == module.__name__])


def paths(value, path=()):
    """Every path (a tuple of keys and indexes) into a JSON document, for mutation tests."""
    if path:
        yield path
    if isinstance(value, dict):
        for key, item in value.items():
            yield from paths(item, path + (key,))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from paths(item, path + (index,))

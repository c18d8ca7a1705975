"""Scenario files: a patient, a milnacipran order and the cards a pharmacist expects.

A scenario (``fixtures/scenarios/*.json``) is read by the scenario tests, ``cds-service evaluate``,
the card gallery and the benchmark. It holds either a whole CDS Hooks request (``request``), as an
EHR would send it, or a few facts about the patient (``patient``) and the order (``order``) that
``build_request`` turns into one, with every prefetch key filled the way an EHR fills it::

    {"description": "...", "now": "2026-11-20T15:00:00Z",
     "patient": {"age": 68, "sex": "female", "weight_kg": 60, "height_cm": 160, "creatinine_mg_dl": 1.9,
                 "medications": ["sertraline"], "conditions": [["icd10cm", "F31.9"]]},
     "order": {"mg": 50, "per_day": 2},
     "expected": [{"topic": "renal-function", "indicator": "info"}], "reasoning": "..."}

Facts are recorded ``days_ago`` days before ``now`` (3 by default). Medications are named by
ingredient (coded with its RxNorm ingredient code) and are active; conditions are (system, code)
pairs on the problem list, active and confirmed.
"""

import dataclasses
import datetime
from collections.abc import Mapping
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cds_service.fhir.dates import parse_time
from cds_service.fhir.vocabulary import CODE_SYSTEMS
from cds_service.fhir.vocabulary import LOINC
from cds_service.fhir.vocabulary import RXNORM
from cds_service.fhir.vocabulary import UCUM
from cds_service.knowledge import Knowledge
from cds_service.knowledge import default_knowledge
from cds_service.request.envelope import parse_json_object

PATIENT_ID = "scenario-patient"
SERVICE_BY_HOOK = {"order-select": "milnacipran-order-select", "order-sign": "milnacipran-order-sign"}


@dataclasses.dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    now: datetime.datetime | None
    request: Mapping[str, Any]
    expected: Sequence[Mapping[str, Any]]
    reasoning: str

    @property
    def service(self) -> str:
        return SERVICE_BY_HOOK.get(self.request.get("hook"), "milnacipran-order-sign")


def load_scenario(path: Path) -> Scenario:
    """A scenario file, or a bare request file (then the name is the file's and nothing is expected)."""
    data = parse_json_object(Path(path).read_bytes())
    now = parse_time(data.get("now"))
    if "patient" in data:
        request = build_request(now, data["patient"], data.get("order", {}))
    else:
        request = data["request"] if isinstance(data.get("request"), dict) else data
    return Scenario(Path(path).stem, data.get("description", ""), now, request, data.get("expected", ()),
                    data.get("reasoning", ""))


def _bundle(resources: Sequence[Mapping]) -> dict:
    return {"resourceType": "Bundle", "type": "searchset", "total": len(resources),
            "entry": [{"resource": resource} for resource in resources]}


def _observation(index: int, kind: str, value: float, unit: str, when: str, knowledge: Knowledge) -> dict:
    loinc = knowledge.loinc_of(kind)
    return {"resourceType": "Observation", "id": f"{kind}-{index}", "status": "final",
            "code": {"coding": [{"system": LOINC, "code": loinc, "display": knowledge.observation_displays[loinc]}]},
            "subject": {"reference": f"Patient/{PATIENT_ID}"}, "effectiveDateTime": when,
            "valueQuantity": {"value": value, "unit": unit, "system": UCUM, "code": unit}}


def _blood_pressure(index: int, systolic: float, diastolic: float, when: str, knowledge: Knowledge) -> dict:
    def component(kind):
        return {"code": {"coding": [{"system": LOINC, "code": knowledge.loinc_of(kind)}]},
                "valueQuantity": {"value": systolic if kind == "systolic_bp" else diastolic, "unit": "mm[Hg]",
                                  "system": UCUM, "code": "mm[Hg]"}}
    return {"resourceType": "Observation", "id": f"bp-{index}", "status": "final",
            "code": {"coding": [{"system": LOINC, "code": knowledge.loinc_of("bp_panel")}]},
            "subject": {"reference": f"Patient/{PATIENT_ID}"}, "effectiveDateTime": when,
            "component": [component("systolic_bp"), component("diastolic_bp")]}


def _medication(index: int, name: str, when: str, knowledge: Knowledge) -> dict:
    [ingredient] = [i for i in knowledge.ingredients.values() if i.name == name]
    return {"resourceType": "MedicationRequest", "id": f"med-{index}", "status": "active", "intent": "order",
            "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": ingredient.rxcui, "display": name}],
                                          "text": name},
            "subject": {"reference": f"Patient/{PATIENT_ID}"}, "authoredOn": when}


def _condition(index: int, system: str, code: str, when: str) -> dict:
    return {"resourceType": "Condition", "id": f"condition-{index}",
            "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                                           "code": "active"}]},
            "verificationStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                                               "code": "confirmed"}]},
            "code": {"coding": [{"system": CODE_SYSTEMS[system][0], "code": code}]},
            "subject": {"reference": f"Patient/{PATIENT_ID}"}, "recordedDate": when}


def _draft(order: Mapping[str, Any], knowledge: Knowledge) -> dict:
    mg, per_day = order.get("mg", 50), order.get("per_day", 2)
    [tablet] = [c for c in knowledge.milnacipran_codes.values()
                if c.tty == "SCD" and c.strength_mg == order.get("tablet_mg", 50) and "tablet" in c.name.lower()]
    return {"resourceType": "MedicationRequest", "id": "draft-milnacipran", "status": "draft", "intent": "order",
            "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": tablet.rxcui, "display": tablet.name}],
                                          "text": tablet.name},
            "subject": {"reference": f"Patient/{PATIENT_ID}"},
            "dosageInstruction": [{"text": f"{mg:g} mg by mouth {per_day} times a day",
                                   "timing": {"repeat": {"frequency": per_day, "period": 1, "periodUnit": "d"}},
                                   "doseAndRate": [{"doseQuantity": {"value": mg, "unit": "mg", "system": UCUM,
                                                                     "code": "mg"}}]}]}


def build_request(now: datetime.datetime, patient: Mapping[str, Any], order: Mapping[str, Any] | None = None,
                  knowledge: Knowledge | None = None) -> dict:
    """A whole CDS Hooks request, with every prefetch key, from a few facts (see the module docstring)."""
    knowledge = knowledge or default_knowledge()
    order = order or {}
    when = (now - datetime.timedelta(days=patient.get("days_ago", 3))).isoformat().replace("+00:00", "Z")
    age = patient.get("age", 45)
    birth = now.date().replace(year=now.year - age) - datetime.timedelta(days=1)
    renal = [_observation(1, "creatinine_mass", patient["creatinine_mg_dl"], "mg/dL", when, knowledge)
             ] if "creatinine_mg_dl" in patient else []
    body = [_observation(i, kind, patient[key], unit, when, knowledge) for i, (key, kind, unit) in enumerate(
        (("weight_kg", "weight", "kg"), ("height_cm", "height", "cm"))) if key in patient]
    vitals = [_blood_pressure(i, s, d, when, knowledge) for i, (s, d) in enumerate(patient.get("bp", [(122, 78)]))]
    vitals += [_observation(i, "heart_rate", rate, "/min", when, knowledge)
               for i, rate in enumerate(patient.get("heart_rate", [72]))]
    hook = order.get("hook", "order-sign")
    return {
        "hook": hook,
        "hookInstance": f"scenario-{hook}",
        "context": {"userId": "Practitioner/scenario", "patientId": PATIENT_ID,
                    "draftOrders": {"resourceType": "Bundle", "type": "collection",
                                    "entry": [{"resource": _draft(order, knowledge)}]}},
        "prefetch": {
            "patient": {"resourceType": "Patient", "id": PATIENT_ID, "gender": patient.get("sex", "female"),
                        "birthDate": birth.isoformat()},
            "renalLabs": _bundle(renal),
            "bodyMeasures": _bundle(body),
            "vitalSigns": _bundle(vitals),
            "otherLabs": _bundle([]),
            "alcoholScreening": _bundle([]),
            "medicationRequests": _bundle([_medication(i, name, when, knowledge)
                                           for i, name in enumerate(patient.get("medications", ()))]),
            "medicationStatements": _bundle([]),
            "conditions": _bundle([_condition(i, system, code, when)
                                   for i, (system, code) in enumerate(patient.get("conditions", ()))]),
            "dialysisProcedures": _bundle([]),
        },
    }

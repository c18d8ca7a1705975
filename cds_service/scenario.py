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
pairs on the problem list, active and confirmed. Where a scenario needs more, an item may be an
object instead:

- a condition ``{"system": "icd10cm", "code": "F31.71", "status": "remission", "verification":
  "confirmed", "days_ago": 400}`` (``"status": null`` leaves clinicalStatus out);
- ``"labs": [{"kind": "alt", "value": 150, "unit": "U/L", "high": 40, "days_ago": 5}]``: an
  Observation of a knowledge kind, with a number (``value``/``unit``, ``integer`` for a score), a
  coded result (``"result": ["snomed", "10828004"]``), an ``interpretation`` code (v3, e.g. "POS") or
  ``text``; AUDIT-C goes to ``alcoholScreening``, every other lab to ``otherLabs``;
- a medication ``{"name": "linezolid", "status": "completed", "ends_days_from_now": 2}``: a course with
  an end (negative: in the past), or ``{"text": "diclofenac 1% gel", "route": "topical skin", "as_needed": true,
  "status": "active", "id": "mr-1", "identifier": "urn:rx|123", "group": "urn:grp|9",
  "mg": 50, "per_day": 2, "tablet_mg": 50, "days_ago": 200}``: named by ``text`` alone (a local code), or by
  ``name`` (an ingredient: its RxNorm code), or as a milnacipran tablet when ``tablet_mg`` is given;
- ``"bp": [[150, 95, 10]]`` and ``"heart_rate": [[80, 10]]``: readings with their own ``days_ago``
  (without one, readings are newest first, a week apart);
- the order ``{"text": "SAVELLA 100 MG TABLET", "tablets": 1, "per_day": 2, "sig": "one tab bid",
  "prior": "mr-1", "based_on": "mr-1", "group": "urn:grp|9", "no_dose": true}``: ``text`` puts
  the drug under a local code; ``tablets`` doses in tablets; ``sig`` alone (``"dose": false``) is a
  free-text sig with no structured dose; ``prior``/``based_on``/``group`` link it to a chart order.
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


def _condition(index: int, fact: Any, when: str, at) -> dict:
    fact = fact if isinstance(fact, Mapping) else {"system": fact[0], "code": fact[1]}
    condition = {"resourceType": "Condition", "id": f"condition-{index}",
                 "verificationStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                                                    "code": fact.get("verification", "confirmed")}]},
                 "code": {"coding": [{"system": CODE_SYSTEMS[fact["system"]][0], "code": fact["code"]}]},
                 "subject": {"reference": f"Patient/{PATIENT_ID}"}, "recordedDate": at(fact, when)}
    status = fact.get("status", "active")
    if status is not None:
        condition["clinicalStatus"] = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                                                   "code": status}]}
    return condition


def _lab(index: int, fact: Mapping[str, Any], when: str, knowledge: Knowledge) -> dict:
    loinc = fact.get("loinc") or knowledge.loinc_of(fact["kind"])
    observation = {"resourceType": "Observation", "id": f"{fact['kind']}-{index}", "status": "final",
                   "code": {"coding": [{"system": LOINC, "code": loinc, "display": knowledge.observation_displays[loinc]}]},
                   "subject": {"reference": f"Patient/{PATIENT_ID}"}, "effectiveDateTime": when}
    if "value" in fact:
        unit = fact.get("unit", "")
        observation["valueQuantity"] = {"value": fact["value"], "unit": unit, "system": UCUM, "code": unit}
    if "integer" in fact:
        observation["valueInteger"] = fact["integer"]
    if "result" in fact:
        system, code = fact["result"]
        observation["valueCodeableConcept"] = {"coding": [{"system": CODE_SYSTEMS[system][0], "code": code}]}
    if "text" in fact:
        observation["valueString"] = fact["text"]
    if "high" in fact:
        observation["referenceRange"] = [{"high": {"value": fact["high"], "unit": fact.get("unit", ""), "system": UCUM,
                                                   "code": fact.get("unit", "")}}]
    if "interpretation" in fact:
        observation["interpretation"] = [{"coding": [{"system": CODE_SYSTEMS["v3-interpretation"][0],
                                                      "code": fact["interpretation"]}]}]
    return observation


def _identifier(value: str) -> dict:
    system, _, code = value.rpartition("|")
    return {"system": system, "value": code}


def _dosage(mg: float | None, per_day: float, tablets: float | None = None, sig: str | None = None) -> dict:
    dosage: dict[str, Any] = {"text": sig or (f"{mg:g} mg by mouth {per_day:g} times a day" if mg else
                                              f"{tablets:g} tablet(s) by mouth {per_day:g} times a day")}
    if sig is not None and mg is None and tablets is None:
        return dosage  # a free-text sig only
    dosage["timing"] = {"repeat": {"frequency": per_day, "period": 1, "periodUnit": "d"}}
    quantity = {"value": tablets, "unit": "tablet", "system": UCUM, "code": "{tbl}"} if tablets is not None else \
        {"value": mg, "unit": "mg", "system": UCUM, "code": "mg"}
    dosage["doseAndRate"] = [{"doseQuantity": quantity}]
    return dosage


def _tablet(knowledge: Knowledge, mg: float):
    [tablet] = [c for c in knowledge.milnacipran_codes.values()
                if c.tty == "SCD" and c.strength_mg == mg and "tablet" in c.name.lower()]
    return tablet


def _medication_fact(index: int, fact: Mapping[str, Any], when: str, now: datetime.datetime,
                     knowledge: Knowledge) -> dict:
    """A chart MedicationRequest from a medication object (see the module docstring)."""
    if "tablet_mg" in fact:
        tablet = _tablet(knowledge, fact["tablet_mg"])
        concept = {"coding": [{"system": RXNORM, "code": tablet.rxcui, "display": tablet.name}], "text": tablet.name}
    elif "name" in fact:
        concept = _medication(index, fact["name"], when, knowledge)["medicationCodeableConcept"]
    else:
        concept = {"coding": [{"system": "urn:oid:1.2.3.4.5.local-formulary", "code": f"LOCAL-{index}",
                               "display": fact["text"]}], "text": fact["text"]}
    resource = {"resourceType": "MedicationRequest", "id": fact.get("id", f"med-{index}"),
                "status": fact.get("status", "active"), "intent": "order", "medicationCodeableConcept": concept,
                "subject": {"reference": f"Patient/{PATIENT_ID}"}, "authoredOn": when}
    dosage: dict[str, Any] = {}
    if "mg" in fact:
        dosage = _dosage(fact["mg"], fact.get("per_day", 2))
    if "route" in fact:
        dosage["route"] = {"text": fact["route"]}
    if "ends_days_from_now" in fact:
        end = now + datetime.timedelta(days=fact["ends_days_from_now"])
        dosage.setdefault("timing", {}).setdefault("repeat", {})["boundsPeriod"] = {
            "start": when, "end": end.isoformat().replace("+00:00", "Z")}
    if fact.get("as_needed"):
        dosage["asNeededBoolean"] = True
    if dosage:
        resource["dosageInstruction"] = [dosage]
    if "identifier" in fact:
        resource["identifier"] = [_identifier(fact["identifier"])]
    if "group" in fact:
        resource["groupIdentifier"] = _identifier(fact["group"])
    return resource


def _draft(order: Mapping[str, Any], knowledge: Knowledge) -> dict:
    per_day = order.get("per_day", 2)
    if "text" in order:
        concept = {"coding": [{"system": "urn:oid:1.2.3.4.5.local-formulary", "code": "LOCAL-MILNACIPRAN",
                               "display": order["text"]}], "text": order["text"]}
    else:
        tablet = _tablet(knowledge, order.get("tablet_mg", 50))
        concept = {"coding": [{"system": RXNORM, "code": tablet.rxcui, "display": tablet.name}], "text": tablet.name}
    draft = {"resourceType": "MedicationRequest", "id": "draft-milnacipran", "status": "draft", "intent": "order",
             "medicationCodeableConcept": concept, "subject": {"reference": f"Patient/{PATIENT_ID}"}}
    if order.get("dose", True):
        draft["dosageInstruction"] = [_dosage(None if "tablets" in order else order.get("mg", 50), per_day,
                                              order.get("tablets"), order.get("sig"))]
    elif "sig" in order:
        draft["dosageInstruction"] = [_dosage(None, per_day, None, order["sig"])]
    if "prior" in order:
        draft["priorPrescription"] = {"reference": f"MedicationRequest/{order['prior']}"}
    if "based_on" in order:
        draft["basedOn"] = [{"reference": f"MedicationRequest/{order['based_on']}"}]
    if "group" in order:
        draft["groupIdentifier"] = _identifier(order["group"])
    return draft


def build_request(now: datetime.datetime, patient: Mapping[str, Any], order: Mapping[str, Any] | None = None,
                  knowledge: Knowledge | None = None) -> dict:
    """A whole CDS Hooks request, with every prefetch key, from a few facts (see the module docstring)."""
    knowledge = knowledge or default_knowledge()
    order = order or {}
    def at(fact: Any, default: str) -> str:
        if isinstance(fact, Mapping) and "days_ago" in fact:
            return (now - datetime.timedelta(days=fact["days_ago"])).isoformat().replace("+00:00", "Z")
        return default

    when = (now - datetime.timedelta(days=patient.get("days_ago", 3))).isoformat().replace("+00:00", "Z")
    age = patient.get("age", 45)
    birth = now.date().replace(year=now.year - age) - datetime.timedelta(days=1)
    renal = [_observation(1, "creatinine_mass", patient["creatinine_mg_dl"], "mg/dL", when, knowledge)
             ] if "creatinine_mg_dl" in patient else []
    body = [_observation(i, kind, patient[key], unit, when, knowledge) for i, (key, kind, unit) in enumerate(
        (("weight_kg", "weight", "kg"), ("height_cm", "height", "cm"))) if key in patient]
    def weekly(index: int) -> str:  # readings without their own time: newest first, a week apart
        return at({"days_ago": patient.get("days_ago", 3) + 7 * index}, when)
    vitals = [_blood_pressure(i, bp[0], bp[1], at({"days_ago": bp[2]}, when) if len(bp) > 2 else weekly(i), knowledge)
              for i, bp in enumerate(patient.get("bp", [(122, 78)]))]
    vitals += [_observation(i, "heart_rate", rate[0] if isinstance(rate, Sequence) else rate, "/min",
                            at({"days_ago": rate[1]}, when) if isinstance(rate, Sequence) else weekly(i), knowledge)
               for i, rate in enumerate(patient.get("heart_rate", [72]))]
    labs = [_lab(i, fact, at(fact, when), knowledge) for i, fact in enumerate(patient.get("labs", ()))]
    medications = [_medication_fact(i, fact, at(fact, when), now, knowledge) if isinstance(fact, Mapping)
                   else _medication(i, fact, when, knowledge) for i, fact in enumerate(patient.get("medications", ()))]
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
            "otherLabs": _bundle([lab for lab in labs if lab["id"].split("-")[0] != "audit_c_total"]),
            "alcoholScreening": _bundle([lab for lab in labs if lab["id"].split("-")[0] == "audit_c_total"]),
            "medicationRequests": _bundle(medications),
            "medicationStatements": _bundle([]),
            "conditions": _bundle([_condition(i, fact, when, at) for i, fact in enumerate(patient.get("conditions", ()))]),
            "dialysisProcedures": _bundle([]),
        },
    }

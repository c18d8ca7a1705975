"""The benchmark's request bodies: a typical order-sign (~30 prefetched resources), a large chart
(~280) and one with no prefetch (its FHIR server is a loopback stub answering in 100 ms)."""

import copy
import datetime
import json
from pathlib import Path

REPO = Path(__file__).parent.parent
LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
ICD10 = "http://hl7.org/fhir/sid/icd-10-cm"
PATIENT_REF = {"reference": "Patient/bench-patient"}
# Drugs of a typical outpatient list (RxNorm ingredient codes), some of which interact with milnacipran.
DRUGS = [("36437", "sertraline 50 MG Oral Tablet"), ("5640", "ibuprofen 400 MG Oral Tablet"),
         ("29046", "lisinopril 10 MG Oral Tablet"), ("6809", "metformin 500 MG Oral Tablet"),
         ("83367", "atorvastatin 20 MG Oral Tablet"), ("11289", "warfarin 5 MG Oral Tablet"),
         ("7646", "omeprazole 20 MG Delayed Release Oral Capsule"), ("5487", "hydrochlorothiazide 25 MG Oral Tablet"),
         ("17767", "amlodipine 5 MG Oral Tablet"), ("10689", "tramadol 50 MG Oral Tablet")]
CONDITIONS = [("E11.9", "Type 2 diabetes mellitus without complications"), ("I10", "Essential hypertension"),
              ("M79.7", "Fibromyalgia"), ("K21.9", "Gastro-esophageal reflux disease"),
              ("E78.5", "Hyperlipidemia, unspecified")]


def _when(days_ago: int) -> str:
    moment = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=days_ago, hours=3)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _observation(n, code, display, value, unit, days_ago, category="laboratory"):
    return {"resourceType": "Observation", "id": f"obs-{code}-{n}", "status": "final", "subject": PATIENT_REF,
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                      "code": category}]}],
            "code": {"coding": [{"system": LOINC, "code": code, "display": display}], "text": display},
            "effectiveDateTime": _when(days_ago),
            "valueQuantity": {"value": value, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit}}


def _blood_pressure(n, days_ago):
    return {"resourceType": "Observation", "id": f"bp-{n}", "status": "final", "subject": PATIENT_REF,
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                      "code": "vital-signs"}]}],
            "code": {"coding": [{"system": LOINC, "code": "85354-9", "display": "Blood pressure panel"}]},
            "effectiveDateTime": _when(days_ago),
            "component": [
                {"code": {"coding": [{"system": LOINC, "code": "8480-6"}]},
                 "valueQuantity": {"value": 128 + n % 9, "unit": "mm[Hg]", "system": "http://unitsofmeasure.org",
                                   "code": "mm[Hg]"}},
                {"code": {"coding": [{"system": LOINC, "code": "8462-4"}]},
                 "valueQuantity": {"value": 78 + n % 7, "unit": "mm[Hg]", "system": "http://unitsofmeasure.org",
                                   "code": "mm[Hg]"}}]}


def _medication_request(n, code, text, days_ago):
    return {"resourceType": "MedicationRequest", "id": f"mr-{n}", "status": "active" if n % 3 else "completed",
            "intent": "order", "subject": PATIENT_REF, "authoredOn": _when(days_ago),
            "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": code, "display": text}], "text": text},
            "dosageInstruction": [{"text": "1 tablet by mouth daily"}]}


def _medication_statement(n, code, text, days_ago):
    return {"resourceType": "MedicationStatement", "id": f"ms-{n}", "status": "active", "subject": PATIENT_REF,
            "effectiveDateTime": _when(days_ago),
            "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": code, "display": text}], "text": text}}


def _condition(n, code, text):
    return {"resourceType": "Condition", "id": f"cond-{n}", "subject": PATIENT_REF,
            "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                                           "code": "active"}]},
            "code": {"coding": [{"system": ICD10, "code": code, "display": text}], "text": text}}


def _bundle(resources):
    return {"resourceType": "Bundle", "type": "searchset", "total": len(resources),
            "entry": [{"fullUrl": f"http://fhir.example.org/{r['resourceType']}/{r['id']}", "resource": r}
                      for r in resources]}


def chart(scale: int) -> dict:
    """Prefetch by key: ``scale`` 1 gives about 30 resources, 10 about 280."""
    creatinine = [_observation(n, "2160-0", "Creatinine", 0.9 + n % 3 / 10, "mg/dL", 20 + 30 * n)
                  for n in range(3 * scale + 1)]
    body = [_observation(n, "29463-7", "Body weight", 70 + n % 4, "kg", 10 + 40 * n, "vital-signs")
            for n in range(scale)] + [_observation(0, "8302-2", "Body height", 168, "cm", 200, "vital-signs")]
    vitals = [_blood_pressure(n, 5 + 12 * n) for n in range(5 * scale)] + \
             [_observation(n, "8867-4", "Heart rate", 72 + n % 11, "/min", 5 + 12 * n, "vital-signs")
              for n in range(5 * scale + 1)]
    other = [_observation(n, "1742-6", "ALT", 22 + n % 5, "U/L", 30 + 45 * n) for n in range(2 * scale)] + \
            [_observation(n, "2951-2", "Sodium", 139 + n % 3, "mmol/L", 30 + 45 * n) for n in range(2 * scale)]
    requests = [_medication_request(n, *DRUGS[n % len(DRUGS)], 15 + 20 * n) for n in range(5 * scale + 1)]
    statements = [_medication_statement(n, *DRUGS[(n + 3) % len(DRUGS)], 40 + 60 * n) for n in range(2 * scale - 1 or 1)]
    conditions = [_condition(n, *CONDITIONS[n % len(CONDITIONS)]) for n in range(2 * scale + 1)]
    return {"renalLabs": _bundle(creatinine), "bodyMeasures": _bundle(body), "vitalSigns": _bundle(vitals),
            "otherLabs": _bundle(other), "medicationRequests": _bundle(requests),
            "medicationStatements": _bundle(statements), "conditions": _bundle(conditions),
            "dialysisProcedures": _bundle([])}


def base_request() -> dict:
    return json.loads((REPO / "fixtures/requests/sandbox-order-sign.json").read_text())


def resources_of(prefetch: dict) -> list[dict]:
    found = []
    for value in prefetch.values():
        if isinstance(value, dict):
            found += [e["resource"] for e in value.get("entry", [])] if value["resourceType"] == "Bundle" else [value]
    return found


def bodies(fhir_base_url: str, token: str = "bench-fhir-token") -> dict[str, dict]:
    """{"typical": ..., "large": ..., "no-prefetch": ...}: order-sign requests for one patient."""
    base = base_request()
    patient = copy.deepcopy(base["prefetch"]["patient"])
    patient["id"] = "bench-patient"
    out = {}
    for name, scale in (("typical", 1), ("large", 10)):
        request = copy.deepcopy(base)
        request["context"]["patientId"] = "bench-patient"
        request.pop("fhirServer", None)
        request["prefetch"] = {"patient": patient, **chart(scale)}
        out[name] = request
    request = copy.deepcopy(base)
    request["context"]["patientId"] = "bench-patient"
    request["prefetch"] = {}
    request["fhirServer"] = fhir_base_url
    request["fhirAuthorization"] = {"access_token": token, "token_type": "Bearer", "expires_in": 300,
                                    "scope": "patient/*.read", "subject": "cds-bench"}
    out["no-prefetch"] = request
    return out


def fhir_resources() -> list[dict]:
    """What the loopback FHIR server holds for the no-prefetch case: the typical chart."""
    base = base_request()
    patient = copy.deepcopy(base["prefetch"]["patient"])
    patient["id"] = "bench-patient"
    return [patient, *resources_of(chart(1))]

"""The two CDS services of the contract and their discovery document.

Ids, hooks and prefetch templates live only here. Templates stay within the CDS Hooks 2.0
query subset (read, type search by patient, token equality with comma-OR lists, ``_sort``,
``_count``); their codes come from the knowledge files, so a code is never typed twice.
"""

import dataclasses

from cds_service.knowledge import Knowledge

LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"


@dataclasses.dataclass(frozen=True)
class Service:
    id: str
    hook: str
    title: str
    description: str


SERVICES = (
    Service("milnacipran-order-select", "order-select", "Milnacipran order check (select)",
            "Checks a newly selected milnacipran (Savella) order against the prescribing information: "
            "MAOI and other interacting drugs, conditions, renal function and blood pressure history."),
    Service("milnacipran-order-sign", "order-sign", "Milnacipran order check (sign)",
            "Checks a milnacipran (Savella) order before signature: renal dose ceiling (Cockcroft-Gault CrCl), "
            "MAOI washout, serotonergic and bleeding interactions, BP/HR, dose and titration, label precautions."),
)
SERVICES_BY_ID = {service.id: service for service in SERVICES}


def _observation_search(knowledge: Knowledge, kinds: tuple[str, ...], count: int) -> str:
    codes = ",".join(f"{LOINC}|{loinc}" for loinc, kind in knowledge.observation_kinds.items() if kind in kinds)
    return f"Observation?patient={{{{context.patientId}}}}&code={codes}&_sort=-date&_count={count}"


def prefetch_templates(knowledge: Knowledge) -> dict[str, str]:
    """Prefetch key -> template, narrow enough for the rules and no more."""
    dialysis = ",".join(f"{SNOMED}|{code}" for code in knowledge.snomed_codes_in_category("dialysis"))
    return {
        "patient": "Patient/{{context.patientId}}",
        "renalLabs": _observation_search(knowledge, (
            "creatinine_mass", "creatinine_molar", "egfr", "crcl_cockcroft_gault", "crcl_measured"), 50),
        "bodyMeasures": _observation_search(knowledge, ("weight", "height"), 20),
        "vitalSigns": _observation_search(knowledge, (
            "bp_panel", "systolic_bp", "diastolic_bp", "heart_rate"), 30),
        "otherLabs": _observation_search(knowledge, (
            "alt", "ast", "bilirubin_total", "hcg_qualitative", "hcg_quantitative", "sodium"), 30),
        "medicationRequests": "MedicationRequest?patient={{context.patientId}}&status=active,on-hold,stopped,completed",
        "medicationStatements": "MedicationStatement?patient={{context.patientId}}"
                                "&status=active,intended,on-hold,stopped,completed",
        "conditions": "Condition?patient={{context.patientId}}&clinical-status=active,recurrence,relapse",
        "dialysisProcedures": f"Procedure?patient={{{{context.patientId}}}}&code={dialysis}",
    }


def discovery_document(knowledge: Knowledge) -> dict:
    """The body of ``GET /cds-services``."""
    prefetch = prefetch_templates(knowledge)
    return {"services": [
        {"hook": service.hook, "id": service.id, "title": service.title,
         "description": service.description, "prefetch": prefetch}
        for service in SERVICES
    ]}

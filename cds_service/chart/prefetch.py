"""The prefetch templates: what the service asks the EHR for, and what the FHIR fallback queries.

Templates stay within the CDS Hooks 2.0 query subset (read, type search by patient, token
equality with comma-OR lists, ``_sort``, ``_count``); their codes come from the knowledge files,
so a code is never typed twice.
"""

from cds_service.fhir.vocabulary import LOINC
from cds_service.fhir.vocabulary import SNOMED
from cds_service.knowledge import Knowledge


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

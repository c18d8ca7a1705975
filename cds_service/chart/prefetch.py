"""The prefetch templates: what the service asks the EHR for, and what the FHIR fallback queries.

Templates stay within the CDS Hooks 2.0 query subset (read, type search by patient, token
equality with comma-OR lists, ``_sort``, ``_count``); their codes come from the knowledge files,
so a code is never typed twice.
"""

from cds_service.fhir.vocabulary import CODE_SYSTEMS
from cds_service.fhir.vocabulary import LOINC
from cds_service.knowledge import Knowledge


def _observation_search(knowledge: Knowledge, kinds: tuple[str, ...], count: int) -> str:
    codes = ",".join(f"{LOINC}|{loinc}" for loinc, kind in knowledge.observation_kinds.items() if kind in kinds)
    return f"Observation?patient={{{{context.patientId}}}}&code={codes}&_sort=-date&_count={count}"


# Every clinical status a "history-of" category counts (code-families.md §5); "current" categories
# are narrowed to active, recurrence and relapse by the snapshot, not by the query.
CONDITION_CLINICAL_STATUSES = "active,recurrence,relapse,inactive,remission,resolved"


def _procedure_codes(knowledge: Knowledge, category: str) -> str:
    """Every exact code of a category in the systems a Procedure is coded in (SNOMED CT, ICD-10-PCS, CPT)."""
    return ",".join(f"{CODE_SYSTEMS[system][0]}|{code}" for system in ("snomed", "icd10pcs", "cpt")
                    for code in knowledge.codes_in_category(category, system))


def prefetch_templates(knowledge: Knowledge) -> dict[str, str]:
    """Prefetch key -> template, narrow enough for the rules and no more."""
    dialysis = _procedure_codes(knowledge, "dialysis")
    return {
        "patient": "Patient/{{context.patientId}}",
        "renalLabs": _observation_search(knowledge, (
            "creatinine_mass", "creatinine_molar", "egfr", "crcl_cockcroft_gault", "crcl_measured"), 50),
        "bodyMeasures": _observation_search(knowledge, ("weight", "height"), 20),
        "vitalSigns": _observation_search(knowledge, (
            "bp_panel", "systolic_bp", "diastolic_bp", "heart_rate"), 30),
        "otherLabs": _observation_search(knowledge, (
            "alt", "ast", "bilirubin_total", "hcg_qualitative", "hcg_quantitative", "hcg_other_units",
            "hcg_interpretation", "sodium", "inr"), 30),
        "alcoholScreening": _observation_search(knowledge, ("audit_c_total",), 3),
        "medicationRequests": "MedicationRequest?patient={{context.patientId}}&status=active,on-hold,stopped,completed",
        "medicationStatements": "MedicationStatement?patient={{context.patientId}}"
                                "&status=active,intended,on-hold,stopped,completed",
        "conditions": f"Condition?patient={{{{context.patientId}}}}&clinical-status={CONDITION_CLINICAL_STATUSES}",
        "dialysisProcedures": f"Procedure?patient={{{{context.patientId}}}}&code={dialysis}",
    }

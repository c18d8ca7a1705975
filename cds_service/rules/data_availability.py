"""Data availability: chart data the service could not obtain, and the checks that therefore did not run."""

from cds_service.findings import Finding
from cds_service.rules.wording import bullet_list

# Which checks each prefetch key feeds (services.prefetch_templates).
CHECKS_BY_KEY = {
    "renalLabs": "renal function and dose ceiling",
    "bodyMeasures": "Cockcroft-Gault creatinine clearance",
    "vitalSigns": "blood pressure and heart rate",
    "otherLabs": "liver tests, sodium, pregnancy test, INR",
    "alcoholScreening": "AUDIT-C alcohol screening score",
    "medicationRequests": "the MAOI, linezolid and methylene blue checks, and the other interaction checks (ordered drugs)",
    "medicationStatements": "the MAOI, linezolid and methylene blue checks, and the other interaction checks "
                            "(reported drugs)",
    "conditions": "ESRD, hypertension, history of mania, seizures, suicidality and other problem-list precautions",
    "dialysisProcedures": "dialysis",
}
MEDICATION_KEYS = {"medicationRequests", "medicationStatements"}
MEDICATION_RESOURCES = ("Medication/", "MedicationRequest/", "MedicationStatement/")


def _checks(key: str) -> str:
    if key.startswith(MEDICATION_RESOURCES):
        return "which drug a medication order refers to (the MAOI, linezolid and methylene blue checks, and interactions)"
    return CHECKS_BY_KEY.get(key, "related checks")


def unavailable_data(orders, snapshot, policy):
    """DA1: info; warning when a medication list is missing (the contraindication checks are blind)."""
    missing = [u for u in snapshot.unavailable if u.key != "patient"]
    if not missing:
        return []
    blind = any(u.key in MEDICATION_KEYS or u.key.startswith(MEDICATION_RESOURCES) for u in missing)
    lines = [f"{u.key}: {u.reason} — not fully checked: {_checks(u.key)}" for u in missing]
    summary = ("Medication list missing or unreadable: the MAOI, linezolid and methylene blue checks may have "
               "missed drugs. Review it."
               if blind else "Some chart data were unavailable: some milnacipran checks did not run (see details).")
    return [Finding("warning" if blind else "info", summary,
                    "A check that could not run is not a check that passed.\n\n" + bullet_list(lines),
                    "Savella prescribing information", rule_id="DA1")]


def implausible_values(orders, snapshot, policy):
    """DA2: chart values outside their plausible range (entry or unit errors) were not used (info)."""
    if not snapshot.implausible_values:
        return []
    kinds = ", ".join(dict.fromkeys(what for what, _ in snapshot.implausible_values))
    return [Finding("info", f"Implausible value not used ({kinds}): check the chart entry; the checks that needed it "
                    "say so.", "A value outside the plausible range is an entry or unit error, never a patient's "
                    "value, so no calculation used it.\n\n" + bullet_list([line for _, line in snapshot.implausible_values]),
                    "Savella prescribing information", rule_id="DA2")]

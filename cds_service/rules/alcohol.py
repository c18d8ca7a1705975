"""Alcohol (label 5.6, 5.13): an alcohol use disorder on the problem list, or a positive AUDIT-C score."""

from cds_service.fhir.dates import show_date
from cds_service.findings import Finding
from cds_service.rules.conditions import condition_summary
from cds_service.rules.wording import bullet_list

SECTION = "Savella PI §5.6 Hepatotoxicity; §5.13 Concomitant use with alcohol"
ADVICE = "milnacipran should ordinarily not be prescribed with substantial alcohol use."
AUDIT_C_CUT_OFF = {"male": "audit_c_positive_male", "female": "audit_c_positive_female", None: "audit_c_positive_sex_unknown"}


def _positive_audit_c(snapshot, policy):
    """The newest AUDIT-C total within the window, if it is at or above the cut-off for the patient's sex."""
    days = policy.threshold("audit_c_window_days")
    recent = [r for r in snapshot.labs.get("audit_c_total", ()) if r.when and snapshot.days_since(r.when) <= days]
    if not recent:
        return None
    cut_off = policy.threshold(AUDIT_C_CUT_OFF[snapshot.sex])
    return (recent[0], cut_off) if recent[0].value >= cut_off else None


def alcohol_use(orders, snapshot, policy):
    """AL1 alcohol use disorder (any clinical status: history-of); AL2 AUDIT-C at or above the cut-off (warning)."""
    disorder = snapshot.conditions_in("alcohol_use_disorder")
    if disorder:
        return [Finding("warning", condition_summary(disorder, "Alcohol use disorder", ADVICE),
                        bullet_list([str(c) for c in disorder]), SECTION, rule_id="AL1")]
    positive = _positive_audit_c(snapshot, policy)
    if positive is None:
        return []
    score, cut_off = positive
    sex = snapshot.sex or "sex unknown"
    return [Finding("warning", f"AUDIT-C {score.value:g} (positive, {sex}: ≥ {cut_off:g}): heavy alcohol use; " + ADVICE,
                    bullet_list([f"AUDIT-C total score {score.value:g} ({show_date(score.when)}); "
                                 f"positive at {cut_off:g} or more for {sex}"]), SECTION, rule_id="AL2")]

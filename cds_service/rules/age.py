"""Age (label boxed warning, 8.4, 8.5): under 18, young adults, elderly."""

from cds_service.findings import Finding


def age(orders, snapshot, policy):
    """A1 under 18 (warning), A2 18-24 (info), A3 65 and over (info)."""
    years = snapshot.age
    if years is None:
        return []
    if years < policy.threshold("adult_age"):
        return [Finding("warning", f"Patient is {years}: milnacipran is not approved under 18 (boxed warning).",
                        "Safety and effectiveness in pediatric patients have not been established; antidepressants "
                        "increase suicidal thinking and behaviour in children and adolescents.",
                        "Savella PI Boxed warning; §8.4 Pediatric use", rule_id="A1")]
    if years <= policy.threshold("young_adult_max_age"):
        return [Finding("info", f"Patient is {years}: antidepressants raise suicidality risk up to age 24; monitor closely.",
                        "Boxed warning: increased suicidal thinking and behaviour in children, adolescents and young "
                        "adults; watch for clinical worsening, especially early and at dose changes.",
                        "Savella PI Boxed warning; §5.1 Suicidality", rule_id="A2",
                        brief=f"higher risk at {years} (under 25)")]
    if years >= policy.threshold("elderly_age"):
        # the renal checks (R2-R6) own renal function: this notice does not repeat "check renal function"
        return [Finding("info", f"Patient is {years}: hyponatremia is more likely in older patients; watch sodium.",
                        "Elderly patients are more likely to develop hyponatremia, and to have reduced renal function "
                        "(milnacipran is excreted mainly by the kidney: the renal check gives the dose).",
                        "Savella PI §8.5 Geriatric use; §5.8 Hyponatremia", rule_id="A3",
                        brief=f"hyponatremia likelier at {years}")]
    return []


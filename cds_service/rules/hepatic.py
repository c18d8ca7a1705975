"""Hepatic (label 5.6, 2.3): chronic liver disease, hepatic failure, abnormal liver tests."""

from cds_service.fhir.dates import show_date
from cds_service.findings import Finding
from cds_service.rules.wording import bullet_list

SECTION = "Savella PI §5.6 Hepatotoxicity; §2.3 Hepatic impairment"


def liver_disease(orders, snapshot, policy):
    """H1 chronic liver disease (warning); H2 hepatic failure (info; the card is warning with H1)."""
    findings = []
    chronic = snapshot.conditions_in("chronic_liver_disease")
    failure = snapshot.conditions_in("hepatic_failure")
    if chronic:
        findings.append(Finding("warning", "Chronic liver disease: milnacipran should ordinarily not be prescribed.",
                                "Milnacipran may aggravate existing liver disease.\n\n"
                                + bullet_list([str(c) for c in chronic]), SECTION, rule_id="H1"))
    if failure:
        findings.append(Finding("info", "Hepatic failure on the problem list: use milnacipran with caution in severe impairment.",
                                bullet_list([str(c) for c in failure]), SECTION, rule_id="H2"))
    return findings


def abnormal_liver_tests(orders, snapshot, policy):
    """H3: ALT/AST above 3x, or bilirubin above 2x, the result's upper reference limit within 90 days (warning)."""
    days = policy.threshold("liver_tests_window_days")
    lines = []
    for kind, multiple in (("alt", "alt_ast_uln_multiple"), ("ast", "alt_ast_uln_multiple"),
                           ("bilirubin_total", "bilirubin_uln_multiple")):
        for result in snapshot.labs.get(kind, ()):
            recent = result.when is not None and snapshot.days_since(result.when) <= days
            if recent and result.reference_high and result.value > policy.threshold(multiple) * result.reference_high:
                lines.append(f"{kind.replace('_', ' ').upper()} {result.value:g} {result.unit} "
                             f"(upper limit {result.reference_high:g}; {show_date(result.when)})")
                break
    if not lines:
        return []
    return [Finding("warning", "Abnormal liver tests: evaluate liver function before starting milnacipran.",
                    "Stop milnacipran if jaundice or other evidence of liver dysfunction appears.\n\n" + bullet_list(lines),
                    SECTION, rule_id="H3")]


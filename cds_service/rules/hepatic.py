"""Hepatic (label 5.6, 2.3): chronic liver disease, hepatic failure, abnormal liver tests."""

from cds_service.fhir.dates import show_date
from cds_service.findings import Finding
from cds_service.rules.conditions import condition_summary
from cds_service.rules.wording import bullet_list

SECTION = "Savella PI §5.6 Hepatotoxicity; §2.3 Hepatic impairment"


def liver_disease(orders, snapshot, policy):
    """H1 chronic liver disease (warning); H2 hepatic failure (info; the card is warning with H1)."""
    findings = []
    chronic = snapshot.conditions_in("chronic_liver_disease")
    failure = snapshot.conditions_in("hepatic_failure")
    if chronic:
        findings.append(Finding("warning", condition_summary(chronic, "Chronic liver disease",
                                                             "milnacipran should ordinarily not be prescribed."),
                                "Milnacipran may aggravate existing liver disease.\n\n"
                                + bullet_list([str(c) for c in chronic]), SECTION, rule_id="H1"))
    if failure:
        findings.append(Finding("info", "Hepatic failure on the problem list: use milnacipran with caution in severe impairment.",
                                bullet_list([str(c) for c in failure]), SECTION, rule_id="H2"))
    return findings


DEFAULT_ULN = {("alt", "male"): "alt_default_uln_male", ("alt", "female"): "alt_default_uln_female",
               ("alt", None): "alt_default_uln_sex_unknown", ("ast", "male"): "ast_default_uln",
               ("ast", "female"): "ast_default_uln", ("ast", None): "ast_default_uln"}


def _upper_limit(kind, result, snapshot, policy) -> tuple[float | None, str]:
    """The result's own reference-range high, else the default ULN for ALT/AST in U/L (code-families.md §4)."""
    if result.reference_high:
        return result.reference_high, "upper limit"
    default = DEFAULT_ULN.get((kind, snapshot.sex))
    if default is None or result.unit != "U/L":
        return None, ""
    sex = snapshot.sex or "sex unknown"
    return policy.threshold(default), f"no reference range on the result: ULN assumed for {sex}"


def abnormal_liver_tests(orders, snapshot, policy):
    """H3: ALT/AST above 3x, or bilirubin above 2x, the upper reference limit within 90 days (warning).

    ALT/AST without a reference range are judged against the default ULN (by sex).
    """
    days = policy.threshold("liver_tests_window_days")
    lines = []
    for kind, multiple in (("alt", "alt_ast_uln_multiple"), ("ast", "alt_ast_uln_multiple"),
                           ("bilirubin_total", "bilirubin_uln_multiple")):
        for result in snapshot.labs.get(kind, ()):
            recent = result.when is not None and snapshot.days_since(result.when) <= days
            limit, words = _upper_limit(kind, result, snapshot, policy)
            if recent and limit and result.value > policy.threshold(multiple) * limit:
                lines.append(f"{kind.replace('_', ' ').upper()} {result.value:g} {result.unit} "
                             f"({words} {limit:g}; {show_date(result.when)})")
                break
    if not lines:
        return []
    return [Finding("warning", "Abnormal liver tests: evaluate liver function before starting milnacipran.",
                    "Stop milnacipran if jaundice or other evidence of liver dysfunction appears.\n\n" + bullet_list(lines),
                    SECTION, rule_id="H3")]

"""Pregnancy and lactation (label 8.1, 8.2/8.3)."""

from cds_service.fhir.dates import show_date
from cds_service.findings import Finding
from cds_service.rules.wording import bullet_list

POSITIVE_WORDS = ("positive", "detected", "pos", "reactive")
NEGATIVE_WORDS = ("negative", "not detected", "neg", "nonreactive", "non-reactive")


def _is_positive(text: str) -> bool:
    return any(word in text.split() or word in text for word in POSITIVE_WORDS) and not any(
        word in text for word in NEGATIVE_WORDS)


def pregnancy_lactation(orders, snapshot, policy):
    """P1 pregnancy condition or positive hCG within 273 days (warning); P2 breastfeeding (info).

    Not limited by ``Patient.gender``: it is administrative, and the evidence is specific (kb §2.2).
    """
    findings = []
    days = policy.threshold("hcg_positive_window_days")
    evidence = [str(c) for c in snapshot.conditions_in("pregnancy")]
    evidence += [f"positive hCG ({show_date(r.when)})" for r in snapshot.hcg_results
                 if r.when and snapshot.days_since(r.when) <= days and _is_positive(r.text)]
    if evidence:
        findings.append(Finding("warning", "Pregnant: use milnacipran only if the benefit justifies the fetal risk.",
                                "Late-pregnancy exposure: possible neonatal complications and postpartum haemorrhage. "
                                "Enrol in the Savella pregnancy registry.\n\n" + bullet_list(evidence),
                                "Savella PI §8.1 Pregnancy; §5.9 Increased risk of bleeding", rule_id="P1"))
    lactation = snapshot.conditions_in("lactation")
    if lactation:
        findings.append(Finding("info", "Breastfeeding: milnacipran may pass into milk; weigh benefit and risk.",
                                bullet_list([str(c) for c in lactation]),
                                "Savella PI §8.2 Lactation", rule_id="P2"))
    return findings


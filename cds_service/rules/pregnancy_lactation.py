"""Pregnancy and lactation (label 8.1, 8.2/8.3).

Pregnancy counts from the problem list (current, within its window, not closed by a later
end-of-pregnancy record: the snapshot decides) or from a positive hCG within
``hcg_positive_window_days``. A quantitative hCG the lab did not call positive or negative is
positive at ``hcg_quantitative_positive_iu_l`` or more and negative below
``hcg_quantitative_negative_below_iu_l`` (between: indeterminate); a quantitative or molar hCG is
also a tumour marker, so it counts only for patients who can be pregnant (sex not male). A
positive test is set aside by a negative one taken after it and within
``hcg_negative_window_days`` of now ("not pregnant" needs a recent negative, kb §2.2), or by an
end-of-pregnancy record after it.
"""

from cds_service.fhir.dates import show_date
from cds_service.findings import Finding
from cds_service.rules.wording import bullet_list


def hcg_meaning(result, policy) -> str | None:
    """positive / negative / indeterminate: the lab's word first, else the knowledge cut-offs in IU/L."""
    if result.meaning is not None or result.iu_per_l is None:
        return result.meaning
    if result.iu_per_l >= policy.threshold("hcg_quantitative_positive_iu_l"):
        return "positive"
    if result.iu_per_l < policy.threshold("hcg_quantitative_negative_below_iu_l"):
        return "negative"
    return "indeterminate"


def _hcg_evidence(snapshot, policy) -> list[str]:
    """The newest positive hCG within the window, unless a recent negative or an end of pregnancy came after it."""
    results = [(r, hcg_meaning(r, policy)) for r in snapshot.hcg_results
               if r.when is not None and not (r.quantitative and snapshot.sex == "male")]
    positive = next((r for r, meaning in results if meaning == "positive"
                     and snapshot.days_since(r.when) <= policy.threshold("hcg_positive_window_days")), None)
    if positive is None:
        return []
    later_negative = [r for r, meaning in results if meaning == "negative" and r.when > positive.when]
    if any(snapshot.days_since(r.when) <= policy.threshold("hcg_negative_window_days") for r in later_negative):
        return []
    if any(c.recorded and c.recorded >= positive.when for c in snapshot.conditions_in("pregnancy_end")):
        return []
    lines = [f"positive {positive.shown} ({show_date(positive.when)})"]
    lines += [f"negative {r.shown} ({show_date(r.when)}): more than "
              f"{policy.threshold('hcg_negative_window_days'):g} days ago, so not taken as 'not pregnant'"
              for r in later_negative[:1]]
    return lines


def pregnancy_lactation(orders, snapshot, policy):
    """P1 pregnancy condition or positive hCG within 273 days (warning); P2 breastfeeding (info).

    Not limited by ``Patient.gender`` for a pregnancy test or diagnosis: it is administrative, and
    the evidence is specific (kb §2.2).
    """
    findings = []
    evidence = [str(c) for c in snapshot.conditions_in("pregnancy")] + _hcg_evidence(snapshot, policy)
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

"""Hyponatremia (label 5.8): low sodium recently, hyponatremia on the problem list (ever), or volume depletion now."""

from cds_service.fhir.dates import show_date
from cds_service.findings import Finding
from cds_service.rules.wording import bullet_list


def hyponatremia(orders, snapshot, policy):
    """NA1: serum sodium below 135 within 30 days, a hyponatremia condition (history-of) or volume depletion (info)."""
    days = policy.threshold("sodium_window_days")
    low = [r for r in snapshot.labs.get("sodium", ()) if r.when and snapshot.days_since(r.when) <= days
           and r.value < policy.threshold("sodium_low_below")][:1]
    lines = [f"Sodium {r.value:g} {r.unit} ({show_date(r.when)})" for r in low]
    lines += [str(c) for c in snapshot.conditions_in("hyponatremia", "volume_depletion")]
    if not lines:
        return []
    return [Finding("info", "Low sodium: hyponatremia (SIADH) can occur with milnacipran, mostly in the elderly. Monitor.",
                    bullet_list(lines), "Savella PI §5.8 Hyponatremia", rule_id="NA1")]


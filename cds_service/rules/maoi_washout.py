"""MAOIs, linezolid and IV methylene blue (label 4.1, 2.5, 2.6, 5.2): contraindications and washouts.

These checks read only the medication lists: they never depend on optional data (renal, vitals).
"""

import datetime

from cds_service.fhir_time import show_time
from cds_service.findings import Finding
from cds_service.rules.common import bullet_list
from cds_service.rules.common import cancel_orders
from cds_service.rules.common import describe_use

IDS = ("M1", "M1u", "M2", "M3", "M3o", "M4")
SECTION = "Savella PI §4.1 Contraindications (MAOIs); §2.5–2.6; §5.2 Serotonin syndrome"
# An injectable product, or no route recorded, counts as IV: the conservative reading for a
# contraindication (hospital methylene blue is given IV; oral products carry an oral route hint).
INTRAVENOUS_ROUTES = {"intravenous", "injectable", None}


def _within_window(use, now, window: datetime.timedelta) -> bool:
    """Active, or its stop instant less than ``window`` ago."""
    return use.is_current or (use.stopped_at is not None and now - use.stopped_at < window)


def psychiatric_maoi(orders, snapshot, policy):
    """M1: an MAOI for psychiatric use within 14 days (transdermal selegiline only); M1u: stop date unknown."""
    washout = datetime.timedelta(days=policy.threshold("maoi_washout_days"))
    recent_days = policy.threshold("stopped_med_unknown_date_recent_days")
    inside, unknown_old = [], []
    for use in snapshot.medications_in("maoi_psychiatric"):
        if use.ingredient.name == "selegiline" and use.route != "transdermal":
            continue  # oral selegiline is rule M4 (kb §0.5 Decision 5)
        if _within_window(use, snapshot.now, washout):
            inside.append(f"{describe_use(use, snapshot.now)}" + (
                f"; 14-day washout ends **{show_time(use.stopped_at + washout)}**" if use.stopped_at else ""))
        elif use.status == "stopped" and use.stopped_at is None:
            days = snapshot.days_since(use.recorded)
            if days is not None and days < recent_days:
                inside.append(f"{describe_use(use, snapshot.now)}; recorded {days:.0f} days ago, so treated as "
                              "inside the washout")
            else:
                unknown_old.append(describe_use(use, snapshot.now))
    if inside:
        return [Finding("critical", "MAOI within 14 days: milnacipran is contraindicated. Cancel this order.",
                        f"No milnacipran within {policy.threshold('maoi_washout_days'):g} days of stopping an MAOI "
                        f"intended to treat psychiatric disorders.\n\n{bullet_list(inside)}",
                        SECTION, (cancel_orders(orders),), rule_id="M1")]
    if unknown_old:
        return [Finding("warning", "MAOI stopped on an unknown date: confirm at least 14 days have passed.",
                        bullet_list(unknown_old), SECTION, rule_id="M1u")]
    return []


def linezolid_or_intravenous_methylene_blue(orders, snapshot, policy):
    """M2/M3: linezolid, or methylene blue by IV, active or ended less than 24 h ago (critical)."""
    window = datetime.timedelta(hours=policy.threshold("linezolid_methylene_blue_window_hours"))
    findings = []
    linezolid = [u for u in snapshot.medications_in("linezolid") if _within_window(u, snapshot.now, window)]
    if linezolid:
        findings.append(Finding(
            "critical", "Linezolid within 24 hours: do not start milnacipran. Cancel this order.",
            "Do not start milnacipran in a patient being treated with linezolid. Restart or start milnacipran 24 h "
            f"after the last linezolid dose.\n\n{bullet_list([describe_use(u, snapshot.now) for u in linezolid])}",
            SECTION, (cancel_orders(orders),), rule_id="M2"))
    blue = [u for u in snapshot.medications_in("methylene_blue") if _within_window(u, snapshot.now, window)]
    intravenous = [u for u in blue if u.route in INTRAVENOUS_ROUTES]
    if intravenous:
        findings.append(Finding(
            "critical", "IV methylene blue within 24 hours: do not start milnacipran. Cancel this order.",
            "Serotonin syndrome was reported with IV methylene blue (1–8 mg/kg) and serotonergic drugs. Start "
            f"milnacipran 24 h after the last dose.\n\n{bullet_list([describe_use(u, snapshot.now) for u in intravenous])}",
            SECTION, (cancel_orders(orders),), rule_id="M3"))
    elif blue:
        findings.append(Finding(
            "info", "Methylene blue (not IV) on record: serotonin syndrome reports involve IV use; monitor.",
            bullet_list([describe_use(u, snapshot.now) for u in blue]), SECTION, rule_id="M3o"))
    return findings


def other_maoi(orders, snapshot, policy):
    """M4: rasagiline, safinamide, procarbazine, moclobemide or oral selegiline, active (warning)."""
    uses = [u for u in snapshot.medications_in("maoi_other", "maoi_psychiatric") if u.is_current
            and (u.group == "maoi_other" or (u.ingredient.name == "selegiline" and u.route != "transdermal"))]
    if not uses:
        return []
    return [Finding("warning", "Another MAO inhibitor is active: serotonin syndrome risk. Avoid or monitor closely.",
                    f"MAO inhibitors impair serotonin metabolism (label §5.2).\n\n"
                    f"{bullet_list([describe_use(u, snapshot.now) for u in uses])}", SECTION, rule_id="M4")]


RULES = (psychiatric_maoi, linezolid_or_intravenous_methylene_blue, other_maoi)

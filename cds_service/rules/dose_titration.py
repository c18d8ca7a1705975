"""Dose and titration (label 2.1): daily maximum, divided dosing, titration on a new start.

All three checks need a dose; a draft without one (order-select) is skipped quietly. A draft whose
dosage instructions cannot be read (D0) says so: an unreadable 200 mg/day order never looks checked.
"""

from cds_service.findings import Finding
from cds_service.findings.suggestions import change_dose
from cds_service.findings.suggestions import for_order
from cds_service.findings.suggestions import switch_to_titration_pack
from cds_service.findings.suggestions import titration_schedule
from cds_service.rules.new_start import is_new_start
from cds_service.rules.wording import ordered
from cds_service.rules.wording import unread_dose

SECTION = "Savella PI §2.1 Recommended dosing"


def dose_not_checked(orders, snapshot, policy):
    """D0: the ordered dose could not be checked: implausible, an entry error (warning), or unreadable (info)."""
    t = policy.threshold
    findings = []
    for order in orders:
        if order.implausible_dose:
            findings.append(Finding(
                "warning", "Implausible value in the order's dose: check the dose; the dose checks did not run.",
                f"Ordered: {order.implausible_dose}. A dose outside the plausible range is an entry error, so the "
                "maximum-dose, divided-dose and titration checks were not made on it.", SECTION, rule_id="D0"))
        elif order.dose_unread:
            findings.append(Finding(
                "info", "Dose NOT checked: the ordered milnacipran dose could not be read. Check it by hand.",
                f"{unread_dose(order)} The checks for the {t('max_daily_mg'):g} mg/day maximum, a single dose above "
                f"{t('max_single_dose_mg'):g} mg, two divided doses a day and the titration on a new start did not run.",
                SECTION, rule_id="D0"))
    return findings


def maximum_daily_dose(orders, snapshot, policy):
    """D1: more than 200 mg/day (warning); suggests 100 mg twice a day unless the renal card sets the dose."""
    findings = []
    severe = snapshot.renal.band(policy.thresholds) in ("severe", "esrd")
    maximum = policy.threshold("max_single_dose_mg")
    for order in orders:
        daily = order.dosing.max_daily_mg if order.dosing else None
        if daily is None or daily <= policy.threshold("max_daily_mg"):
            continue
        label = for_order(f"Change to {maximum:g} mg twice a day", order, orders)
        suggestion = None if severe else change_dose(order, policy.knowledge, maximum, 2, label, recommended=True)
        findings.append(Finding(
            "warning", f"{daily:g} mg/day ordered; the maximum is {policy.threshold('max_daily_mg'):g} mg/day "
            "(higher doses were not studied).", ordered(order) + (
                " The renal card gives the dose for this patient's renal function." if severe else ""),
            SECTION, (suggestion,) if suggestion else (), rule_id="D1"))
    return findings


def divided_doses(orders, snapshot, policy):
    """D2: a single dose above 100 mg, or a once-daily dose above the day-1 12.5 mg (info)."""
    findings = []
    for order in orders:
        step = order.dosing.maintenance if order.dosing else None
        if step is None or step.mg_per_dose is None or step.doses_per_day is None:
            continue
        once_daily = step.doses_per_day == 1 and step.mg_per_dose > policy.threshold("titration_day1_mg")
        if not (once_daily or step.mg_per_dose > policy.threshold("max_single_dose_mg")):
            continue
        half = step.mg_per_day / 2
        label = for_order(f"Change to {half:g} mg twice a day", order, orders)
        suggestion = change_dose(order, policy.knowledge, half, 2, label) \
            if step.mg_per_day <= policy.threshold("max_daily_mg") else None
        summary = (f"Ordered once a day ({step.mg_per_dose:g} mg): milnacipran is given in two divided doses a day."
                   if once_daily else f"Single dose of {step.mg_per_dose:g} mg: give milnacipran in two divided doses a day.")
        findings.append(Finding("info", summary,
                                ordered(order), SECTION,
                                (suggestion,) if suggestion else (), rule_id="D2"))
    return findings



def titration_on_new_start(orders, snapshot, policy):
    """D3: a new start at >= 100 mg/day with no titration steps (info; suggests the titration pack).

    Not in severe renal impairment or ESRD: the pack ends above the renal start dose, and the
    renal card gives the dose.
    """
    impaired = snapshot.renal.band(policy.thresholds) in ("severe", "esrd") or snapshot.conditions_in("esrd", "dialysis")
    if impaired or not is_new_start(snapshot, policy):
        return []
    findings = []
    for order in orders:
        dosing = order.dosing
        first = dosing.daily_doses_mg[0] if dosing and dosing.daily_doses_mg else None
        if (order.match.titration_pack or first is None or dosing.is_titrated
                or first < policy.threshold("usual_maintenance_daily_mg")):
            continue
        suggestion = switch_to_titration_pack(order, policy.knowledge, policy.thresholds,
                                              for_order("Switch to the Savella 4-week titration pack", order, orders))
        suggestions = (suggestion,) if suggestion else ()
        findings.append(Finding(
            "info", f"New start at {first:g} mg/day: the label titrates from "
            f"{policy.threshold('titration_day1_mg'):g} mg over the first week.",
            f"{ordered(order)}\n\nLabel titration: "
            + "; ".join(step["text"] for step in titration_schedule(policy.thresholds)) + ".",
            SECTION, suggestions, rule_id="D3",
            brief=f"titrate from {policy.threshold('titration_day1_mg'):g} mg ({first:g} mg/day ordered)"))
    return findings


"""Blood pressure and heart rate history (label 5.3, 5.4): baseline, uncontrolled, severe, tachycardia, rise.

Cut-offs are the reference's design choices (kb §1g); the label says measure before starting,
treat first, and reduce or stop on a sustained rise.
"""

from statistics import mean

from cds_service.fhir.dates import show_date
from cds_service.fhir.read import show_value
from cds_service.findings import Finding
from cds_service.findings.suggestions import order_observation
from cds_service.rules.new_start import dose_change
from cds_service.rules.new_start import is_new_start
from cds_service.rules.wording import bullet_list

SECTION = "Savella PI §5.3 Elevated blood pressure; §5.4 Elevated heart rate"


def _recent(readings, snapshot, policy):
    days = policy.threshold("bp_hr_window_days")
    return [r for r in readings if r.when is not None and snapshot.days_since(r.when) <= days]  # clock skew: future counts


def _bp_text(reading) -> str:
    systolic = show_value(reading.systolic) if reading.systolic is not None else "?"
    diastolic = show_value(reading.diastolic) if reading.diastolic is not None else "?"
    return f"BP {systolic}/{diastolic} mmHg ({show_date(reading.when)})"


def _implausible_lines(snapshot, policy, kinds=("blood_pressure", "heart_rate")) -> list[str]:
    """Readings in the window left out as implausible (entry or unit errors), shown so they can be corrected."""
    lines = []
    for kind in kinds:
        readings, ranges = snapshot.implausible.get(kind, ((), ""))
        for reading in _recent(readings, snapshot, policy):
            shown = (_bp_text(reading) if kind == "blood_pressure"
                     else f"HR {show_value(reading.value)}/min ({show_date(reading.when)})")
            lines.append(f"Not used, implausible value: {shown} ({ranges})")
    return lines


def _mean(values):
    values = [v for v in values if v is not None]
    return mean(values) if values else None


def blood_pressure_history(orders, snapshot, policy):
    """V3 severe (critical), V2 uncontrolled (warning) on the mean of the last readings; V1 no baseline (info)."""
    last = int(policy.threshold("bp_hr_mean_of_last_readings"))
    pressures = _recent(snapshot.blood_pressures, snapshot, policy)[:last]
    crisis = snapshot.conditions_in("hypertensive_crisis")
    hypertension = snapshot.conditions_in("hypertension")
    systolic = _mean(r.systolic for r in pressures)
    diastolic = _mean(r.diastolic for r in pressures)
    lines = [_bp_text(r) for r in pressures] + [str(c) for c in crisis + hypertension]
    if systolic is not None or diastolic is not None:
        lines.insert(0, f"Mean of the last {len(pressures)}: {systolic or 0:.0f}/{diastolic or 0:.0f} mmHg")
    detail = bullet_list(lines + _implausible_lines(snapshot, policy, ("blood_pressure",)))
    on_treatment = not is_new_start(snapshot, policy)
    if on_treatment:
        detail += "\n\nAlready on milnacipran: this order is a change on treatment. " + _change_words(orders, snapshot)
    if crisis or (systolic or 0) >= policy.threshold("sbp_severe") or (diastolic or 0) >= policy.threshold("dbp_severe"):
        summary = ("Severe hypertension on milnacipran: reduce the dose or stop it; do not increase. Control BP."
                   if on_treatment else "Severe hypertension: control blood pressure before starting milnacipran.")
        return [Finding("critical", summary, detail, SECTION, rule_id="V3")]
    if (systolic or 0) >= policy.threshold("sbp_uncontrolled") or (diastolic or 0) >= policy.threshold("dbp_uncontrolled"):
        summary = ("Uncontrolled blood pressure on milnacipran: consider a lower dose or stopping, not an increase."
                   if on_treatment else
                   "Uncontrolled blood pressure: treat hypertension before starting milnacipran; recheck during titration.")
        return [Finding("warning", summary, detail, SECTION, rule_id="V2")]
    if hypertension and not pressures:
        return [Finding("warning", f"Hypertension with no BP reading in {policy.threshold('bp_hr_window_days'):g} days: "
                        "measure and control BP before starting milnacipran.", detail, SECTION, rule_id="V2")]
    return []


def tachycardia(orders, snapshot, policy):
    """V4: mean of the last heart rates above 100/min (warning)."""
    last = int(policy.threshold("bp_hr_mean_of_last_readings"))
    rates = _recent(snapshot.heart_rates, snapshot, policy)[:last]
    rate = _mean(r.value for r in rates)
    if rate is None or rate <= policy.threshold("heart_rate_tachycardia_above"):
        return []
    lines = [f"Mean of the last {len(rates)}: {rate:.0f}/min"] + [f"HR {r.value:g}/min ({show_date(r.when)})" for r in rates]
    lines += _implausible_lines(snapshot, policy, ("heart_rate",))
    return [Finding("warning", f"Resting heart rate {rate:.0f}/min: treat tachyarrhythmia before starting milnacipran.",
                    bullet_list(lines), SECTION, rule_id="V4")]


def sustained_rise_on_treatment(orders, snapshot, policy):
    """V5: on milnacipran, >= 2 readings since its start with SBP +15 or HR +20 over the pre-treatment baseline."""
    starts = [u.start for u in snapshot.medications_in("milnacipran") if u.status == "active" and u.start]
    if not starts:
        return []
    start = min(starts)
    findings_lines = []
    for label, readings, value, rise in (
        ("SBP", snapshot.blood_pressures, lambda r: r.systolic, policy.threshold("bp_rise_sbp_mmhg")),
        ("HR", snapshot.heart_rates, lambda r: r.value, policy.threshold("hr_rise_bpm")),
    ):
        before = [r for r in readings if r.when and r.when < start and value(r) is not None]
        after = [r for r in readings if r.when and r.when >= start and value(r) is not None]
        if not before:
            continue
        baseline = value(before[0])
        raised = [r for r in after if value(r) >= baseline + rise]
        if len(raised) >= policy.threshold("bp_hr_rise_min_readings"):
            findings_lines.append(f"{label} baseline {baseline:g} ({show_date(before[0].when)}); since the start: "
                                  + ", ".join(f"{value(r):g} ({show_date(r.when)})" for r in raised))
    if not findings_lines:
        return []
    return [Finding("warning", "Sustained BP/HR rise on milnacipran: consider a lower dose or stopping, not an increase.",
                    bullet_list(findings_lines) + "\n\n" + _change_words(orders, snapshot), SECTION, rule_id="V5")]


def _change_words(orders, snapshot) -> str:
    """What this order does to the dose of the active order it renews: raises, lowers, keeps."""
    changes = [change for change in (dose_change(order, snapshot) for order in orders) if change]
    if not changes:
        return "The label answers a sustained rise by reducing the dose or stopping (5.3, 5.4)."
    old, new = changes[0]
    verb = "raises" if new > old else "lowers"
    advice = "Reconsider the increase: " if new > old else ""
    return (f"This order {verb} the daily dose from {old:g} to {new:g} mg. {advice}"
            "the label answers a sustained rise by reducing the dose or stopping (5.3, 5.4).")


def missing_baseline(orders, snapshot, policy):
    """V1: no BP or no heart rate within the window (info, with orders for the missing vitals)."""
    kinds = []
    if not _recent(snapshot.blood_pressures, snapshot, policy):
        kinds.append("bp_panel")
    if not _recent(snapshot.heart_rates, snapshot, policy):
        kinds.append("heart_rate")
    if not kinds:
        return []
    missing = " and ".join({"bp_panel": "blood pressure", "heart_rate": "heart rate"}[kind] for kind in kinds)
    suggestion = order_observation(policy.knowledge, kinds, orders[0].patient_id, f"Order {missing}",
                                   "Baseline before starting milnacipran (label 5.3/5.4)")
    usable = policy.threshold("bp_hr_usable_days")
    older = []  # the last reading within the usable period, shown but not taken as a baseline
    for kind, readings, shown in (("bp_panel", snapshot.blood_pressures, _bp_text),
                                  ("heart_rate", snapshot.heart_rates, lambda r: f"HR {r.value:g}/min ({show_date(r.when)})")):
        last = next((r for r in readings if r.when and snapshot.days_since(r.when) <= usable), None)
        if kind in kinds and last is not None:
            older.append(f"Older than the window, not a baseline: {shown(last)}")
    ignored = _implausible_lines(snapshot, policy, tuple({"bp_panel": "blood_pressure"}.get(k, k) for k in kinds))
    if ignored:
        return [Finding("info", f"No usable {missing} in the last {policy.threshold('bp_hr_window_days'):g} days "
                        "(an implausible value was not used): the label asks for a baseline before starting.",
                        f"Missing within the window: {missing}.\n\n" + bullet_list(ignored + older), SECTION,
                        (suggestion,), rule_id="V1")]
    return [Finding("info", f"No {missing} in the last {policy.threshold('bp_hr_window_days'):g} days: the label asks "
                    "for a baseline before starting.", bullet_list([f"Missing within the window: {missing}"] + older),
                    SECTION, (suggestion,), rule_id="V1")]


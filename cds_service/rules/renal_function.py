"""Renal function (label 2.2): CrCl band, renal dose ceiling, ESRD/dialysis, missing or stale data."""

from cds_service.findings import Finding
from cds_service.findings.suggestions import cancel_orders
from cds_service.findings.suggestions import change_dose
from cds_service.findings.suggestions import for_order
from cds_service.findings.suggestions import order_observation
from cds_service.findings.suggestions import titrate_to
from cds_service.rules.new_start import is_new_start
from cds_service.rules.wording import bullet_list
from cds_service.rules.wording import ordered
from cds_service.rules.wording import unread_dose
from cds_service.snapshot.creatinine_clearance import show_crcl

SECTION = "Savella PI §2.2 Dosing in patients with renal impairment"


def _estimate_text(renal) -> str:
    lines = [f"Estimated CrCl **{show_crcl(renal.crcl)}** ({renal.method})"] + list(renal.inputs) + list(renal.notes)
    return bullet_list(lines)


def _ceiling_text(policy) -> str:
    t = policy.threshold
    return (f"Severe impairment (CrCl {t('crcl_esrd_below'):g}–{t('crcl_severe_below') - 1:g} mL/min): maintenance "
            f"{t('renal_target_dose_mg'):g} mg twice a day ({t('renal_target_daily_mg'):g} mg/day); up to "
            f"{t('renal_max_dose_mg'):g} mg twice a day ({t('renal_max_daily_mg'):g} mg/day) if the patient responds.")


def end_stage_renal_disease(orders, snapshot, policy):
    """R5: CrCl < 5, an ESRD/CKD-5 diagnosis, or dialysis — not recommended (critical)."""
    evidence = [str(c) for c in snapshot.conditions_in("esrd", "dialysis")]
    band = snapshot.renal.band(policy.thresholds)
    if band == "esrd":
        evidence.insert(0, f"estimated CrCl {show_crcl(snapshot.renal.crcl)}")
    if not evidence:
        return []
    detail = (f"Milnacipran is **not recommended in end-stage renal disease**: the label gives no dose, and 55% is "
              f"excreted unchanged in urine.\n\n{bullet_list(evidence)}")
    if snapshot.renal.crcl is not None:
        detail += "\n\n" + _estimate_text(snapshot.renal)
    return [Finding("critical", "End-stage renal disease: milnacipran is not recommended. Cancel this order.",
                    detail, SECTION, cancel_orders(orders), rule_id="R5")]


def renal_dose_ceiling(orders, snapshot, policy):
    """R2/R3/R4/R4b: the dose against the CrCl band (dose checks skip drafts without a dose)."""
    band = snapshot.renal.band(policy.thresholds)
    if snapshot.conditions_in("esrd", "dialysis"):
        return []  # R5 already says not recommended; no dose to suggest
    if band == "moderate":
        return [Finding("info",
                        f"Moderate renal impairment (CrCl {show_crcl(snapshot.renal.crcl)}): use milnacipran with caution.",
                        _estimate_text(snapshot.renal), SECTION, rule_id="R2")]
    if band != "severe":
        return []
    findings = []
    for order in orders:
        daily = order.dosing.max_daily_mg if order.dosing else None
        findings.append(_severe_band_finding(order, daily, orders, snapshot, policy))
    return findings


def _severe_band_finding(order, daily, orders, snapshot, policy):
    """R4 above the renal maximum, R4b a new start above the renal starting dose, R3 otherwise.

    A new start titrates from 12.5 mg up to the renal starting dose: that is the recommended fix;
    a patient already on milnacipran is changed to 25 mg twice a day.
    """
    crcl = f"CrCl {show_crcl(snapshot.renal.crcl)}"
    detail = f"{_estimate_text(snapshot.renal)}\n\n{_ceiling_text(policy)}"
    target, ceiling = policy.threshold("renal_target_dose_mg"), policy.threshold("renal_max_dose_mg")
    start_daily, max_daily = policy.threshold("renal_target_daily_mg"), policy.threshold("renal_max_daily_mg")
    new_start = is_new_start(snapshot, policy)
    titration = titrate_to(order, policy.knowledge, policy.thresholds, start_daily, for_order(
        f"Titrate from {policy.threshold('titration_day1_mg'):g} mg up to {target:g} mg twice a day", order, orders),
        recommended=True) if new_start else None
    to_target = change_dose(order, policy.knowledge, target, 2,
                            for_order(f"Change to {target:g} mg twice a day", order, orders), recommended=not titration)
    if daily is not None and daily > max_daily:
        to_ceiling = change_dose(order, policy.knowledge, ceiling, 2,
                                 for_order(f"Change to {ceiling:g} mg twice a day", order, orders))
        return Finding("warning", f"{daily:g} mg/day ordered; renal maximum is {max_daily:g} mg/day "
                       f"(severe renal impairment, {crcl}). Reduce the dose.",
                       f"{ordered(order)}\n\n{detail}", SECTION,
                       tuple(s for s in (titration, to_target, to_ceiling) if s), rule_id="R4")
    if daily is not None and daily > start_daily and new_start:
        return Finding("info", f"{daily:g} mg/day ordered; renal maximum to start is {start_daily:g} mg/day "
                       f"(severe renal impairment, {crcl}).",
                       f"{ordered(order)}\n\n{detail}", SECTION,
                       tuple(s for s in (titration, to_target) if s), rule_id="R4b")
    if order.dose_unread:
        return Finding("info", f"Severe renal impairment ({crcl}): dose NOT checked (unreadable). Renal maximum is "
                       f"{max_daily:g} mg/day: check the order by hand.",
                       f"{unread_dose(order)} It was not checked against the renal maximum.\n\n{detail}",
                       SECTION, rule_id="R3")
    return Finding("info", f"Severe renal impairment ({crcl}): renal maximum is "
                   f"{max_daily:g} mg/day ({target:g} mg twice a day to start).",
                   detail, SECTION, rule_id="R3")


def missing_renal_data(orders, snapshot, policy):
    """R6: no usable CrCl — info, warning at age >= 65 or with CKD on the problem list."""
    renal = snapshot.renal
    if renal.crcl is not None or (snapshot.age is not None and snapshot.age < policy.threshold("adult_age")):
        return []
    ckd = snapshot.conditions_in("ckd", "ckd_stage_4", "kidney_transplant")  # a CKD diagnosis (kb §0.5 Decision 3)
    elderly = snapshot.age is not None and snapshot.age >= policy.threshold("elderly_age")
    reasons = [f"missing: {', '.join(renal.missing)}"] + [str(c) for c in ckd]
    if elderly:
        reasons.append(f"age {snapshot.age}")
    detail = (f"Label dosing depends on creatinine clearance, which could not be estimated.\n\n{bullet_list(reasons)}"
              f"\n\n{_ceiling_text(policy)}")
    suggestion = order_observation(policy.knowledge, ("creatinine_mass",), orders[0].patient_id, "Order a serum creatinine",
                                   "Creatinine clearance for milnacipran renal dosing")
    summary = ("Renal dosing unknown: an implausible value was not used (see details). Check the chart; "
               "order a serum creatinine." if any("implausible" in m for m in renal.missing) else
               "Renal dosing unknown: no recent creatinine or weight on file. Order a serum creatinine.")
    return [Finding("warning" if ckd or elderly else "info", summary,
                    detail, SECTION, (suggestion,), rule_id="R6")]


def stale_or_unstable_renal_data(orders, snapshot, policy):
    """R7: the creatinine behind the estimate is stale (91–365 days) or renal function is unstable."""
    renal = snapshot.renal
    if renal.crcl is None or not (renal.stale or renal.unstable):
        return []
    problem = "unstable" if renal.unstable else f"based on a creatinine {snapshot.days_since(renal.measured_at):.0f} days old"
    suggestion = order_observation(policy.knowledge, ("creatinine_mass",), orders[0].patient_id, "Order a serum creatinine",
                                   "Repeat creatinine for milnacipran renal dosing")
    return [Finding("info", f"Renal estimate {problem}: repeat the serum creatinine before maintenance dosing.",
                    _estimate_text(renal), SECTION, (suggestion,), rule_id="R7")]


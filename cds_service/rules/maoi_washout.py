"""MAOIs, linezolid and IV methylene blue (label 4.1, 2.5, 2.6, 5.2): contraindications and washouts.

These checks read only the medication lists: they never depend on optional data (renal, vitals).
Medication administrations (MAR) are not read yet (kb §0.5 Decision 6); the cards say so.
"""

import datetime

from cds_service.fhir.dates import show_date
from cds_service.fhir.dates import show_time
from cds_service.findings import Finding
from cds_service.findings.suggestions import cancel_orders
from cds_service.rules.wording import bullet_list
from cds_service.rules.wording import describe_use

SECTION = "Savella PI §4.1 Contraindications (MAOIs); §2.5–2.6; §5.2 Serotonin syndrome"
SECTION_OTHER_MAOI = "Savella PI §5.2 Serotonin syndrome; §7 Drug interactions"
INTRAVENOUS_ROUTES = {"intravenous", "injectable"}
NOT_READ = "Medication administration records (MAR) are not read: check them for recent doses too."


def is_psychiatric_selegiline(use) -> bool:
    """Transdermal selegiline (Emsam) is the psychiatric MAOI of 4.1 (kb §0.5 Decision 5).

    Transdermal if the order or the product says so (a patch ordered "topical" is on the skin too);
    an unknown route counts as transdermal, the conservative reading for a contraindication.
    Oral selegiline is rule M4.
    """
    return bool(use.routes & {"transdermal", "topical"}) or not use.routes


def is_intravenous(use) -> bool:
    """Methylene blue by IV: the order's route decides; without one, an injectable product or no
    product route at all counts as IV (hospital methylene blue is given IV; oral combinations
    carry an oral route hint)."""
    if use.route:
        return use.route in INTRAVENOUS_ROUTES
    return use.product_route in INTRAVENOUS_ROUTES or use.product_route is None


def washout_state(use, now: datetime.datetime, window: datetime.timedelta,
                  unknown_for: datetime.timedelta) -> str:
    """'inside' the window, 'outside' it, or 'unknown' (stopped, no stop date, recorded within ``unknown_for``).

    Current use is inside. A stop without an end date counts from when the order or statement was
    recorded, or from when a statement says the drug was taken, whichever is later (kb §0.5
    Decision 4): within the window -> inside.
    """
    if use.is_current:
        return "inside"
    if use.stopped_at is not None:
        return "inside" if now - use.stopped_at < window else "outside"
    hints = [moment for moment in (use.recorded, use.taken_at) if moment]
    if hints and now - max(hints) < window:
        return "inside"
    reference = use.recorded or use.taken_at or use.start
    return "unknown" if reference is None or now - reference < unknown_for else "outside"


def _line(use, now, window, name) -> str:
    if use.stopped_at is None or use.is_current:
        return describe_use(use, now)
    return f"{describe_use(use, now)}; {name} ends **{show_time(use.stopped_at + window)}**"


def _until(uses, now: datetime.datetime, window: datetime.timedelta) -> datetime.datetime | None:
    """The earliest time milnacipran may start after ``uses`` (their last known end plus the window), or
    None when one of them is still given with no known end."""
    ends = [use.stopped_at for use in uses]
    return None if any(end is None for end in ends) else max(ends) + window


def _names(uses) -> str:
    return " and ".join(sorted({use.ingredient.name.capitalize() for use in uses}))


def _when_allowed(drug: str, uses, now, window, fallback: str) -> str:
    """The summary's first half: what is given or when it stopped, and when milnacipran may start."""
    until = _until(uses, now, window)
    if until is None:
        return fallback
    running = any(use.stopped_at > now for use in uses)
    stopped = max(use.stopped_at for use in uses)
    state = f"course runs until {show_date(stopped)}" if running else f"last taken {show_time(stopped)}"
    return f"{drug} {state}: no milnacipran before {show_time(until)}"


def psychiatric_maoi(orders, snapshot, policy):
    """M1: an MAOI for psychiatric use within 14 days (transdermal selegiline only); M1u: stop date unknown."""
    window = datetime.timedelta(days=policy.threshold("maoi_washout_days"))
    uses = [u for u in snapshot.medications_in("maoi_psychiatric")
            if u.ingredient.name != "selegiline" or is_psychiatric_selegiline(u)]
    states = {id(u): washout_state(u, snapshot.now, window, datetime.timedelta.max) for u in uses}
    inside_uses = [u for u in uses if states[id(u)] == "inside"]
    inside = [_line(u, snapshot.now, window, "washout") for u in inside_uses]
    unknown = [describe_use(u, snapshot.now) for u in uses if states[id(u)] == "unknown"]
    if inside:
        lead = _when_allowed(_names(inside_uses), inside_uses, snapshot.now, window,
                             f"{_names(inside_uses)} (an MAOI) is active: milnacipran is contraindicated")
        return [Finding("critical", f"{lead}. Cancel this order.",
                        f"No milnacipran within {policy.threshold('maoi_washout_days'):g} days of stopping an MAOI "
                        f"intended to treat psychiatric disorders (and no MAOI within "
                        f"{policy.threshold('maoi_start_after_milnacipran_days'):g} days of stopping milnacipran)."
                        f"\n\n{bullet_list(inside)}",
                        SECTION, cancel_orders(orders), rule_id="M1")]
    if unknown:
        return [Finding("warning", "MAOI stopped on an unknown date: confirm at least 14 days have passed.",
                        bullet_list(unknown), SECTION, rule_id="M1u")]
    return []


def _within_24_hours(drug, uses, orders, snapshot, policy, rule_id):
    """Critical when a dose may be less than 24 h ago; a warning when the stop date is unknown."""
    window = datetime.timedelta(hours=policy.threshold("linezolid_methylene_blue_window_hours"))
    unknown_for = datetime.timedelta(days=policy.threshold("stopped_med_unknown_date_recent_days"))
    states = {id(u): washout_state(u, snapshot.now, window, unknown_for) for u in uses}
    inside_uses = [u for u in uses if states[id(u)] == "inside"]
    inside = [_line(u, snapshot.now, window, "24-hour window") for u in inside_uses]
    unknown = [describe_use(u, snapshot.now) for u in uses if states[id(u)] == "unknown"]
    if inside:
        fallback = f"{drug} is being given" if any(u.is_current for u in inside_uses) else f"{drug} within 24 hours"
        lead = _when_allowed(drug, inside_uses, snapshot.now, window, f"{fallback}: do not start milnacipran")
        return [Finding(
            "critical", f"{lead}. Cancel this order.",
            f"Do not start milnacipran in a patient being treated with {drug.lower()}; start it 24 h after the last "
            f"dose. If {drug.lower()} is urgent in a patient already on milnacipran, stop milnacipran and monitor for "
            f"serotonin syndrome for {policy.threshold('serotonin_monitoring_days'):g} days or until 24 h after the last "
            f"{drug.lower()} dose, whichever comes first.\n\n{bullet_list(inside)}\n\n{NOT_READ}", SECTION,
            cancel_orders(orders), rule_id=rule_id)]
    if unknown:
        return [Finding("warning", f"{drug} stopped, last dose not recorded: confirm it was more than 24 hours ago.",
                        f"{bullet_list(unknown)}\n\n{NOT_READ}", SECTION, rule_id=f"{rule_id}u")]
    return []


def linezolid_or_intravenous_methylene_blue(orders, snapshot, policy):
    """M2/M3: linezolid, or methylene blue by IV, active or last dose less than 24 h ago (critical)."""
    blue = snapshot.medications_in("methylene_blue")
    findings = _within_24_hours("Linezolid", snapshot.medications_in("linezolid"), orders, snapshot, policy, "M2")
    findings += _within_24_hours("IV methylene blue", [u for u in blue if is_intravenous(u)], orders, snapshot,
                                 policy, "M3")
    other_routes = [u for u in blue if not is_intravenous(u) and u.is_current]
    if other_routes:
        findings.append(Finding(
            "info", "Methylene blue (not IV) on record: serotonin syndrome reports involve IV use; monitor.",
            bullet_list([describe_use(u, snapshot.now) for u in other_routes]), SECTION, rule_id="M3o"))
    return findings


def other_maoi(orders, snapshot, policy):
    """M4: rasagiline, safinamide, procarbazine, moclobemide or oral selegiline, active (warning)."""
    uses = [u for u in snapshot.medications_in("maoi_other", "maoi_psychiatric") if u.is_current
            and (u.group == "maoi_other" or (u.ingredient.name == "selegiline" and not is_psychiatric_selegiline(u)))]
    if not uses:
        return []
    return [Finding("warning", f"{_names(uses)} (an MAO inhibitor) is active: serotonin syndrome risk. "
                    "Avoid or monitor closely.",
                    f"Not a contraindication of §4.1, but MAO inhibitors impair serotonin metabolism (label §5.2).\n\n"
                    f"{bullet_list([describe_use(u, snapshot.now) for u in uses])}", SECTION_OTHER_MAOI, rule_id="M4")]


"""Creatinine clearance for the label's renal bands (kb §2): measured CrCl, Cockcroft-Gault, eGFR.

Every estimate that can be made is made: a measured 24-h CrCl; Cockcroft-Gault from the latest
usable serum creatinine, weight (basis by BMI, kb §2.2) and age (both sexes when sex is unknown,
the lower used; the highest creatinine when it is unstable); the newest lab eGFR, de-indexed by
BSA when height and weight exist. The band comes from the newest draw: estimates within 48 h of
the newest result, the reference's preferred one unless another falls in a lower band (kb §2.3);
older results are shown as not used. Every input is kept for the card.
"""

import dataclasses
import datetime
import math
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any

from cds_service.fhir.dates import show_date
from cds_service.fhir.read import show_value


@dataclasses.dataclass(frozen=True)
class RenalEstimate:
    crcl: float | None              # mL/min, unrounded; None when no estimate could be made
    method: str                     # how crcl was obtained, for the card
    inputs: tuple[str, ...]         # the numbers and dates behind it, for the card
    notes: tuple[str, ...]          # caveats: unknown sex, no height, eGFR disagreement ...
    missing: tuple[str, ...]        # what was missing when crcl is None
    measured_at: datetime.datetime | None = None
    stale: bool = False             # the creatinine used is older than the current window
    unstable: bool = False          # creatinine changed >= 0.3 mg/dL within 48 h

    def band(self, thresholds: Mapping[str, float]) -> str | None:
        """esrd | severe | moderate | normal (kb §0.5 Decision 2: unrounded bands)."""
        if self.crcl is None:
            return None
        if self.crcl < thresholds["crcl_esrd_below"]:
            return "esrd"
        if self.crcl < thresholds["crcl_severe_below"]:
            return "severe"
        return "moderate" if self.crcl < thresholds["crcl_moderate_below"] else "normal"


def show_crcl(value: float) -> str:
    """A CrCl for a card: rounded down, so the number shown never sits in a higher band than the one used."""
    return f"{math.floor(value)} mL/min"


def cockcroft_gault(age: int, weight_kg: float, creatinine_mg_dl: float, female: bool, t: Mapping[str, float]) -> float:
    """CrCl (mL/min) = (140 - age) x weight / (72 x SCr), x 0.85 if female (kb §2.2)."""
    crcl = (t["cockcroft_gault_age_base"] - age) * weight_kg / (t["cockcroft_gault_denominator"] * creatinine_mg_dl)
    return crcl * t["female_crcl_factor"] if female else crcl


def dosing_weight(weight_kg: float, height_cm: float | None, female: bool, t: Mapping[str, float]) -> tuple[float, str]:
    """The weight C-G uses and why: actual below BMI 18.5, ideal (or actual if lower) to 24.9, adjusted above."""
    if height_cm is None:
        return weight_kg, f"actual weight {weight_kg:.1f} kg (height unavailable)"
    bmi = weight_kg / (height_cm / 100) ** 2
    inches_over = height_cm / t["cm_per_inch"] - t["ibw_height_base_inches"]
    ideal = (t["ibw_female_base_kg"] if female else t["ibw_male_base_kg"]) + t["ibw_kg_per_inch_over_60"] * inches_over
    if bmi < t["bmi_underweight_below"]:
        return weight_kg, f"actual weight {weight_kg:.1f} kg (BMI {bmi:.1f})"
    if bmi < t["bmi_overweight_from"] and ideal <= weight_kg:
        return ideal, f"ideal weight {ideal:.1f} kg (BMI {bmi:.1f}; actual {weight_kg:.1f} kg)"
    if bmi < t["bmi_overweight_from"]:
        return weight_kg, f"actual weight {weight_kg:.1f} kg (BMI {bmi:.1f}; below ideal {ideal:.1f} kg)"
    adjusted = ideal + t["adjusted_weight_fraction"] * (weight_kg - ideal)
    return adjusted, f"adjusted weight {adjusted:.1f} kg (BMI {bmi:.1f}; actual {weight_kg:.1f} kg, ideal {ideal:.1f} kg)"


def _within(readings: Sequence[Any], now: datetime.datetime, days: float) -> Any:
    """The newest reading no older than ``days`` (readings are newest first)."""
    for reading in readings:
        if reading.when is not None and (now - reading.when).total_seconds() <= days * 86400:
            return reading
    return None


def _is_unstable(creatinine: Sequence[Any], t: Mapping[str, float]) -> tuple[bool, Any]:
    """(unstable?, the worst reading) over the readings within 48 h of the newest."""
    newest = creatinine[0]
    window = [r for r in creatinine if r.when and newest.when
              and (newest.when - r.when).total_seconds() <= t["scr_unstable_window_hours"] * 3600]
    worst = max(window, key=lambda r: r.value)
    spread = worst.value - min(r.value for r in window)
    return spread >= t["scr_unstable_delta_mg_dl"], worst


def _body_surface_area(weight_kg: float, height_cm: float) -> float:
    """Mosteller: sqrt(height cm x weight kg / 3600) (kb §2.3)."""
    return math.sqrt(height_cm * weight_kg / 3600)


def _band_rank(value: float, t: Mapping[str, float]) -> int:
    return sum(value >= t[name] for name in ("crcl_esrd_below", "crcl_severe_below", "crcl_moderate_below"))


def _from_egfr(egfr, weight, height, t) -> tuple[float, str]:
    if weight is not None and height is not None:
        bsa = _body_surface_area(weight.value, height.value)
        value = egfr.value * bsa / t["egfr_bsa_reference_m2"]
        return value, (f"eGFR {egfr.value:g} mL/min/1.73 m² ({show_date(egfr.when)}) de-indexed by BSA "
                       f"{bsa:.2f} m² = {show_crcl(value)}")
    return egfr.value, f"eGFR {egfr.value:g} mL/min/1.73 m² ({show_date(egfr.when)}), not de-indexed (no height/weight)"


def _newest_lab_egfr(egfr, now, t, preference):
    """The newest eGFR within the usable window; the preferred equation (kb §2.3) breaks ties of the same day."""
    usable = [e for e in egfr if e.when and (now - e.when).days <= t["scr_usable_days"]]
    return max(usable, key=lambda e: (e.when.date(), -preference.get(e.code, 99)), default=None)


def _cockcroft_gault_estimate(age, sex, scr, creatinine, weight, height, t):
    """C-G with the BMI weight basis; both sexes when sex is unknown; the worst SCr when unstable."""
    unstable, worst = _is_unstable([c for c in creatinine if c.when and c.when <= scr.when], t)
    used_scr = worst if unstable else scr
    results = []
    for female in ([sex == "female"] if sex else [False, True]):
        weight_used, basis = dosing_weight(weight.value, height.value if height else None, female, t)
        results.append((cockcroft_gault(age, weight_used, used_scr.value, female, t), female, basis))
    crcl, female, basis = min(results)
    inputs = [f"SCr {used_scr.value:.2f} mg/dL ({show_date(used_scr.when)})", basis, f"age {age}",
              "female" if female else "male"]
    notes = []
    if sex is None:
        notes.append("sex unknown: computed for both sexes, the lower CrCl is used")
    if unstable:
        notes.append(f"renal function unstable (creatinine changed ≥ {t['scr_unstable_delta_mg_dl']:g} mg/dL within "
                     f"{t['scr_unstable_window_hours']:g} h): the highest value is used; reassess before maintenance dosing")
    return crcl, used_scr, inputs, notes, unstable


@dataclasses.dataclass(frozen=True)
class _Candidate:
    value: float
    when: datetime.datetime
    method: str
    inputs: tuple[str, ...]
    notes: tuple[str, ...] = ()
    unstable: bool = False


def _candidates(age, sex, now, t, preference, scr, creatinine, weight, height, egfr, measured_crcl) -> list[_Candidate]:
    """The estimates that can be made, in the reference's order of preference (kb §2.3)."""
    found = []
    measured = _within(measured_crcl, now, t["scr_usable_days"])
    if measured is not None:
        found.append(_Candidate(measured.value, measured.when, "measured 24-h urine creatinine clearance",
                                (f"measured CrCl {measured.value:g} mL/min ({show_date(measured.when)})",)))
    if scr is not None and weight is not None and age is not None:
        crcl, used_scr, inputs, notes, unstable = _cockcroft_gault_estimate(age, sex, scr, creatinine, weight, height, t)
        found.append(_Candidate(crcl, used_scr.when, "Cockcroft-Gault", tuple(inputs), tuple(notes), unstable))
    lab_egfr = _newest_lab_egfr(egfr, now, t, preference)
    if lab_egfr is not None:
        value, text = _from_egfr(lab_egfr, weight, height, t)
        found.append(_Candidate(value, lab_egfr.when, "estimated from the lab eGFR", (text,)))
    return found


def _choose(candidates: list[_Candidate], t) -> tuple[_Candidate, tuple[str, ...], tuple[str, ...]]:
    """The estimate to band: the preferred one of the newest draw, unless another estimate of that draw
    falls in a lower band (then the lowest, kb §2.3). Results older than the newest draw are not banded."""
    newest = max(c.when for c in candidates)
    window = datetime.timedelta(hours=t["egfr_same_draw_hours"])
    current = [c for c in candidates if newest - c.when <= window]
    chosen = current[0]
    lowest = min(current, key=lambda c: c.value)
    notes = list(chosen.notes)
    if _band_rank(lowest.value, t) < _band_rank(chosen.value, t):
        notes.append(f"{lowest.method} gives {show_crcl(lowest.value)}, a lower band than {chosen.method} "
                     f"({show_crcl(chosen.value)}): the lower is used")
        chosen = lowest
    inputs = [line for c in current for line in c.inputs]
    notes += [f"not used, older than the newest result: {c.method}, {show_crcl(c.value)} ({show_date(c.when)})"
              for c in candidates if c not in current]
    return chosen, tuple(inputs), tuple(notes)


def _implausible_text(name: str, reading, ranges_text: str) -> str:
    return (f"{name}: the newest result ({show_date(reading.when)}) is {_show(reading.value)} {reading.unit}, "
            f"which is implausible ({ranges_text}): not used")


def _show(value: float) -> str:
    """A number as entered, for a card: never negative, 'inf' or 'nan', short."""
    return show_value(value)


def _newer_than(bad, good) -> bool:
    return bad is not None and (good is None or (bad.when or datetime.datetime.min.replace(tzinfo=datetime.UTC))
                                > (good.when or datetime.datetime.min.replace(tzinfo=datetime.UTC)))


def estimate_renal_function(*, age, sex, now, thresholds, egfr_preference, creatinine, weights, heights, egfr,
                            measured_crcl, unreadable_creatinine=(), implausible=None,
                            implausible_age: str | None = None) -> RenalEstimate:
    """The estimate the renal rules band; see the module docstring for the order of preference.

    ``implausible`` maps a kind (creatinine, weight, height, egfr, crcl_measured) to its readings
    outside the plausible range (newest first) and ``ranges`` text: they are never used, and a newer
    implausible reading is never silently replaced by an older plausible one.
    """
    t = thresholds
    implausible = implausible or {}
    if age is not None and age < t["adult_age"]:
        return RenalEstimate(None, "not estimated", (), ("Cockcroft-Gault is not used under 18",), ("adult age",))
    scr = _within(creatinine, now, t["scr_usable_days"])
    weight = _within(weights, now, t["weight_usable_days"])
    height = _within(heights, now, t["height_usable_days"])
    refused: dict[str, str] = {}
    for kind, name, days in (("weight", "weight", t["weight_usable_days"]), ("height", "height", t["height_usable_days"])):
        readings, ranges_text = implausible.get(kind, ((), ""))
        bad = _within(readings, now, days)
        if _newer_than(bad, weight if kind == "weight" else height):
            refused[kind] = _implausible_text(name, bad, ranges_text)
            if kind == "weight":
                weight = None
            else:
                height = None
    egfr_bad, egfr_range = implausible.get("egfr", ((), ""))
    crcl_bad, crcl_range = implausible.get("crcl_measured", ((), ""))
    candidates = _candidates(age, sex, now, t, egfr_preference, scr, creatinine, weight, height, egfr, measured_crcl)
    missing = [name for name, value in (("serum creatinine within 365 days", scr),
                                        ("weight within 365 days", weight), ("age", age)) if value is None]
    missing = [refused["weight"] if name.startswith("weight") and "weight" in refused
               else implausible_age if name == "age" and implausible_age else name for name in missing]
    unreadable = _within(unreadable_creatinine, now, t["scr_usable_days"])
    if unreadable is not None and all(unreadable.when > c.when for c in candidates):
        # never fall back silently to results older than the newest one
        return RenalEstimate(None, "not estimated", (), (), (
            f"serum creatinine: the newest result ({show_date(unreadable.when)}) is {_show(unreadable.value)} "
            f"'{unreadable.unit}', which the service cannot read",))
    scr_bad, scr_range = implausible.get("creatinine", ((), ""))
    bad_scr = _within(scr_bad, now, t["scr_usable_days"])
    if bad_scr is not None and all(bad_scr.when and c.when and bad_scr.when > c.when for c in candidates):
        return RenalEstimate(None, "not estimated", (), (), (_implausible_text("serum creatinine", bad_scr, scr_range),))
    if not candidates:
        return RenalEstimate(None, "not estimated", (), (), tuple(missing))
    chosen, inputs, notes = _choose(candidates, t)
    if "height" in refused:
        notes += (refused["height"],)
    for readings, name, ranges_text in ((egfr_bad, "eGFR", egfr_range), (crcl_bad, "measured CrCl", crcl_range)):
        bad = _within(readings, now, t["scr_usable_days"])
        if bad is not None:
            notes += (_implausible_text(name, bad, ranges_text),)
    if chosen.method != "Cockcroft-Gault" and missing:
        notes += (f"no Cockcroft-Gault: missing {', '.join(missing)}",)
    if chosen.method == "Cockcroft-Gault" and weight is not None and weight.when is not None \
            and (now - weight.when).days > t["weight_current_days"]:
        notes += (f"weight from {show_date(weight.when)}, older than {t['weight_current_days']:g} days: re-weigh "
                  "if it may have changed",)
    stale = (now - chosen.when).days > t["scr_current_days"]
    return RenalEstimate(chosen.value, chosen.method, inputs, notes, (), chosen.when, stale, chosen.unstable)

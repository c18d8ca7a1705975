"""One typed, unit-normalised view of the patient: what every rule reads, built once per request.

The pieces come from small readers, one per kind of chart data: ``observations`` (labs and
vitals in the rules' units), ``renal_estimate`` (CrCl and its inputs), ``medication_history``
(what the patient takes or took) and ``problem_list`` (conditions by knowledge category).
"""

import dataclasses
import datetime
import logging
from collections import ChainMap
from collections.abc import Mapping

from cds_service.chart.source import Chart
from cds_service.chart.source import Unavailable
from cds_service.fhir.dates import parse_time
from cds_service.fhir.read import show_value
from cds_service.fhir.read import text
from cds_service.orders.milnacipran_orders import MilnacipranOrder
from cds_service.orders.products import MedicationMatcher
from cds_service.snapshot.creatinine_clearance import RenalEstimate
from cds_service.snapshot.creatinine_clearance import estimate_renal_function
from cds_service.snapshot.labs_and_vitals import BloodPressure
from cds_service.snapshot.labs_and_vitals import HcgResult
from cds_service.snapshot.labs_and_vitals import Measurement
from cds_service.snapshot.labs_and_vitals import merge_blood_pressures
from cds_service.snapshot.labs_and_vitals import newest_first
from cds_service.snapshot.labs_and_vitals import read_observations
from cds_service.snapshot.medication_history import MedicationUse
from cds_service.snapshot.medication_history import read_medications
from cds_service.snapshot.problem_list import ConditionEntry
from cds_service.snapshot.problem_list import read_conditions

LAB_KINDS = ("sodium", "alt", "ast", "bilirubin_total", "audit_c_total", "inr")
log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Snapshot:
    now: datetime.datetime
    age: int | None
    sex: str | None                 # "male" | "female" | None (unknown)
    renal: RenalEstimate
    blood_pressures: tuple[BloodPressure, ...]         # newest first
    heart_rates: tuple[Measurement, ...]               # newest first
    labs: Mapping[str, tuple[Measurement, ...]]        # LAB_KINDS, newest first
    hcg_results: tuple[HcgResult, ...]                 # newest first
    medications: tuple[MedicationUse, ...]
    conditions: tuple[ConditionEntry, ...]
    unavailable: tuple[Unavailable, ...]
    # kind -> (implausible readings newest first, plausible range text); never used in arithmetic
    implausible: Mapping[str, tuple[tuple, str]] = dataclasses.field(default_factory=dict)
    implausible_values: tuple[tuple[str, str], ...] = ()   # (what, card line) of each implausible input (DA2)

    def conditions_in(self, *categories: str) -> list[ConditionEntry]:
        return [condition for condition in self.conditions if condition.category in categories]

    def medications_in(self, *groups: str) -> list[MedicationUse]:
        return [use for use in self.medications if use.group in groups]

    def days_since(self, moment: datetime.datetime | None) -> float | None:
        return None if moment is None else (self.now - moment).total_seconds() / 86400


def _age(patient: Mapping | None, now: datetime.datetime, knowledge=None) -> tuple[int | None, str | None]:
    """(age in years, None) or, for a birth date giving an implausible age, (None, why it is not used)."""
    birth = parse_time(patient.get("birthDate")) if patient else None
    if birth is None or birth > now:
        return None, None
    age = now.year - birth.year - ((now.month, now.day) < (birth.month, birth.day))
    if knowledge is not None and not knowledge.plausible("age", age):
        return None, (f"age: the birth date {birth.date().isoformat()} gives {age} years, which is implausible "
                      f"({knowledge.plausible_range_text('age')}): not used")
    return age, None


def _sex(patient: Mapping | None) -> str | None:
    gender = text(patient, "gender")
    return gender if gender in ("male", "female") else None


def _implausible(readings, knowledge) -> dict:
    """Implausible readings by kind (newest first) with their range text, for the checks that show them."""
    found = {}
    for kind in ("creatinine", "weight", "height", "egfr", "crcl_measured", "heart_rate"):
        bad = readings.get(f"implausible_{kind}", [])
        if bad:
            found[kind] = (newest_first(bad), knowledge.plausible_range_text(kind))
    bad_bp = readings.get("implausible_blood_pressure", [])
    if bad_bp:
        found["blood_pressure"] = (newest_first(bad_bp), f"{knowledge.plausible_range_text('systolic_bp')} systolic, "
                                                         f"{knowledge.plausible_range_text('diastolic_bp')} diastolic")
    return found


NAMES = {"creatinine": "serum creatinine", "weight": "weight", "height": "height", "egfr": "eGFR",
         "crcl_measured": "measured creatinine clearance", "heart_rate": "heart rate", "blood_pressure": "blood pressure"}


def _implausible_values(implausible: Mapping, implausible_age: str | None, now) -> tuple[tuple[str, str], ...]:
    """(what, card line) of the newest implausible reading of each kind (within a year), and of an implausible age."""
    lines = [("age", implausible_age)] if implausible_age else []
    for kind, (readings, ranges) in implausible.items():
        newest = readings[0]
        if newest.when is not None and (now - newest.when).days > 365:
            continue
        if kind == "blood_pressure":
            value = (show_value(newest.systolic) if newest.systolic is not None else "?") + "/" + (
                show_value(newest.diastolic) if newest.diastolic is not None else "?") + " mmHg"
        else:
            value = f"{show_value(newest.value)} {newest.unit}"
        when = newest.when.date().isoformat() if newest.when else "undated"
        lines.append((NAMES[kind], f"{NAMES[kind]} {value} ({when}): implausible ({ranges}), not used"))
    return tuple(lines)


def _renal_estimate(age, sex, now, thresholds, knowledge, readings, implausible_age=None) -> RenalEstimate:
    """The renal estimate; if it fails, the renal checks say so and every other check still runs."""
    try:
        return estimate_renal_function(
            age=age, sex=sex, now=now, thresholds=ChainMap(knowledge.constants, thresholds),
            egfr_preference=knowledge.egfr_preference,
            creatinine=newest_first(readings.get("creatinine", [])),
            weights=newest_first(readings.get("weight", [])),
            heights=newest_first(readings.get("height", [])),
            egfr=newest_first(readings.get("egfr", [])),
            measured_crcl=newest_first(readings.get("crcl_measured", [])),
            unreadable_creatinine=newest_first(readings.get("unreadable_creatinine", [])),
            implausible=_implausible(readings, knowledge), implausible_age=implausible_age,
        )
    except Exception:
        log.exception("renal estimate failed")
        return RenalEstimate(None, "not estimated", (), (), ("a renal estimate: the calculation failed (logged)",))


def build_snapshot(chart: Chart, orders: tuple[MilnacipranOrder, ...], draft_resources: list[Mapping],
                   matcher: MedicationMatcher, now: datetime.datetime, thresholds: Mapping[str, float]) -> Snapshot:
    """The snapshot for these orders; ``draft_resources`` are ``envelope.draft_entries()``.

    ``thresholds`` are the site policy's (look-back and usable windows); formula and unit constants
    come from the knowledge, never from the policy.
    """
    knowledge = matcher.knowledge
    checked = {order.entry_index for order in orders}
    other_drafts = [r for index, r in enumerate(draft_resources)
                    if index not in checked and text(r, "resourceType") == "MedicationRequest"]
    readings = read_observations(chart.of_type("Observation"), knowledge)
    medications, unidentified = read_medications(
        chart.of_type("MedicationRequest") + chart.of_type("MedicationStatement"), other_drafts, matcher, chart.medications)
    (age, implausible_age), sex = _age(chart.patient, now, knowledge), _sex(chart.patient)
    implausible = _implausible(readings, knowledge)
    return Snapshot(
        now=now,
        age=age,
        sex=sex,
        renal=_renal_estimate(age, sex, now, thresholds, knowledge, readings, implausible_age),
        blood_pressures=merge_blood_pressures(readings.get("blood_pressure", [])),
        heart_rates=tuple(newest_first(readings.get("heart_rate", []))),
        labs={kind: tuple(newest_first(readings.get(kind, []))) for kind in LAB_KINDS},
        hcg_results=tuple(newest_first(readings.get("hcg", []))),
        implausible=implausible,
        implausible_values=_implausible_values(implausible, implausible_age, now),
        medications=medications,
        conditions=read_conditions(chart.of_type("Condition") + chart.of_type("Procedure"), knowledge, now, thresholds),
        unavailable=chart.unavailable + tuple(
            Unavailable(reference, "its medicationReference could not be resolved, so the drug is unknown")
            for reference in unidentified),
    )

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

    def conditions_in(self, *categories: str) -> list[ConditionEntry]:
        return [condition for condition in self.conditions if condition.category in categories]

    def medications_in(self, *groups: str) -> list[MedicationUse]:
        return [use for use in self.medications if use.group in groups]

    def days_since(self, moment: datetime.datetime | None) -> float | None:
        return None if moment is None else (self.now - moment).total_seconds() / 86400


def _age(patient: Mapping | None, now: datetime.datetime) -> int | None:
    birth = parse_time(patient.get("birthDate")) if patient else None
    if birth is None or birth > now:
        return None
    return now.year - birth.year - ((now.month, now.day) < (birth.month, birth.day))


def _sex(patient: Mapping | None) -> str | None:
    gender = text(patient, "gender")
    return gender if gender in ("male", "female") else None


def _renal_estimate(age, sex, now, thresholds, knowledge, readings) -> RenalEstimate:
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
    age, sex = _age(chart.patient, now), _sex(chart.patient)
    return Snapshot(
        now=now,
        age=age,
        sex=sex,
        renal=_renal_estimate(age, sex, now, thresholds, knowledge, readings),
        blood_pressures=merge_blood_pressures(readings.get("blood_pressure", [])),
        heart_rates=tuple(newest_first(readings.get("heart_rate", []))),
        labs={kind: tuple(newest_first(readings.get(kind, []))) for kind in LAB_KINDS},
        hcg_results=tuple(newest_first(readings.get("hcg", []))),
        medications=medications,
        conditions=read_conditions(chart.of_type("Condition") + chart.of_type("Procedure"), knowledge, now, thresholds),
        unavailable=chart.unavailable + tuple(
            Unavailable(reference, "its medicationReference could not be resolved, so the drug is unknown")
            for reference in unidentified),
    )

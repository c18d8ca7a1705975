"""Labs and vital signs from the chart's Observations, in the rules' units.

Only Observations whose LOINC code the knowledge lists are read. Creatinine becomes mg/dL
(from umol/L or mmol/L), weight kg (from lb or g), height cm (from in, m or mm); a value in a
unit the service does not know is left out rather than guessed. Blood pressure comes from the
panel's components or from separate systolic and diastolic results taken at the same moment.
"""

import dataclasses
import datetime
from collections.abc import Iterable
from collections.abc import Mapping
from typing import Any

from cds_service.fhir_read import child
from cds_service.fhir_read import items
from cds_service.fhir_read import number
from cds_service.fhir_read import text
from cds_service.fhir_time import parse_time
from cds_service.knowledge import Knowledge

LOINC = "http://loinc.org"
USABLE_STATUSES = {"final", "amended", "corrected", "preliminary", "registered", None}
RULE_UNITS = {"creatinine": "mg/dL", "weight": "kg", "height": "cm"}
UNIT_FAMILY = {"creatinine_mass": "creatinine", "creatinine_molar": "creatinine", "weight": "weight", "height": "height"}
BLOOD_PRESSURE_KINDS = ("bp_panel", "systolic_bp", "diastolic_bp")


@dataclasses.dataclass(frozen=True)
class Measurement:
    value: float
    unit: str
    when: datetime.datetime | None
    reference_high: float | None = None
    code: str = ""                  # the LOINC code it was reported under


@dataclasses.dataclass(frozen=True)
class BloodPressure:
    systolic: float | None
    diastolic: float | None
    when: datetime.datetime | None


@dataclasses.dataclass(frozen=True)
class CodedResult:
    """A result read as text (e.g. a qualitative hCG): its words, lower case."""

    text: str
    when: datetime.datetime | None


def unit_factors(thresholds: Mapping[str, float]) -> dict[str, dict[str, float]]:
    """Unit (UCUM code or common text, lower case) -> factor into the rules' unit, per family."""
    umol = 1 / thresholds["creatinine_umol_per_mg_dl"]
    pound, inch = thresholds["lb_to_kg"], thresholds["cm_per_inch"]
    return {
        "creatinine": {"mg/dl": 1.0, "umol/l": umol, "µmol/l": umol, "micromol/l": umol, "mmol/l": 1000 * umol},
        "weight": {"kg": 1.0, "g": 0.001, "[lb_av]": pound, "lb": pound, "lbs": pound},
        "height": {"cm": 1.0, "m": 100.0, "mm": 0.1, "[in_i]": inch, "in": inch, "inch": inch, "inches": inch},
    }


def codings(concept: Any) -> list[tuple[str | None, str]]:
    """(system, code) of each coding with a string code."""
    return [(text(c, "system"), c["code"]) for c in items(concept, "coding") if text(c, "code")]


def newest_first(readings: Iterable) -> list:
    oldest = datetime.datetime.min.replace(tzinfo=datetime.timezone.utc)
    return sorted(readings, key=lambda reading: reading.when or oldest, reverse=True)


def _loinc(concept: Any, knowledge: Knowledge) -> str | None:
    return next((code for system, code in codings(concept)
                 if system == LOINC and code in knowledge.observation_kinds), None)


def _time(observation: Mapping) -> datetime.datetime | None:
    return (parse_time(observation.get("effectiveDateTime")) or parse_time(child(observation, "effectivePeriod").get("start"))
            or parse_time(observation.get("issued")))


def _measurement(observation: Mapping, family: str | None, factors: Mapping, code: str) -> Measurement | None:
    quantity = child(observation, "valueQuantity")
    value = number(quantity, "value")
    unit = (text(quantity, "code") or text(quantity, "unit") or "").strip()
    if value is None:
        return None
    if family is not None:
        factor = factors[family].get(unit.lower())
        if factor is None:
            return None
        value, unit = value * factor, RULE_UNITS[family]
    highs = [number(child(reference_range, "high"), "value") for reference_range in items(observation, "referenceRange")]
    return Measurement(value, unit, _time(observation), next((h for h in highs if h is not None), None), code)


def _component(observation: Mapping, kind: str, knowledge: Knowledge) -> float | None:
    for component in items(observation, "component"):
        if knowledge.observation_kinds.get(_loinc(component.get("code"), knowledge)) == kind:
            return number(child(component, "valueQuantity"), "value")
    return None


def _blood_pressure(observation: Mapping, kind: str, knowledge: Knowledge) -> BloodPressure | None:
    systolic = _component(observation, "systolic_bp", knowledge)
    diastolic = _component(observation, "diastolic_bp", knowledge)
    value = number(child(observation, "valueQuantity"), "value")
    if kind == "systolic_bp" and value is not None:
        systolic = value
    if kind == "diastolic_bp" and value is not None:
        diastolic = value
    if systolic is None and diastolic is None:
        return None
    return BloodPressure(systolic, diastolic, _time(observation))


def _result_text(observation: Mapping) -> str:
    concept = child(observation, "valueCodeableConcept")
    words = [text(observation, "valueString"), text(concept, "text")]
    words += [text(c, "display") or text(c, "code") for c in items(concept, "coding")]
    words += [text(c, "code") for interpretation in items(observation, "interpretation")
              for c in items(interpretation, "coding")]
    return " ".join(word for word in words if word).lower()


def merge_blood_pressures(readings: list[BloodPressure]) -> tuple[BloodPressure, ...]:
    """Separate systolic and diastolic results taken at the same moment become one reading; newest first."""
    by_time: dict[Any, BloodPressure] = {}
    for reading in readings:
        earlier = by_time.get(reading.when)
        by_time[reading.when] = reading if earlier is None else BloodPressure(
            earlier.systolic if earlier.systolic is not None else reading.systolic,
            earlier.diastolic if earlier.diastolic is not None else reading.diastolic, reading.when)
    return tuple(newest_first(by_time.values()))


def read_observations(observations: Iterable[Mapping], knowledge: Knowledge,
                      thresholds: Mapping[str, float]) -> dict[str, list]:
    """Readings by kind ("creatinine", "weight", "height", "blood_pressure", "heart_rate", "egfr", ...)."""
    factors = unit_factors(thresholds)
    found: dict[str, list] = {}
    for observation in observations:
        code = _loinc(observation.get("code"), knowledge)
        if code is None or text(observation, "status") not in USABLE_STATUSES:
            continue
        kind = knowledge.observation_kinds[code]
        if kind in BLOOD_PRESSURE_KINDS:
            reading, kind = _blood_pressure(observation, kind, knowledge), "blood_pressure"
        elif kind == "hcg_qualitative":
            reading = CodedResult(_result_text(observation), _time(observation))
        else:
            family = UNIT_FAMILY.get(kind)
            reading, kind = _measurement(observation, family, factors, code), family or kind
        if reading is not None:
            found.setdefault(kind, []).append(reading)
    return found

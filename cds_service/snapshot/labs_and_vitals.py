"""Labs and vital signs from the chart's Observations, in the rules' units.

Only Observations whose LOINC code the knowledge lists are read. Creatinine becomes mg/dL
(from umol/L or mmol/L), weight kg (from lb or g), height cm (from in, m or mm), eGFR and
creatinine clearance mL/min (from mL/s); a value in a unit the service does not know, or not
above zero, is kept aside as unreadable (``unreadable_<kind>``) rather than guessed, so that a
rule can say the newest result could not be used. A readable value outside its plausible range
(``Knowledge.plausible_ranges``: 1.7 cm, 0.07 kg, a heart rate of 900) is kept aside as
``implausible_<kind>``: never used in arithmetic, shown by the check that needed it. Blood
pressure comes from the panel's components or from separate systolic and diastolic results taken
at the same moment.
"""

import dataclasses
import datetime
from collections.abc import Iterable
from collections.abc import Mapping
from typing import Any

from cds_service.fhir.dates import parse_time
from cds_service.fhir.read import child
from cds_service.fhir.read import items
from cds_service.fhir.read import number
from cds_service.fhir.read import text
from cds_service.fhir.vocabulary import FLOW_ML_PER_MIN
from cds_service.fhir.vocabulary import INDEXED_FLOW_ML_PER_MIN
from cds_service.fhir.vocabulary import LENGTH_CM
from cds_service.fhir.vocabulary import MASS_KG
from cds_service.fhir.vocabulary import code_system
from cds_service.fhir.vocabulary import unit_key
from cds_service.knowledge import Knowledge

USABLE_STATUSES = {"final", "amended", "corrected", "preliminary", "registered", None}
RULE_UNITS = {"creatinine": "mg/dL", "weight": "kg", "height": "cm", "egfr": "mL/min/1.73m2", "crcl_measured": "mL/min"}
UNIT_FAMILY = {"creatinine_mass": "creatinine", "creatinine_molar": "creatinine", "weight": "weight", "height": "height",
               "egfr": "egfr", "crcl_measured": "crcl_measured"}
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


def unit_factors(knowledge: Knowledge) -> dict[str, dict[str, float]]:
    """Unit (as ``unit_key`` spells it) -> factor into the rules' unit, per family."""
    umol = 1 / knowledge.constants["creatinine_umol_per_mg_dl"]
    creatinine = {"mg/dL": 1.0, "mg/100 mL": 1.0, "umol/L": umol, "micromol/L": umol, "mmol/L": 1000 * umol}
    return {"creatinine": {unit_key(unit): factor for unit, factor in creatinine.items()},
            "weight": MASS_KG, "height": LENGTH_CM, "egfr": INDEXED_FLOW_ML_PER_MIN, "crcl_measured": FLOW_ML_PER_MIN}


def codings(concept: Any) -> list[tuple[str | None, str]]:
    """(system, code) of each coding with a string code."""
    return [(text(c, "system"), c["code"]) for c in items(concept, "coding") if text(c, "code")]


def newest_first(readings: Iterable) -> list:
    oldest = datetime.datetime.min.replace(tzinfo=datetime.timezone.utc)
    return sorted(readings, key=lambda reading: reading.when or oldest, reverse=True)


def _loinc(concept: Any, knowledge: Knowledge) -> str | None:
    return next((code for system, code in codings(concept)
                 if code_system(system) == "loinc" and code in knowledge.observation_kinds), None)


def _time(observation: Mapping) -> datetime.datetime | None:
    return (parse_time(observation.get("effectiveDateTime")) or parse_time(child(observation, "effectivePeriod").get("start"))
            or parse_time(observation.get("issued")))


def _measurement(observation: Mapping, family: str | None, factors: Mapping, code: str) -> tuple[Measurement, bool] | None:
    """(measurement, readable) in the rules' unit, or None when there is no numeric value at all."""
    quantity = child(observation, "valueQuantity")
    value = number(quantity, "value")
    unit = (text(quantity, "code") or text(quantity, "unit") or "").strip()
    if value is None:
        return None
    highs = [number(child(reference_range, "high"), "value") for reference_range in items(observation, "referenceRange")]
    high = next((h for h in highs if h is not None), None)
    factor = factors[family].get(unit_key(unit)) if family else 1.0
    if factor is None or value <= 0:
        return Measurement(value, unit, _time(observation), high, code), False
    return Measurement(value * factor, RULE_UNITS.get(family, unit), _time(observation), high, code), True


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


def read_observations(observations: Iterable[Mapping], knowledge: Knowledge) -> dict[str, list]:
    """Readings by kind ("creatinine", "weight", "height", "blood_pressure", "heart_rate", "egfr", ...)."""
    factors = unit_factors(knowledge)
    found: dict[str, list] = {}
    for observation in observations:
        if text(observation, "status") not in USABLE_STATUSES:
            continue
        code = _loinc(observation.get("code"), knowledge)
        if code is None:  # another panel code (e.g. a vital-signs panel) may still carry BP components
            reading = _blood_pressure(observation, "bp_panel", knowledge)
            if reading is not None:
                found.setdefault("blood_pressure", []).append(reading)
            continue
        kind = knowledge.observation_kinds[code]
        if kind in BLOOD_PRESSURE_KINDS:
            reading, kind = _blood_pressure(observation, kind, knowledge), "blood_pressure"
        elif kind == "hcg_qualitative":
            reading = CodedResult(_result_text(observation), _time(observation))
        else:
            family = UNIT_FAMILY.get(kind)
            measured = _measurement(observation, family, factors, code)
            if measured is None:
                continue
            reading, readable = measured
            kind = (family or kind) if readable else f"unreadable_{family or kind}"
            if readable and kind in knowledge.plausible_ranges and not knowledge.plausible(kind, reading.value):
                kind = f"implausible_{kind}"
        if isinstance(reading, BloodPressure) and not _plausible_pressure(reading, knowledge):
            kind = "implausible_blood_pressure"
        if reading is not None:
            found.setdefault(kind, []).append(reading)
    return found


def _plausible_pressure(reading: BloodPressure, knowledge: Knowledge) -> bool:
    return all(value is None or knowledge.plausible(kind, value)
               for kind, value in (("systolic_bp", reading.systolic), ("diastolic_bp", reading.diastolic)))

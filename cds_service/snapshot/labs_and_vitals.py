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

Liver enzymes become U/L (IU/L; ukat/L x ``enzyme_u_l_per_ukat_l``), with their reference range
in the same unit; an enzyme in another unit keeps its unit (its own reference range still
judges it, the default upper limit does not). A score (AUDIT-C) may come as ``valueInteger``.
hCG results of every kind become one ``HcgResult`` meaning positive, negative or indeterminate
(code-families.md §4): a coded result by ``result_values.csv`` or its words; a quantitative one
by its interpretation, then its reference range (the rule applies the knowledge cut-offs to the
IU/L value otherwise; IU/L = mIU/mL); molar or mass units only when flagged positive.
"""

import dataclasses
import datetime
import functools
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
RULE_UNITS = {"creatinine": "mg/dL", "weight": "kg", "height": "cm", "egfr": "mL/min/1.73m2", "crcl_measured": "mL/min",
              "alt": "U/L", "ast": "U/L", "hcg_quantitative": "IU/L"}
UNIT_FAMILY = {"creatinine_mass": "creatinine", "creatinine_molar": "creatinine", "weight": "weight", "height": "height",
               "egfr": "egfr", "crcl_measured": "crcl_measured", "alt": "alt", "ast": "ast"}
KEEP_UNKNOWN_UNIT = {"alt", "ast"}   # judged by their own reference range whatever the unit
HCG_KINDS = ("hcg_qualitative", "hcg_quantitative", "hcg_other_units", "hcg_interpretation")
POSITIVE_WORDS = ("positive", "detected", "pos", "reactive")
NEGATIVE_WORDS = ("negative", "not detected", "neg", "nonreactive", "non-reactive")
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
class HcgResult:
    """A pregnancy test of any kind, read as positive, negative or indeterminate (None: unreadable)."""

    meaning: str | None             # what the lab says (coded value, interpretation, reference range); None: not said
    when: datetime.datetime | None
    shown: str                      # e.g. "hCG 120 IU/L", "hCG positive"
    quantitative: bool = False      # a number (also a tumour marker): only for patients who can be pregnant
    iu_per_l: float | None = None   # a quantitative result in IU/L (= mIU/mL) for the rule's cut-offs


@functools.lru_cache(maxsize=8)  # one per knowledge version in use
def unit_factors(knowledge: Knowledge) -> dict[str, dict[str, float]]:
    """Unit (as ``unit_key`` spells it) -> factor into the rules' unit, per family."""
    umol = 1 / knowledge.constants["creatinine_umol_per_mg_dl"]
    creatinine = {"mg/dL": 1.0, "mg/100 mL": 1.0, "umol/L": umol, "micromol/L": umol, "mmol/L": 1000 * umol}
    ukat = knowledge.constants["enzyme_u_l_per_ukat_l"]
    enzyme = {unit_key(unit): factor for unit, factor in {
        "U/L": 1.0, "IU/L": 1.0, "[IU]/L": 1.0, "unit/L": 1.0, "units/L": 1.0, "ukat/L": ukat, "microkat/L": ukat}.items()}
    hcg = {unit_key(unit): 1.0 for unit in ("[IU]/L", "IU/L", "m[IU]/mL", "mIU/mL", "mU/mL", "U/L")}
    return {"creatinine": {unit_key(unit): factor for unit, factor in creatinine.items()},
            "weight": MASS_KG, "height": LENGTH_CM, "egfr": INDEXED_FLOW_ML_PER_MIN, "crcl_measured": FLOW_ML_PER_MIN,
            "alt": enzyme, "ast": enzyme, "hcg_quantitative": hcg}


def codings(concept: Any) -> list[tuple[str | None, str]]:
    """(system, code) of each coding with a string code."""
    return [(text(c, "system"), c["code"]) for c in items(concept, "coding") if text(c, "code")]


def newest_first(readings: Iterable) -> list:
    oldest = datetime.datetime.min.replace(tzinfo=datetime.timezone.utc)
    return sorted(readings, key=lambda reading: reading.when or oldest, reverse=True)


def _loinc(concept: Any, knowledge: Knowledge) -> str | None:
    """The concept's first LOINC code that the knowledge lists (the code is looked up before its system is read)."""
    for coding in items(concept, "coding"):
        code = text(coding, "code")
        if code in knowledge.observation_kinds and code_system(text(coding, "system")) == "loinc":
            return code
    return None


def _time(observation: Mapping) -> datetime.datetime | None:
    return (parse_time(observation.get("effectiveDateTime")) or parse_time(child(observation, "effectivePeriod").get("start"))
            or parse_time(observation.get("issued")))


def _measurement(observation: Mapping, family: str | None, factors: Mapping, code: str) -> tuple[Measurement, bool] | None:
    """(measurement, readable) in the rules' unit, or None when there is no numeric value at all."""
    quantity = child(observation, "valueQuantity")
    value = number(quantity, "value")
    if value is None:
        value = number(observation, "valueInteger")  # a score
    unit = (text(quantity, "code") or text(quantity, "unit") or "").strip()
    if value is None:
        return None
    highs = [number(child(reference_range, "high"), "value") for reference_range in items(observation, "referenceRange")]
    high = next((h for h in highs if h is not None), None)
    factor = factors[family].get(unit_key(unit)) if family else 1.0
    if factor is None and family in KEEP_UNKNOWN_UNIT:
        return Measurement(value, unit, _time(observation), high, code), True
    if factor is None or (value <= 0 and family is not None):  # a score of 0 is a result
        return Measurement(value, unit, _time(observation), high, code), False
    converted_high = high * factor if high is not None else None
    return Measurement(value * factor, RULE_UNITS.get(family, unit), _time(observation), converted_high, code), True


def _components(observation: Mapping, knowledge: Knowledge) -> dict[str, float | None]:
    """The value of the first component of each listed kind ("systolic_bp", "diastolic_bp", ...)."""
    values: dict[str, float | None] = {}
    for component in items(observation, "component"):
        kind = knowledge.observation_kinds.get(_loinc(component.get("code"), knowledge))
        if kind is not None and kind not in values:
            values[kind] = number(child(component, "valueQuantity"), "value")
    return values


def _blood_pressure(observation: Mapping, kind: str, knowledge: Knowledge) -> BloodPressure | None:
    components = _components(observation, knowledge)
    systolic, diastolic = components.get("systolic_bp"), components.get("diastolic_bp")
    value = number(child(observation, "valueQuantity"), "value")
    if kind == "systolic_bp" and value is not None:
        systolic = value
    if kind == "diastolic_bp" and value is not None:
        diastolic = value
    if systolic is None and diastolic is None:
        return None
    return BloodPressure(systolic, diastolic, _time(observation))


def _words_meaning(words: str) -> str | None:
    if any(word in words for word in NEGATIVE_WORDS if " " in word or "-" in word) or any(
            word in words.split() for word in NEGATIVE_WORDS):
        return "negative"
    if any(word in words.split() for word in POSITIVE_WORDS):
        return "positive"
    return None


def _coded_meaning(observation: Mapping, knowledge: Knowledge, value: bool) -> str | None:
    """The meaning of the result's coded value (``value``) or of its interpretation, by result_values.csv."""
    concepts = [child(observation, "valueCodeableConcept")] if value else items(observation, "interpretation")
    return next((meaning for concept in concepts for system, code in codings(concept)
                 if (meaning := knowledge.result_meaning(system or "", code))), None)


def hcg_result(observation: Mapping, kind: str, knowledge: Knowledge, factors: Mapping) -> HcgResult:
    """One hCG result as positive / negative / indeterminate (code-families.md §4)."""
    interpretation = _coded_meaning(observation, knowledge, value=False)
    when = _time(observation)
    if kind in ("hcg_qualitative", "hcg_interpretation"):
        meaning = (_coded_meaning(observation, knowledge, value=True) or interpretation
                   or _words_meaning(_result_text(observation)))
        return HcgResult(meaning, when, f"hCG {_result_text(observation) or 'result'}")
    measured = _measurement(observation, "hcg_quantitative" if kind == "hcg_quantitative" else None, factors, "")
    if kind == "hcg_other_units" or measured is None or not measured[1]:
        shown = f"hCG {measured[0].value:g} {measured[0].unit}".strip() if measured else "hCG result"
        return HcgResult("positive" if interpretation == "positive" else None, when, shown, quantitative=True)
    reading = measured[0]
    meaning = interpretation
    if meaning is None and reading.reference_high is not None:
        meaning = "positive" if reading.value > reading.reference_high else "negative"
    return HcgResult(meaning, when, f"hCG {reading.value:g} {reading.unit}", quantitative=True, iu_per_l=reading.value)


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
        elif kind in HCG_KINDS:
            reading, kind = hcg_result(observation, kind, knowledge, factors), "hcg"
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

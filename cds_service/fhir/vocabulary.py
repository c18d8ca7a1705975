"""The FHIR vocabulary every stage shares: code systems and units of measure.

Code systems: each canonical URI with its HL7 OID and the legacy spellings EHRs still send;
``code_system`` folds any of them to one short name. Units: one table per dimension (time for
timing and durations; mass, volume and length for doses, labs, weights and heights), keyed by
the folded spelling (``unit_key``) of the UCUM code and of the words EHRs write instead.
Substance-specific factors (creatinine umol/L per mg/dL) are clinical knowledge, not units,
and live in ``knowledge/thresholds.json`` as constants.
"""

import datetime
import functools

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
UCUM = "http://unitsofmeasure.org"
ICD10PCS = "http://www.cms.gov/Medicare/Coding/ICD10"  # THO: case-sensitive, as CMS spells it
CPT = "http://www.ama-assn.org/go/cpt"
V3_INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"

# short name -> every spelling that means it (canonical URI first; HL7 OIDs from the FHIR terminology pages)
CODE_SYSTEMS = {
    "rxnorm": (RXNORM, "urn:oid:2.16.840.1.113883.6.88"),
    "loinc": (LOINC, "urn:oid:2.16.840.1.113883.6.1"),
    "snomed": (SNOMED, "urn:oid:2.16.840.1.113883.6.96", "snomed"),
    "icd10cm": (ICD10CM, "urn:oid:2.16.840.1.113883.6.90", "http://hl7.org/fhir/sid/icd-10", "icd10cm"),
    "ucum": (UCUM, "urn:oid:2.16.840.1.113883.6.8"),
    "icd10pcs": (ICD10PCS, "urn:oid:2.16.840.1.113883.6.4", "icd10pcs"),
    "cpt": (CPT, "urn:oid:2.16.840.1.113883.6.12", "cpt"),
    "v3-interpretation": (V3_INTERPRETATION, "urn:oid:2.16.840.1.113883.5.83", "v3-interpretation"),
}
_SYSTEM_BY_SPELLING = {spelling.lower(): name for name, spellings in CODE_SYSTEMS.items() for spelling in spellings}


def code_system(system: object) -> str | None:
    """The short name ('rxnorm', 'loinc', 'snomed', 'icd10cm', ...) of any known spelling (case, trailing slash)."""
    if not isinstance(system, str):
        return None
    # a spelling as listed (most are) is found before the text is folded
    return _SYSTEM_BY_SPELLING.get(system) or _SYSTEM_BY_SPELLING.get(system.strip().rstrip("/").lower())


REMEMBERED_UNIT_LENGTH = 64  # longer unit texts are folded each time, never kept (a cache bounded in bytes too)


def unit_key(unit: str) -> str:
    """A unit as written, folded: 'µmol/L', 'μmol/L' -> 'umol/l'; 'mL/min/{1.73_m2}' -> 'ml/min/1.73m2'."""
    return _remembered_unit_key(unit) if len(unit) <= REMEMBERED_UNIT_LENGTH else _fold_unit(unit)


@functools.lru_cache(maxsize=1024)  # units as charts write them: a few dozen spellings
def _remembered_unit_key(unit: str) -> str:
    return _fold_unit(unit)


def _fold_unit(unit: str) -> str:
    folded = unit.strip().lower().replace("µ", "u").replace("μ", "u").replace("²", "2")
    for noise in (" ", "{", "}", "_", "^"):
        folded = folded.replace(noise, "")
    return folded


def _table(spellings: dict[str, float]) -> dict[str, float]:
    return {unit_key(unit): factor for unit, factor in spellings.items()}


DAY = datetime.timedelta(days=1)
# UCUM time units (timing.repeat.periodUnit, durations); a month is 30 days and a year 365 in a sig.
TIME = {"s": datetime.timedelta(seconds=1), "min": datetime.timedelta(minutes=1), "h": datetime.timedelta(hours=1),
        "d": DAY, "wk": 7 * DAY, "mo": 30 * DAY, "a": 365 * DAY}
# factor into milligrams
MASS_MG = _table({"mg": 1.0, "milligram": 1.0, "milligrams": 1.0, "g": 1000.0, "gram": 1000.0, "grams": 1000.0})
# factor into kilograms (UCUM [lb_av] is 0.45359237 kg by definition)
MASS_KG = _table({"kg": 1.0, "g": 0.001, "[lb_av]": 0.45359237, "lb": 0.45359237, "lbs": 0.45359237})
# factor into centimetres (UCUM [in_i] is 2.54 cm by definition)
LENGTH_CM = _table({"cm": 1.0, "m": 100.0, "mm": 0.1, "[in_i]": 2.54, "in": 2.54, "inch": 2.54, "inches": 2.54})
# factor into mL/min (clearances and de-indexed or indexed eGFR)
FLOW_ML_PER_MIN = _table({"mL/min": 1.0, "mL/s": 60.0})
INDEXED_FLOW_ML_PER_MIN = _table({"mL/min/{1.73_m2}": 1.0, "mL/min": 1.0, "mL/s/{1.73_m2}": 60.0})
# dose units counted in tablets (the product's strength gives the mg)
TABLETS = {"{pill}", "{tbl}", "{tablet}", "{tablets}", "tab", "tabs", "tablet", "tablets", "pill", "pills"}

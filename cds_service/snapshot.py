"""One typed, unit-normalised view of the patient: what every rule reads, built once per request.

Observations are read only when their LOINC code is one the knowledge lists, and converted to
the rules' units (creatinine mg/dL, weight kg, height cm); a value in a unit the service does
not know is left out rather than guessed. Medications become one ``MedicationUse`` per listed
ingredient, with status, route and dates; conditions become their knowledge categories.
"""

import dataclasses
import datetime
from collections.abc import Mapping
from typing import Any

from cds_service.chart import Chart
from cds_service.chart import Unavailable
from cds_service.fhir_time import parse_time
from cds_service.knowledge import Ingredient
from cds_service.knowledge import Knowledge
from cds_service.medications import MedicationMatcher
from cds_service.medications import order_route
from cds_service.orders import MilnacipranOrder
from cds_service.renal_estimate import RenalEstimate
from cds_service.renal_estimate import estimate_renal_function

LOINC = "http://loinc.org"
USABLE_OBSERVATION_STATUSES = {"final", "amended", "corrected", "preliminary", "registered", None}
RULE_UNITS = {"creatinine": "mg/dL", "weight": "kg", "height": "cm"}
ACTIVE_REQUEST_STATUSES = {"active", "on-hold"}
ACTIVE_STATEMENT_STATUSES = {"active", "intended", "on-hold"}
STOPPED_STATUSES = {"stopped", "completed"}
ACTIVE_CLINICAL_STATUSES = {"active", "recurrence", "relapse", None}
EXCLUDED_VERIFICATION = {"refuted", "entered-in-error"}
UNIT_FAMILY = {"creatinine_mass": "creatinine", "creatinine_molar": "creatinine", "weight": "weight", "height": "height"}


def unit_factors(thresholds: Mapping[str, float]) -> dict[str, dict[str, float]]:
    """Unit (UCUM code or common text, lower case) -> factor into the rules' unit, per family."""
    umol = 1 / thresholds["creatinine_umol_per_mg_dl"]
    pound, inch = thresholds["lb_to_kg"], thresholds["cm_per_inch"]
    return {
        "creatinine": {"mg/dl": 1.0, "umol/l": umol, "µmol/l": umol, "micromol/l": umol, "mmol/l": 1000 * umol},
        "weight": {"kg": 1.0, "g": 0.001, "[lb_av]": pound, "lb": pound, "lbs": pound},
        "height": {"cm": 1.0, "m": 100.0, "mm": 0.1, "[in_i]": inch, "in": inch, "inch": inch, "inches": inch},
    }


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


@dataclasses.dataclass(frozen=True)
class MedicationUse:
    """One listed ingredient the patient takes, took, or has on another draft order."""

    ingredient: Ingredient
    display: str
    reference: str
    status: str                     # active | stopped | draft
    route: str | None               # from the order's route, else from the product (route hint)
    dose_form: str | None
    ingredient_count: int
    as_needed: bool
    start: datetime.datetime | None
    stopped_at: datetime.datetime | None
    recorded: datetime.datetime | None

    @property
    def group(self) -> str:
        return self.ingredient.group

    @property
    def is_current(self) -> bool:
        return self.status in ("active", "draft")


@dataclasses.dataclass(frozen=True)
class ConditionEntry:
    category: str
    display: str
    recorded: datetime.datetime | None


@dataclasses.dataclass(frozen=True)
class Snapshot:
    now: datetime.datetime
    age: int | None
    sex: str | None                 # "male" | "female" | None (unknown)
    renal: RenalEstimate
    blood_pressures: tuple[BloodPressure, ...]         # newest first
    heart_rates: tuple[Measurement, ...]               # newest first
    labs: Mapping[str, tuple[Measurement, ...]]        # sodium, alt, ast, bilirubin_total; newest first
    hcg_results: tuple[CodedResult, ...]
    medications: tuple[MedicationUse, ...]
    conditions: tuple[ConditionEntry, ...]
    unavailable: tuple[Unavailable, ...]

    def conditions_in(self, *categories: str) -> list[ConditionEntry]:
        return [condition for condition in self.conditions if condition.category in categories]

    def medications_in(self, *groups: str) -> list[MedicationUse]:
        return [use for use in self.medications if use.group in groups]

    def days_since(self, moment: datetime.datetime | None) -> float | None:
        return None if moment is None else (self.now - moment).total_seconds() / 86400


def _codes(concept: Any) -> list[tuple[str, str]]:
    if not isinstance(concept, Mapping):
        return []
    return [(c.get("system"), str(c.get("code"))) for c in concept.get("coding") or []
            if isinstance(c, Mapping) and c.get("code") is not None]


def _loinc(concept: Any, knowledge: Knowledge) -> str | None:
    return next((code for system, code in _codes(concept)
                 if system == LOINC and code in knowledge.observation_kinds), None)


def _loinc_kind(concept: Any, knowledge: Knowledge) -> str | None:
    code = _loinc(concept, knowledge)
    return knowledge.observation_kinds[code] if code else None


def _observation_time(observation: Mapping) -> datetime.datetime | None:
    period = observation.get("effectivePeriod")
    return (parse_time(observation.get("effectiveDateTime"))
            or parse_time(period.get("start") if isinstance(period, Mapping) else None)
            or parse_time(observation.get("issued")))


def _converted(quantity: Any, family: str | None, factors: Mapping) -> tuple[float, str] | None:
    """(value in the rules' unit, unit) or None for a missing value or an unknown unit."""
    if not isinstance(quantity, Mapping) or not isinstance(quantity.get("value"), (int, float)):
        return None
    value = float(quantity["value"])
    unit = str(quantity.get("code") or quantity.get("unit") or "").strip()
    if family is None:
        return value, unit
    factor = factors[family].get(unit.lower())
    return None if factor is None else (value * factor, RULE_UNITS[family])


def _measurement(observation: Mapping, family: str | None, factors: Mapping, code: str) -> Measurement | None:
    converted = _converted(observation.get("valueQuantity"), family, factors)
    if converted is None:
        return None
    high = None
    for reference_range in observation.get("referenceRange") or []:
        if isinstance(reference_range, Mapping) and isinstance(reference_range.get("high"), Mapping):
            high = reference_range["high"].get("value")
    return Measurement(converted[0], converted[1], _observation_time(observation),
                       float(high) if isinstance(high, (int, float)) else None, code)


def _component(observation: Mapping, kind: str, knowledge: Knowledge) -> float | None:
    for component in observation.get("component") or []:
        if isinstance(component, Mapping) and _loinc_kind(component.get("code"), knowledge) == kind:
            quantity = component.get("valueQuantity")
            if isinstance(quantity, Mapping) and isinstance(quantity.get("value"), (int, float)):
                return float(quantity["value"])
    return None


def _result_text(observation: Mapping) -> str:
    concept = observation.get("valueCodeableConcept")
    words = [observation.get("valueString")]
    if isinstance(concept, Mapping):
        words += [concept.get("text")] + [c.get("display") or c.get("code") for c in concept.get("coding") or []
                                          if isinstance(c, Mapping)]
    words += [c.get("code") for i in observation.get("interpretation") or [] if isinstance(i, Mapping)
              for c in i.get("coding") or [] if isinstance(c, Mapping)]
    return " ".join(str(word) for word in words if word).lower()


def _read_observations(chart: Chart, knowledge: Knowledge, thresholds: Mapping[str, float]) -> dict[str, list]:
    """Readings by kind (creatinine/weight/height merged across their codes), in the rules' units."""
    factors = unit_factors(thresholds)
    found: dict[str, list] = {}
    for observation in chart.of_type("Observation"):
        if observation.get("status") not in USABLE_OBSERVATION_STATUSES:
            continue
        code = _loinc(observation.get("code"), knowledge)
        if code is None:
            continue
        kind = knowledge.observation_kinds[code]
        if kind in ("bp_panel", "systolic_bp", "diastolic_bp"):
            systolic = _component(observation, "systolic_bp", knowledge)
            diastolic = _component(observation, "diastolic_bp", knowledge)
            quantity = observation.get("valueQuantity")
            if kind != "bp_panel" and isinstance(quantity, Mapping) and isinstance(quantity.get("value"), (int, float)):
                systolic, diastolic = (quantity["value"], None) if kind == "systolic_bp" else (None, quantity["value"])
            if systolic is not None or diastolic is not None:
                found.setdefault("blood_pressure", []).append(BloodPressure(systolic, diastolic, _observation_time(observation)))
            continue
        if kind == "hcg_qualitative":
            found.setdefault(kind, []).append(CodedResult(_result_text(observation), _observation_time(observation)))
            continue
        family = UNIT_FAMILY.get(kind)
        measurement = _measurement(observation, family, factors, code)
        if measurement is not None:
            found.setdefault(family or kind, []).append(measurement)
    return found


def _merge_blood_pressures(readings: list[BloodPressure]) -> tuple[BloodPressure, ...]:
    """Separate systolic and diastolic results taken at the same moment become one reading."""
    by_time: dict[Any, BloodPressure] = {}
    for reading in readings:
        earlier = by_time.get(reading.when)
        if earlier is None:
            by_time[reading.when] = reading
        else:
            by_time[reading.when] = BloodPressure(earlier.systolic if earlier.systolic is not None else reading.systolic,
                                                  earlier.diastolic if earlier.diastolic is not None else reading.diastolic,
                                                  reading.when)
    return tuple(_newest_first(by_time.values()))


def _newest_first(items) -> list:
    oldest = datetime.datetime.min.replace(tzinfo=datetime.timezone.utc)
    return sorted(items, key=lambda item: item.when or oldest, reverse=True)


def _age(patient: Mapping | None, now: datetime.datetime) -> int | None:
    birth = parse_time(patient.get("birthDate")) if patient else None
    if birth is None:
        return None
    return now.year - birth.year - ((now.month, now.day) < (birth.month, birth.day))


def _sex(patient: Mapping | None) -> str | None:
    gender = patient.get("gender") if patient else None
    return gender if gender in ("male", "female") else None


def _stop_instant(resource: Mapping) -> datetime.datetime | None:
    """kb §0.5 Decision 4: dosage bounds end, then effectivePeriod end, then validity end."""
    for dosage in (resource.get("dosageInstruction") or []) + (resource.get("dosage") or []):
        bounds = (dosage.get("timing") or {}).get("repeat", {}).get("boundsPeriod") if isinstance(dosage, Mapping) else None
        if isinstance(bounds, Mapping) and bounds.get("end"):
            return parse_time(bounds["end"], end_of_period=True)
    period = resource.get("effectivePeriod")
    if isinstance(period, Mapping) and period.get("end"):
        return parse_time(period["end"], end_of_period=True)
    validity = (resource.get("dispenseRequest") or {}).get("validityPeriod")
    if isinstance(validity, Mapping) and validity.get("end"):
        return parse_time(validity["end"], end_of_period=True)
    return None


def _start(resource: Mapping) -> datetime.datetime | None:
    for dosage in (resource.get("dosageInstruction") or []) + (resource.get("dosage") or []):
        bounds = (dosage.get("timing") or {}).get("repeat", {}).get("boundsPeriod") if isinstance(dosage, Mapping) else None
        if isinstance(bounds, Mapping) and bounds.get("start"):
            return parse_time(bounds["start"])
    period = resource.get("effectivePeriod")
    if isinstance(period, Mapping) and period.get("start"):
        return parse_time(period["start"])
    return parse_time(resource.get("effectiveDateTime")) or parse_time(resource.get("authoredOn"))


def _as_needed(resource: Mapping) -> bool:
    dosages = (resource.get("dosageInstruction") or []) + (resource.get("dosage") or [])
    return any(isinstance(d, Mapping) and (d.get("asNeededBoolean") or d.get("asNeededCodeableConcept"))
               for d in dosages)


def _status(resource: Mapping, is_draft: bool) -> str | None:
    if is_draft:
        return "draft"
    status = resource.get("status")
    active = ACTIVE_REQUEST_STATUSES if resource.get("resourceType") == "MedicationRequest" else ACTIVE_STATEMENT_STATUSES
    if status in active:
        return "active"
    return "stopped" if status in STOPPED_STATUSES else None


def _medication_uses(resource: Mapping, is_draft: bool, matcher: MedicationMatcher,
                     known: Mapping[str, Mapping]) -> list[MedicationUse]:
    status = _status(resource, is_draft)
    if status is None:
        return []
    medication = matcher.identify(resource, known)
    route = order_route(resource)
    uses = []
    for match in medication.matches:
        product = next((p for p in matcher.knowledge.product_ingredients.get(match.rxcui or "", ())
                        if p.ingredient == match.ingredient), None)
        uses.append(MedicationUse(
            ingredient=match.ingredient,
            display=medication.display,
            reference=f"{resource.get('resourceType')}/{resource.get('id')}",
            status=status,
            route=route or match.route_hint,
            dose_form=product.dose_form if product else None,
            ingredient_count=product.ingredient_count if product else 1,
            as_needed=_as_needed(resource),
            start=_start(resource),
            stopped_at=_stop_instant(resource) if status == "stopped" else None,
            recorded=parse_time(resource.get("authoredOn")) or parse_time(resource.get("dateAsserted")),
        ))
    return uses


def _read_medications(chart: Chart, draft_resources: list[Mapping], matcher: MedicationMatcher) -> tuple[MedicationUse, ...]:
    uses = []
    for resource in chart.of_type("MedicationRequest") + chart.of_type("MedicationStatement"):
        uses += _medication_uses(resource, False, matcher, chart.medications)
    for resource in draft_resources:
        uses += _medication_uses(resource, True, matcher, chart.medications)
    return tuple(uses)


def _is_current_condition(resource: Mapping) -> bool:
    clinical = next((code for _, code in _codes(resource.get("clinicalStatus"))), None)
    verification = next((code for _, code in _codes(resource.get("verificationStatus"))), None)
    return clinical in ACTIVE_CLINICAL_STATUSES and verification not in EXCLUDED_VERIFICATION


def _read_conditions(chart: Chart, knowledge: Knowledge) -> tuple[ConditionEntry, ...]:
    entries = {}
    resources = [r for r in chart.of_type("Condition") if _is_current_condition(r)]
    resources += [r for r in chart.of_type("Procedure") if r.get("status") not in ("entered-in-error", "not-done")]
    for resource in resources:
        concept = resource.get("code") or {}
        for system, code in _codes(concept):
            category = knowledge.condition_category(system, code)
            if category and category not in entries:
                display = concept.get("text") or next(
                    (c.get("display") for c in concept.get("coding") or [] if c.get("display")), code)
                recorded = parse_time(resource.get("recordedDate")) or parse_time(resource.get("onsetDateTime")) \
                    or parse_time(resource.get("performedDateTime"))
                entries[category] = ConditionEntry(category, f"{display} ({code})", recorded)
    return tuple(entries.values())


def build_snapshot(chart: Chart, orders: tuple[MilnacipranOrder, ...], draft_resources: list[Mapping],
                   matcher: MedicationMatcher, now: datetime.datetime, thresholds: Mapping[str, float]) -> Snapshot:
    """The snapshot for these orders; ``draft_resources`` are the session's draft orders.

    ``thresholds`` are the site policy's (look-back windows and unit factors).
    """
    knowledge = matcher.knowledge
    order_references = {order.reference for order in orders}
    other_drafts = [r for r in draft_resources if r.get("resourceType") == "MedicationRequest"
                    and f"MedicationRequest/{r.get('id')}" not in order_references]
    observations = _read_observations(chart, knowledge, thresholds)
    age, sex = _age(chart.patient, now), _sex(chart.patient)
    return Snapshot(
        now=now,
        age=age,
        sex=sex,
        renal=estimate_renal_function(
            age=age, sex=sex, now=now, thresholds=thresholds, egfr_preference=knowledge.egfr_preference,
            creatinine=_newest_first(observations.get("creatinine", [])),
            weights=_newest_first(observations.get("weight", [])),
            heights=_newest_first(observations.get("height", [])),
            egfr=_newest_first(observations.get("egfr", [])),
            measured_crcl=_newest_first(observations.get("crcl_measured", [])),
        ),
        blood_pressures=_merge_blood_pressures(observations.get("blood_pressure", [])),
        heart_rates=tuple(_newest_first(observations.get("heart_rate", []))),
        labs={kind: tuple(_newest_first(observations.get(kind, []))) for kind in ("sodium", "alt", "ast", "bilirubin_total")},
        hcg_results=tuple(_newest_first(observations.get("hcg_qualitative", []))),
        medications=_read_medications(chart, other_drafts, matcher),
        conditions=_read_conditions(chart, knowledge),
        unavailable=chart.unavailable,
    )

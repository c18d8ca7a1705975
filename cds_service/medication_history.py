"""What the patient takes or took: one ``MedicationUse`` per listed ingredient, with status, route and dates.

From the chart's MedicationRequests and MedicationStatements, and from the session's other draft
orders (which count as current). Status follows kb §0.5: active/on-hold (and a statement's
intended) are current; stopped/completed carry their stop instant (Decision 4); anything else,
entered-in-error and cancelled included, does not count.
"""

import dataclasses
import datetime
from collections.abc import Iterable
from collections.abc import Mapping

from cds_service.fhir_read import child
from cds_service.fhir_read import items
from cds_service.fhir_read import text
from cds_service.fhir_time import parse_time
from cds_service.knowledge import Ingredient
from cds_service.medications import MedicationMatcher
from cds_service.medications import order_route

ACTIVE_STATUSES = {"MedicationRequest": {"active", "on-hold"},
                   "MedicationStatement": {"active", "intended", "on-hold"}}
STOPPED_STATUSES = {"stopped", "completed"}


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


def _dosages(resource: Mapping) -> list[Mapping]:
    return items(resource, "dosageInstruction") + items(resource, "dosage")


def _bounds(resource: Mapping) -> list[Mapping]:
    return [child(child(child(dosage, "timing"), "repeat"), "boundsPeriod") for dosage in _dosages(resource)]


def stop_instant(resource: Mapping) -> datetime.datetime | None:
    """kb §0.5 Decision 4: dosage bounds end, then effectivePeriod end, then dispense validity end."""
    ends = [bounds.get("end") for bounds in _bounds(resource)] + [
        child(resource, "effectivePeriod").get("end"), child(child(resource, "dispenseRequest"), "validityPeriod").get("end")]
    return next((moment for moment in (parse_time(end, end_of_period=True) for end in ends) if moment), None)


def _start(resource: Mapping) -> datetime.datetime | None:
    starts = [bounds.get("start") for bounds in _bounds(resource)] + [
        child(resource, "effectivePeriod").get("start"), resource.get("effectiveDateTime"), resource.get("authoredOn")]
    return next((moment for moment in map(parse_time, starts) if moment), None)


def _status(resource: Mapping, is_draft: bool) -> str | None:
    status = text(resource, "status")
    if is_draft:
        return "draft"
    if status in ACTIVE_STATUSES.get(text(resource, "resourceType"), ()):
        return "active"
    return "stopped" if status in STOPPED_STATUSES else None


def _uses(resource: Mapping, is_draft: bool, matcher: MedicationMatcher,
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
            reference=f"{text(resource, 'resourceType')}/{text(resource, 'id') or 'unknown'}",
            status=status,
            route=route or match.route_hint,
            dose_form=product.dose_form if product else None,
            ingredient_count=product.ingredient_count if product else 1,
            as_needed=any(d.get("asNeededBoolean") is True or child(d, "asNeededCodeableConcept")
                          for d in _dosages(resource)),
            start=_start(resource),
            stopped_at=stop_instant(resource) if status == "stopped" else None,
            recorded=parse_time(resource.get("authoredOn")) or parse_time(resource.get("dateAsserted")),
        ))
    return uses


def read_medications(chart_resources: Iterable[Mapping], draft_resources: Iterable[Mapping],
                     matcher: MedicationMatcher, known: Mapping[str, Mapping]) -> tuple[MedicationUse, ...]:
    """Uses from the chart's orders and statements, then from the other drafts of this session."""
    uses = []
    for resource in chart_resources:
        uses += _uses(resource, False, matcher, known)
    for resource in draft_resources:
        uses += _uses(resource, True, matcher, known)
    return tuple(uses)

"""What the patient takes or took: one ``MedicationUse`` per listed ingredient, with status, route and dates.

From the chart's MedicationRequests and MedicationStatements, and from the session's other draft
orders (which count as current). Status follows kb §0.5: active/on-hold (and a statement's
intended) are current; stopped/completed carry their stop instant (Decision 4); anything else,
entered-in-error and cancelled included, does not count.
"""

import dataclasses
import datetime
import functools
import re
from collections.abc import Iterable
from collections.abc import Mapping

from cds_service.fhir.dates import parse_time
from cds_service.fhir.read import child
from cds_service.fhir.read import items
from cds_service.fhir.read import number
from cds_service.fhir.read import text
from cds_service.fhir.vocabulary import DAY
from cds_service.fhir.vocabulary import TIME
from cds_service.knowledge import Ingredient
from cds_service.orders.dose import doses_per_day
from cds_service.orders.dose import extract_dosing
from cds_service.orders.milnacipran_orders import STOPPING_STATUSES
from cds_service.orders.products import Medication
from cds_service.orders.products import MedicationMatcher
from cds_service.orders.products import order_route
from cds_service.orders.products import route_from_name

ACTIVE_STATUSES = {"MedicationRequest": {"active", "on-hold"},
                   "MedicationStatement": {"active", "intended", "on-hold"}}
STOPPED_STATUSES = {"stopped", "completed"}
# A draft entry with one of these statuses is the session stopping an order, not another drug being ordered:
# the chart order it names (same id) counts as stopped (code-families.md §6: a bundle that stops A and adds D).
STOPPING_DRAFT_STATUSES = STOPPING_STATUSES


@dataclasses.dataclass(frozen=True)
class MedicationUse:
    """One listed ingredient the patient takes, took, or has on another draft order."""

    ingredient: Ingredient
    display: str
    reference: str
    status: str                     # active | stopped | draft
    route: str | None               # as the order or statement states it (dosage route), if it does
    product_route: str | None       # the product's route hint (product table, or a brand name)
    dose_form: str | None
    ingredient_count: int
    as_needed: bool
    start: datetime.datetime | None
    stopped_at: datetime.datetime | None    # the last moment the drug may have been taken, if the record says
    recorded: datetime.datetime | None      # authored or asserted
    stopped_on: str | None = None           # the stop date as recorded, for display
    taken_at: datetime.datetime | None = None   # a statement's effectiveDateTime (end of that day)
    forms: frozenset[str] = frozenset()         # forms.json forms its words show: topical_nsaid, heparin_flush_lock, ...
    identifiers: frozenset[str] = frozenset()   # "system|value" of the record's identifiers (renewal links)
    group_identifier: str | None = None         # "system|value" of a MedicationRequest's groupIdentifier
    daily_mg: float | None = None               # milnacipran: the record's daily dose, when it can be read

    @property
    def group(self) -> str:
        return self.ingredient.group

    @property
    def routes(self) -> set[str]:
        """Every route known for this use; empty when neither the order nor the product says."""
        return {route for route in (self.route, self.product_route) if route}

    @property
    def is_current(self) -> bool:
        return self.status in ("active", "draft")


def _dosages(resource: Mapping) -> list[Mapping]:
    return items(resource, "dosageInstruction") + items(resource, "dosage")


def _bounds(resource: Mapping) -> list[Mapping]:
    return [child(child(child(dosage, "timing"), "repeat"), "boundsPeriod") for dosage in _dosages(resource)]


def _latest(moments) -> datetime.datetime | None:
    return max((moment for moment in moments if moment), default=None)


def _end_of_course(dosage: Mapping, start: datetime.datetime | None) -> datetime.datetime | None:
    """The last ``timing.event``, or start + boundsDuration, or start + count doses at the stated
    frequency (a single dose: the start)."""
    events = child(dosage, "timing").get("event")
    last_event = _latest(parse_time(event, end_of_period=True) for event in events) if isinstance(events, list) else None
    if last_event is not None:
        return last_event
    repeat = child(child(dosage, "timing"), "repeat")
    duration, unit = number(child(repeat, "boundsDuration"), "value"), text(child(repeat, "boundsDuration"), "code")
    if start is None:
        return None
    if duration is not None and unit in TIME:
        return start + duration * TIME[unit]
    count, per_day = number(repeat, "count"), doses_per_day(child(dosage, "timing"))
    if count is not None and count >= 1:
        return start + (count - 1) / per_day * DAY if per_day else start
    return None


def stop_instant(resource: Mapping) -> datetime.datetime | None:
    """The last moment the drug was (or may have been) taken, for a stopped or completed order.

    kb §0.5 Decision 4's ends first: the latest dosage ``boundsPeriod.end`` (a tapered order has
    several), ``effectivePeriod.end``, the dispense ``validityPeriod.end``; then what the course
    itself implies (its last ``timing.event``, start + ``boundsDuration`` or ``count``). A date
    without a time counts from the end of that day, a date-only start from the end of its day.
    """
    start = _start(resource, conservative=True)
    candidates = (
        lambda: _latest(parse_time(bounds.get("end"), end_of_period=True) for bounds in _bounds(resource)),
        lambda: parse_time(child(resource, "effectivePeriod").get("end"), end_of_period=True),
        lambda: parse_time(child(child(resource, "dispenseRequest"), "validityPeriod").get("end"), end_of_period=True),
        lambda: _latest(_end_of_course(dosage, start) for dosage in _dosages(resource)),
    )
    return next((moment for moment in (candidate() for candidate in candidates) if moment), None)


def _stop_as_recorded(resource: Mapping) -> str | None:
    """The stop date as the record states it, for display (the instant above may be a day later)."""
    ends = [bounds.get("end") for bounds in _bounds(resource)] + [
        child(resource, "effectivePeriod").get("end"), resource.get("effectiveDateTime")]
    dated = sorted((end for end in ends if parse_time(end)), key=parse_time)
    return dated[-1][:10] if dated else None


def _start(resource: Mapping, conservative: bool = False) -> datetime.datetime | None:
    """When the course began; ``conservative``: a date-only start from the end of that day."""
    starts = [bounds.get("start") for bounds in _bounds(resource)] + [
        child(resource, "effectivePeriod").get("start"), resource.get("effectiveDateTime"), resource.get("authoredOn")]
    moments = (parse_time(start, end_of_period=conservative) for start in starts)
    return next((moment for moment in moments if moment), None)


def _status(resource: Mapping, is_draft: bool) -> str | None:
    status = text(resource, "status")
    if is_draft:
        return None if status in STOPPING_DRAFT_STATUSES else "draft"
    if status in ACTIVE_STATUSES.get(text(resource, "resourceType"), ()):
        return "active"
    return "stopped" if status in STOPPED_STATUSES else None


def _words(resource: Mapping, medication: Medication, dose_form: str | None) -> str:
    """Everything a record says in words about its form: the drug's name, dose form, route and instructions."""
    dosages = _dosages(resource)
    words = [medication.display, dose_form or ""] + [text(d, "text") or "" for d in dosages]
    words += [text(child(d, "route"), "text") or "" for d in dosages]
    words += [text(c, "display") or "" for d in dosages for c in items(child(d, "route"), "coding")]
    return " ".join(words).lower()


@functools.lru_cache(maxsize=64)  # one per word list of forms.json (a handful per knowledge version)
def _whole_words(words: tuple[str, ...]) -> re.Pattern:
    """A pattern finding any of ``words`` as a whole word (not inside a longer word or number)."""
    return re.compile(r"(?<![a-z0-9])(?:" + "|".join(re.escape(word) for word in words) + r")(?![a-z0-9])")


def _shows_any(text: str, words: tuple[str, ...]) -> bool:
    return bool(words) and _whole_words(words).search(text) is not None


def medication_forms(words: str, group: str, knowledge) -> frozenset[str]:
    """The forms.json forms whose words the text shows, for the forms that apply to this ingredient group."""
    return frozenset(form for form, applies in knowledge.form_applies_to.items()
                     if group in applies and _shows_any(words, knowledge.form_words[form])
                     and not _shows_any(words, knowledge.form_not_words[form]))


def _identifier(value: Mapping) -> str | None:
    return f"{text(value, 'system') or ''}|{text(value, 'value')}" if text(value, "value") else None


def _record(resource: Mapping, status: str) -> dict:
    """What the order or statement says whatever the ingredient: its reference, route, dates and identifiers."""
    stopped = status == "stopped"
    return dict(
        reference=f"{text(resource, 'resourceType')}/{text(resource, 'id') or 'unknown'}",
        status=status,
        route=order_route(resource),
        as_needed=any(d.get("asNeededBoolean") is True or child(d, "asNeededCodeableConcept") for d in _dosages(resource)),
        start=_start(resource),
        stopped_at=stop_instant(resource) if stopped else None,
        recorded=parse_time(resource.get("authoredOn")) or parse_time(resource.get("dateAsserted")),
        stopped_on=_stop_as_recorded(resource) if stopped else None,
        taken_at=parse_time(resource.get("effectiveDateTime"), end_of_period=True),
        identifiers=frozenset(filter(None, (_identifier(i) for i in items(resource, "identifier")))),
        group_identifier=_identifier(child(resource, "groupIdentifier")),
    )


def _uses(resource: Mapping, medication: Medication, status: str, matcher: MedicationMatcher) -> list[MedicationUse]:
    """One use per listed ingredient the medication names; none (and nothing else read) when it names none."""
    if not medication.matches:
        return []
    record = _record(resource, status)
    uses = []
    for match in medication.matches:
        product = next((p for p in matcher.knowledge.product_ingredients.get(match.rxcui or "", ())
                        if p.ingredient == match.ingredient), None)
        dosing = extract_dosing(resource, match.strength_mg) if match.ingredient.group == "milnacipran" else None
        uses.append(MedicationUse(
            ingredient=match.ingredient,
            display=medication.display,
            product_route=match.route_hint or route_from_name(medication.display),
            dose_form=product.dose_form if product else None,
            ingredient_count=product.ingredient_count if product else 1,
            forms=medication_forms(_words(resource, medication, product.dose_form if product else None),
                                   match.ingredient.group, matcher.knowledge),
            daily_mg=dosing.max_daily_mg if dosing else None,
            **record,
        ))
    return uses


def read_medications(chart_resources: Iterable[Mapping], draft_resources: Iterable[Mapping],
                     matcher: MedicationMatcher, known: Mapping[str, Mapping]
                     ) -> tuple[tuple[MedicationUse, ...], tuple[str, ...]]:
    """Uses from the chart's orders and statements, then from the other drafts of this session; and the
    "MedicationRequest/<id>" of entries whose medicationReference nobody could resolve: their drug is
    unknown, so an interaction check could miss it (the data-availability card says so)."""
    uses, unidentified = [], []
    draft_resources = list(draft_resources)
    stopping = {(text(r, "resourceType"), text(r, "id")) for r in draft_resources
                if text(r, "status") in STOPPING_DRAFT_STATUSES and text(r, "id")}
    for resource, is_draft in [(r, False) for r in chart_resources] + [(r, True) for r in draft_resources]:
        status = _status(resource, is_draft)
        if status == "active" and (text(resource, "resourceType"), text(resource, "id")) in stopping:
            status = "stopped"  # this session stops it
        if status is None:
            continue
        medication = matcher.identify(resource, known)
        uses += _uses(resource, medication, status, matcher)
        if medication.unresolved_reference:
            unidentified.append(f"{text(resource, 'resourceType')}/{text(resource, 'id') or 'unknown'}")
    return tuple(uses), tuple(unidentified)

"""The problem list as knowledge categories (esrd, seizure, pregnancy, ...), from Conditions and Procedures.

A coding belongs to every category whose code family holds it (``Knowledge.condition_categories``),
and each category counts as ``condition_categories.json`` says (code-families.md §5):

- never a Condition whose ``verificationStatus`` is refuted or entered-in-error;
- a **history-of** category (mania, seizure disorder, suicidality, chronic liver disease, ...)
  counts whatever the ``clinicalStatus`` (active, recurrence, relapse, inactive, remission,
  resolved) or none: the label's precaution is about a history;
- a **current** category (pregnancy, lactation, ESRD, hypertension, ...) counts only when active,
  recurrence or relapse; with no ``clinicalStatus`` only when it has no ``abatement[x]`` and, where
  the category names a ``window`` threshold, its onset or recorded date lies inside it (the window
  bounds a record without status only: ``ConditionCategory.window``, code-families.md §5);
- a category with ``closed_by`` (pregnancy) does not count when a record of the closing category
  (an end-of-pregnancy marker) is dated at or after it.

A Procedure (dialysis) counts when it is in progress or was performed within
``dialysis_procedure_recent_days``: "active dialysis" (kb §0.5 Decision 1), not a single session
years ago. One entry per category: an active record is preferred to an inactive one (then the
newest), so a card says "history of" only when nothing on the list is active.
"""

import dataclasses
import datetime
from collections.abc import Iterable
from collections.abc import Mapping

from cds_service.fhir.dates import parse_time
from cds_service.fhir.read import child
from cds_service.fhir.read import items
from cds_service.fhir.read import text
from cds_service.knowledge import Knowledge
from cds_service.snapshot.labs_and_vitals import codings

ACTIVE_CLINICAL_STATUSES = {"active", "recurrence", "relapse"}
INACTIVE_CLINICAL_STATUSES = {"inactive", "remission", "resolved"}
HISTORY_CLINICAL_STATUSES = ACTIVE_CLINICAL_STATUSES | INACTIVE_CLINICAL_STATUSES
EXCLUDED_VERIFICATION = {"refuted", "entered-in-error"}
UNCONFIRMED_VERIFICATION = {"unconfirmed", "provisional", "differential"}
EXCLUDED_PROCEDURE_STATUSES = {"entered-in-error", "not-done"}
OLDEST = datetime.datetime.min.replace(tzinfo=datetime.timezone.utc)
ABATEMENT_FIELDS = ("abatementDateTime", "abatementAge", "abatementPeriod", "abatementRange", "abatementString",
                    "abatementBoolean")


@dataclasses.dataclass(frozen=True)
class ConditionEntry:
    category: str
    display: str
    recorded: datetime.datetime | None
    source: str = "problem list"    # or "record" for a procedure
    active: bool = True             # False: inactive, in remission or resolved (a history-of category)
    status: str | None = None       # the clinicalStatus code as recorded
    unconfirmed: bool = False       # verificationStatus unconfirmed, provisional or differential

    def __str__(self) -> str:
        """e.g. 'End stage renal disease (N18.6) on the problem list', 'History of: Bipolar ... (remission)'."""
        notes = [note for note in ((self.status if not self.active else None),
                                   ("unconfirmed" if self.unconfirmed else None)) if note]
        shown = f"{self.display} on the {self.source}" + (f" ({', '.join(notes)})" if notes else "")
        return shown if self.active else f"History of: {shown}"


def history_only(entries: Iterable[ConditionEntry]) -> bool:
    """True when there are entries and none is active: a card then says "history of"."""
    entries = list(entries)
    return bool(entries) and not any(entry.active for entry in entries)


def _first_code(concept) -> str | None:
    return next((code for _, code in codings(concept)), None)


def _performed(resource: Mapping) -> datetime.datetime | None:
    period = child(resource, "performedPeriod")
    return max((moment for moment in (parse_time(resource.get("performedDateTime"), end_of_period=True),
                                      parse_time(period.get("end"), end_of_period=True), parse_time(period.get("start")))
                if moment), default=None)


def _recorded(resource: Mapping) -> datetime.datetime | None:
    return next((moment for moment in map(parse_time, (
        resource.get("onsetDateTime"), child(resource, "onsetPeriod").get("start"), resource.get("recordedDate"),
        resource.get("performedDateTime"), child(resource, "performedPeriod").get("start"))) if moment), None)


def _procedure_counts(resource: Mapping, now: datetime.datetime, thresholds: Mapping[str, float]) -> bool:
    if text(resource, "status") in EXCLUDED_PROCEDURE_STATUSES:
        return False
    performed = _performed(resource)
    recent = datetime.timedelta(days=thresholds["dialysis_procedure_recent_days"])
    return text(resource, "status") == "in-progress" or (performed is not None and now - performed <= recent)


def _in_window(when: datetime.datetime | None, window: str | None, now: datetime.datetime,
               thresholds: Mapping[str, float]) -> bool:
    """Inside the category's window (pregnancy <= 10 months, ...), for a record without clinicalStatus; undated: no."""
    if window is None:
        return True
    return when is not None and now - when <= datetime.timedelta(days=thresholds[window])


@dataclasses.dataclass(frozen=True)
class _Record:
    entry: ConditionEntry
    when: datetime.datetime | None


def _records(resource: Mapping, knowledge: Knowledge, now: datetime.datetime,
             thresholds: Mapping[str, float]) -> list[_Record]:
    """What one Condition or Procedure contributes: one record per category it counts for."""
    is_procedure = text(resource, "resourceType") == "Procedure"
    if is_procedure and not _procedure_counts(resource, now, thresholds):
        return []
    verification = _first_code(resource.get("verificationStatus"))
    if verification in EXCLUDED_VERIFICATION:
        return []
    status = None if is_procedure else _first_code(resource.get("clinicalStatus"))
    concept = child(resource, "code")
    display = text(concept, "text") or next((text(c, "display") for c in items(concept, "coding") if text(c, "display")), "")
    when = _recorded(resource)
    abated = any(field in resource for field in ABATEMENT_FIELDS)
    found: list[_Record] = []
    seen: set[str] = set()
    for system, code in codings(concept):
        for category in knowledge.condition_categories(system, code):
            spec = knowledge.categories[category]
            if category in seen:
                continue
            if is_procedure:
                counts = active = True
            elif spec.counts == "history-of":
                counts = status is None or status in HISTORY_CLINICAL_STATUSES
                active = status in ACTIVE_CLINICAL_STATUSES or (status is None and not abated)
            else:
                counts = active = status in ACTIVE_CLINICAL_STATUSES or (
                    status is None and not abated and _in_window(when, spec.window, now, thresholds))
            if not counts:
                continue
            seen.add(category)
            found.append(_Record(ConditionEntry(
                category, f"{display} ({code})" if display else code, when, "record" if is_procedure else "problem list",
                active=active, status=status, unconfirmed=verification in UNCONFIRMED_VERIFICATION), when))
    return found


def _closed(record: _Record, closing: list[_Record]) -> bool:
    """A later (or same-day) record of the closing category ends this one; undated records close nothing."""
    return record.when is not None and any(other.when is not None and other.when >= record.when for other in closing)


def read_conditions(resources: Iterable[Mapping], knowledge: Knowledge, now: datetime.datetime,
                    thresholds: Mapping[str, float]) -> tuple[ConditionEntry, ...]:
    """One entry per category that counts, active records first, with the code's display and its date."""
    by_category: dict[str, list[_Record]] = {}
    for resource in resources:
        for record in _records(resource, knowledge, now, thresholds):
            by_category.setdefault(record.entry.category, []).append(record)
    entries = []
    for category in knowledge.categories:  # priority order
        closed_by = knowledge.categories[category].closed_by
        records = [record for record in by_category.get(category, ())
                   if closed_by is None or not _closed(record, by_category.get(closed_by, []))]
        if records:
            entries.append(max(records, key=lambda record: (record.entry.active, record.when or OLDEST)).entry)
    return tuple(entries)

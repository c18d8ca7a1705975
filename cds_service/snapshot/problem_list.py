"""The problem list as knowledge categories (esrd, seizure, pregnancy, ...), from Conditions and Procedures.

A Condition counts when its clinical status is active, recurrence or relapse (or absent) and it
is not refuted or entered in error. A Procedure (dialysis) counts when it is in progress or was
performed within ``dialysis_procedure_recent_days``: "active dialysis" (kb §0.5 Decision 1), not a
single session years ago.
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

CURRENT_CLINICAL_STATUSES = {"active", "recurrence", "relapse", None}
EXCLUDED_VERIFICATION = {"refuted", "entered-in-error"}
EXCLUDED_PROCEDURE_STATUSES = {"entered-in-error", "not-done"}


@dataclasses.dataclass(frozen=True)
class ConditionEntry:
    category: str
    display: str
    recorded: datetime.datetime | None
    source: str = "problem list"    # or "record" for a procedure

    def __str__(self) -> str:
        """e.g. 'End stage renal disease (N18.6) on the problem list'."""
        return f"{self.display} on the {self.source}"


def _first_code(concept) -> str | None:
    return next((code for _, code in codings(concept)), None)


def _performed(resource: Mapping) -> datetime.datetime | None:
    period = child(resource, "performedPeriod")
    return max((moment for moment in (parse_time(resource.get("performedDateTime"), end_of_period=True),
                                      parse_time(period.get("end"), end_of_period=True), parse_time(period.get("start")))
                if moment), default=None)


def _counts(resource: Mapping, now: datetime.datetime, thresholds: Mapping[str, float]) -> bool:
    if text(resource, "resourceType") == "Procedure":
        if text(resource, "status") in EXCLUDED_PROCEDURE_STATUSES:
            return False
        performed = _performed(resource)
        recent = datetime.timedelta(days=thresholds["dialysis_procedure_recent_days"])
        return text(resource, "status") == "in-progress" or (performed is not None and now - performed <= recent)
    return (_first_code(resource.get("clinicalStatus")) in CURRENT_CLINICAL_STATUSES
            and _first_code(resource.get("verificationStatus")) not in EXCLUDED_VERIFICATION)


def read_conditions(resources: Iterable[Mapping], knowledge: Knowledge, now: datetime.datetime,
                    thresholds: Mapping[str, float]) -> tuple[ConditionEntry, ...]:
    """One entry per category found, with the first code's display and its recorded date."""
    entries: dict[str, ConditionEntry] = {}
    for resource in resources:
        if not _counts(resource, now, thresholds):
            continue
        concept = child(resource, "code")
        for system, code in codings(concept):
            category = knowledge.condition_category(system, code)
            if category is None or category in entries:
                continue
            display = text(concept, "text") or next((text(c, "display") for c in items(concept, "coding")
                                                     if text(c, "display")), code)
            recorded = next((moment for moment in map(parse_time, (
                resource.get("recordedDate"), resource.get("onsetDateTime"), resource.get("performedDateTime")))
                if moment), None)
            source = "record" if text(resource, "resourceType") == "Procedure" else "problem list"
            entries[category] = ConditionEntry(category, f"{display} ({code})", recorded, source)
    return tuple(entries.values())

"""How the rules word what they found: medication lines, short name lists, bullet lists."""

import datetime
from collections.abc import Sequence

from cds_service.contract import SUMMARY_LIMIT
from cds_service.fhir.dates import show_date
from cds_service.snapshot.medication_history import MedicationUse


def describe_use(use: MedicationUse, now: datetime.datetime) -> str:
    """e.g. 'phenelzine — Nardil 15 mg (MedicationRequest, stopped 2026-11-15)'."""
    if use.status == "draft":
        state = "another draft order in this session"
    elif use.status == "active":
        state = f"active since {show_date(use.start)}" if use.start else "active"
    elif use.stopped_at is not None and use.stopped_at > now:
        state = f"course running until {use.stopped_on or show_date(use.stopped_at)}"  # its course has not ended
    else:
        stopped = use.stopped_on or (show_date(use.stopped_at) if use.stopped_at else None)
        state = f"stopped {stopped}" if stopped else "stopped, stop date not recorded"
    route = f", {' / '.join(sorted(use.routes))}" if use.routes else ""
    return f"**{use.ingredient.name}** — {use.display} ({use.reference.split('/')[0]}, {state}{route})"


def name_list(names, limit: int = 3) -> str:
    """'a, b, c' or 'a, b, c and 2 more': short enough for a card summary."""
    names = sorted(set(names))
    shown = ", ".join(names[:limit])
    return shown if len(names) <= limit else f"{shown} and {len(names) - limit} more"


def summary_naming(template: str, names) -> str:
    """``template`` ('... {names} ...') naming every drug when that fits a card summary, else the first three."""
    every = template.format(names=name_list(names, limit=len(set(names))))
    return every if len(every) <= SUMMARY_LIMIT else template.format(names=name_list(names))


def bullet_list(lines: Sequence[str]) -> str:
    return "\n".join(f"- {line}" for line in lines)


def unread_dose(order) -> str:
    """Why an order's dose is unchecked: what could be read of it, and the sig as written."""
    sig = f" (instructions: “{order.instructions}”)" if order.instructions else ""
    strength = "" if order.match.strength_mg or order.match.titration_pack else \
        "; the tablet strength is not known from the product code or its name"
    return f"The ordered dose could not be read: {order.dosing.describe()}{sig}{strength}."


def ordered(order) -> str:
    """'Ordered: 100 mg twice a day (200 mg/day).', saying where a tablet strength read from words came from."""
    source = ""
    if order.match.strength_in_words:
        source = f" The tablet strength ({order.match.strength_mg:g} mg) was read from “{order.display}”."
    return f"Ordered: {order.dosing.describe()}.{source}"

"""What a rule reports: a frozen ``Finding``, with suggestions that change the draft order."""

import dataclasses
from collections.abc import Mapping
from typing import Any

INDICATOR_RANK = {"info": 0, "warning": 1, "critical": 2}


@dataclasses.dataclass(frozen=True)
class Action:
    """One CDS Hooks action: ``create``/``update`` carry a resource, ``delete`` a resource id."""

    type: str
    description: str
    resource: Mapping[str, Any] | None = None
    resource_id: str | None = None


@dataclasses.dataclass(frozen=True)
class Suggestion:
    label: str
    actions: tuple[Action, ...]
    is_recommended: bool = False


@dataclasses.dataclass(frozen=True)
class Finding:
    """A problem a rule found (or a check it could not run), in the clinician's words.

    ``topic`` and ``rule_id`` are stamped by the rule engine; rules leave them empty.
    """

    indicator: str
    summary: str
    detail: str
    label_section: str
    suggestions: tuple[Suggestion, ...] = ()
    topic: str = ""
    rule_id: str = ""

    @property
    def rank(self) -> int:
        return INDICATOR_RANK[self.indicator]

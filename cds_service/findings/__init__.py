"""What a rule reports: a frozen ``Finding``, with suggestions that change the draft order."""

import dataclasses
from collections.abc import Mapping
from typing import Any

from cds_service.contract import INDICATORS
from cds_service.contract import TOPICS

INDICATOR_RANK = {indicator: rank for rank, indicator in enumerate(INDICATORS)}
LABEL = "Savella prescribing information"


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

    ``topic`` is stamped by the rule engine from the registry, and so is ``rule_id`` when the
    rule has only one; a rule with several ids names the one it found.
    """

    indicator: str
    summary: str
    detail: str
    label_section: str
    suggestions: tuple[Suggestion, ...] = ()
    topic: str = ""
    rule_id: str = ""
    brief: str = ""  # a few words for a card that combines routine notices ("age 68: hyponatremia risk")

    @property
    def rank(self) -> int:
        return INDICATOR_RANK[self.indicator]


def check_could_not_run(topic: str, what: str) -> Finding:
    """The visible stand-in for a check of ``topic`` that crashed or produced something unusable."""
    return Finding("warning", f"The {TOPICS[topic].lower()} check could not run: review this yourself.",
                   "An internal error stopped this check, so it gives no assurance. It was logged for the CDS team.",
                   LABEL, topic=topic, rule_id=f"{what}-failed")

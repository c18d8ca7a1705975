"""Findings -> the response's cards: composition (``compose.py``), then drawing (``render.py``)."""

import dataclasses
from collections.abc import Sequence

from cds_service.cards.compose import compose
from cds_service.cards.render import render_cards
from cds_service.findings import Finding
from cds_service.policy import Policy
from cds_service.rules.registry import ROUTINE_NOTICES


@dataclasses.dataclass(frozen=True)
class Answer:
    cards: list[dict]
    rule_ids: tuple[tuple[str, ...], ...]  # per card, the rule ids of its findings (for the audit)


def cards_for(findings: Sequence[Finding], drafts: Sequence[str], policy: Policy, hook: str) -> Answer:
    """The CDS Hooks cards for one request's findings; ``drafts``: the references of the milnacipran drafts
    that have an id."""
    plans = compose(findings, drafts, ROUTINE_NOTICES, policy.routine_notices, hook)
    cards = render_cards(plans, f"Knowledge {policy.knowledge.version} · policy {policy.identity.name} "
                                f"({policy.identity.hash})", policy.override_reasons)
    return Answer(cards, tuple(plan.rule_ids for plan in plans))

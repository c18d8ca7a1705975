"""Findings -> the response's cards: composition (``compose.py``), then drawing (``render.py``)."""

from collections.abc import Sequence

from cds_service.cards.compose import compose
from cds_service.cards.render import render_cards
from cds_service.findings import Finding
from cds_service.policy import Policy
from cds_service.rules.registry import ROUTINE_NOTICES


def cards_for(findings: Sequence[Finding], drafts: Sequence[str], policy: Policy, hook: str) -> list[dict]:
    """The CDS Hooks cards for one request's findings; ``drafts`` are the milnacipran drafts' references."""
    plans = compose(findings, drafts, ROUTINE_NOTICES, policy.routine_notices, hook)
    return render_cards(plans, f"Knowledge {policy.knowledge.version}", policy.override_reasons)

"""Card plans -> CDS Hooks cards: the one place that guarantees the spec's card rules.

Every card gets a uuid4, a summary under 140 characters, an indicator, a source with label and
``topic`` (a contract topic code), ``selectionBehavior`` whenever it has suggestions, coded
``overrideReasons`` with a display when it is a warning or critical, and no null or empty value
anywhere. A card that cancels the order offers only the override reasons that fit a
contraindication. A card that fails to render becomes its topic's "check could not run" card.
"""

import logging
import uuid
from collections.abc import Mapping
from collections.abc import Sequence

from cds_service.cards.compose import CardPlan
from cds_service.contract import SUMMARY_LIMIT
from cds_service.contract import TOPIC_SYSTEM
from cds_service.contract import TOPICS
from cds_service.findings import Suggestion
from cds_service.findings import check_could_not_run
from cds_service.policy import CONTRAINDICATION_ONLY_TOPICS

log = logging.getLogger(__name__)

SOURCE_LABEL = "Milnacipran order check"
LABEL_URL = "https://dailymed.nlm.nih.gov/dailymed/drugInfo.cfm?setid=c288bf12-cbab-4bc5-afb8-9853c0a15792"


def _short(summary: str) -> str:
    return summary if len(summary) <= SUMMARY_LIMIT else summary[: SUMMARY_LIMIT - 1].rstrip() + "…"


def _present(**fields) -> dict:
    """The fields that have a value: the spec's "no null or empty value" for a card's own fields.
    (Suggestion resources arrive pruned from their builders, so they are not walked again.)"""
    return {key: value for key, value in fields.items() if value not in (None, "", [], {})}


def _suggestion(suggestion: Suggestion) -> dict:
    return _present(
        label=suggestion.label,
        uuid=str(uuid.uuid4()),
        isRecommended=suggestion.is_recommended or None,
        actions=[_present(type=action.type, description=action.description,
                          resource=dict(action.resource) if action.resource is not None else None,
                          resourceId=action.resource_id)
                 for action in suggestion.actions],
    )


def _detail(plan: CardPlan, footer: str) -> str:
    """Each finding's numbers and advice (after its own summary in bold when the card has several and
    the card's summary is not already it), then the label sections and the footer."""
    def heading(finding):
        return "" if plan.combined_notices or finding.summary == plan.summary else f"**{finding.summary}**\n\n"
    body = "\n\n".join(heading(finding) + finding.detail for finding in plan.findings if finding.detail or heading(finding))
    sections = "; ".join(dict.fromkeys(finding.label_section for finding in plan.findings))
    return f"{body}\n\n**Label:** {sections}\n\n_{footer} · rules {', '.join(plan.rule_ids)}_"


def _override_reasons(reasons: Sequence[Mapping], plan: CardPlan) -> list[dict]:
    """The reasons that fit the card: its topic's (a reason without ``topics`` fits every topic), and of
    those, on a card that cancels the order (or on the MAOI topic) only the ones that fit a
    contraindication, elsewhere only the others."""
    contraindication = plan.cancels_order or plan.topic in CONTRAINDICATION_ONLY_TOPICS
    return [{key: reason[key] for key in ("system", "code", "display")} for reason in reasons
            if plan.topic in reason.get("topics", (plan.topic,))
            and reason.get("contraindication", False) == contraindication]


def render_card(plan: CardPlan, footer: str, override_reasons: Sequence[Mapping]) -> dict:
    return _present(
        uuid=str(uuid.uuid4()),
        summary=_short(plan.summary),
        indicator=plan.lead.indicator,
        detail=_detail(plan, footer),
        source={"label": SOURCE_LABEL, "url": LABEL_URL,
                "topic": {"system": TOPIC_SYSTEM, "code": plan.topic, "display": TOPICS[plan.topic]}},
        suggestions=[_suggestion(suggestion) for suggestion in plan.suggestions],
        selectionBehavior="at-most-one" if plan.suggestions else None,
        overrideReasons=_override_reasons(override_reasons, plan) if plan.lead.rank > 0 else None,
        links=[{"label": "Savella prescribing information (DailyMed)", "url": LABEL_URL, "type": "absolute"}],
    )


def render_cards(plans: Sequence[CardPlan], footer: str, override_reasons: Sequence[Mapping]) -> list[dict]:
    """The cards in the plans' order; ``footer`` names the knowledge version and the policy in force."""
    return [_isolated(plan, footer, override_reasons) for plan in plans]


def _isolated(plan: CardPlan, footer: str, override_reasons: Sequence[Mapping]) -> dict:
    """The plan's card; if it cannot be rendered, that topic's "check could not run" card instead."""
    try:
        return render_card(plan, footer, override_reasons)
    except Exception:
        log.exception("card failed to render", extra={"fields": {"topic": plan.topic}})
        failed = check_could_not_run(plan.topic, "card")
        return render_card(CardPlan(plan.topic, (failed,), (), failed.summary, False), footer, override_reasons)

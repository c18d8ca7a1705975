"""Findings -> CDS Hooks cards: the one place that guarantees the spec's card rules.

Every card gets a uuid4, a summary under 140 characters, an indicator, a source with label and
``topic`` (a contract topic code), ``selectionBehavior`` whenever it has suggestions, coded
``overrideReasons`` with a display when it is a warning or critical, and no null or empty value
anywhere. Findings of one topic become one card: one card per problem, not per drug pair.
"""

import logging
import uuid
from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence

from cds_service.contract import TOPIC_SYSTEM
from cds_service.contract import TOPICS
from cds_service.fhir.r4 import prune
from cds_service.findings import Finding
from cds_service.findings import Suggestion
from cds_service.findings import check_could_not_run

log = logging.getLogger(__name__)

SOURCE_LABEL = "Milnacipran order check"
LABEL_URL = "https://dailymed.nlm.nih.gov/dailymed/drugInfo.cfm?setid=c288bf12-cbab-4bc5-afb8-9853c0a15792"
SUMMARY_LIMIT = 139


def _short(summary: str) -> str:
    return summary if len(summary) <= SUMMARY_LIMIT else summary[: SUMMARY_LIMIT - 1].rstrip() + "…"


def _suggestion(suggestion: Suggestion) -> dict:
    return {
        "label": suggestion.label,
        "uuid": str(uuid.uuid4()),
        "isRecommended": suggestion.is_recommended or None,
        "actions": [
            {"type": action.type, "description": action.description,
             "resource": dict(action.resource) if action.resource is not None else None,
             "resourceId": action.resource_id}
            for action in suggestion.actions
        ],
    }


def _unique_suggestions(findings: Sequence[Finding]) -> list[Suggestion]:
    """Each distinct suggestion once: the same label on the same drafts is the same button."""
    seen = {}
    for finding in findings:
        for suggestion in finding.suggestions:
            targets = tuple((a.resource_id or (a.resource or {}).get("id")) for a in suggestion.actions)
            seen.setdefault((suggestion.label, targets), suggestion)
    return list(seen.values())


def _detail(findings: Sequence[Finding], knowledge_version: str) -> str:
    sections = "; ".join(dict.fromkeys(finding.label_section for finding in findings))
    rules = ", ".join(dict.fromkeys(finding.rule_id for finding in findings))
    body = "\n\n".join(finding.detail for finding in findings)
    return f"{body}\n\n**Label:** {sections}\n\n_Knowledge {knowledge_version} · rules {rules}_"


def _override_reasons(reasons: Sequence[Mapping], topic: str) -> list[dict]:
    """The reasons that fit this card's topic (a reason without ``topics`` fits every card), as Codings."""
    return [{key: reason[key] for key in ("system", "code", "display")}
            for reason in reasons if topic in reason.get("topics", (topic,))]


def render_card(findings: Sequence[Finding], knowledge_version: str, override_reasons: Sequence[Mapping]) -> dict:
    """One card from the findings of one topic, most urgent first."""
    ordered = sorted(findings, key=lambda finding: -finding.rank)
    lead = ordered[0]
    suggestions = _unique_suggestions(ordered)
    return prune({
        "uuid": str(uuid.uuid4()),
        "summary": _short(lead.summary),
        "indicator": lead.indicator,
        "detail": _detail(ordered, knowledge_version),
        "source": {
            "label": SOURCE_LABEL,
            "url": LABEL_URL,
            "topic": {"system": TOPIC_SYSTEM, "code": lead.topic, "display": TOPICS[lead.topic]},
        },
        "suggestions": [_suggestion(suggestion) for suggestion in suggestions],
        "selectionBehavior": "at-most-one" if suggestions else None,
        "overrideReasons": _override_reasons(override_reasons, lead.topic) if lead.rank > 0 else None,
        "links": [{"label": "Savella prescribing information (DailyMed)", "url": LABEL_URL, "type": "absolute"}],
    })


def render_cards(findings: Iterable[Finding], knowledge_version: str, override_reasons: Sequence[Mapping]) -> list[dict]:
    """One card per topic, most urgent card first, ties in the order the rules ran."""
    by_topic: dict[str, list[Finding]] = {}
    for finding in findings:
        by_topic.setdefault(finding.topic, []).append(finding)
    groups = sorted(by_topic.values(), key=lambda group: -max(finding.rank for finding in group))
    return [_isolated(group, knowledge_version, override_reasons) for group in groups]


def _isolated(findings: Sequence[Finding], knowledge_version: str, override_reasons: Sequence[Mapping]) -> dict:
    """The topic's card; if it cannot be rendered, that topic's "check could not run" card instead."""
    try:
        return render_card(findings, knowledge_version, override_reasons)
    except Exception:
        topic = findings[0].topic
        log.exception("card failed to render", extra={"fields": {"topic": topic}})
        return render_card([check_could_not_run(topic, "card")], knowledge_version, override_reasons)

"""Validation of CDS Hooks 2.0 feedback: ``{"feedback": [Feedback, ...]}``."""

import dataclasses
import datetime
from collections.abc import Mapping
from typing import Any

from cds_service.errors import BadRequest

OUTCOMES = ("accepted", "overridden")


@dataclasses.dataclass(frozen=True)
class Feedback:
    card: str
    outcome: str
    accepted_suggestions: tuple[str, ...]
    override_reason: Mapping[str, Any] | None
    user_comment: str | None
    outcome_timestamp: datetime.datetime


def _timestamp(value: Any, where: str) -> datetime.datetime:
    if not isinstance(value, str):
        raise BadRequest(f"'{where}.outcomeTimestamp' is required: an RFC 3339 UTC date-time.")
    try:
        parsed = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(f"'{where}.outcomeTimestamp' is not an RFC 3339 date-time: {value!r}.") from None
    if parsed.tzinfo is None:
        raise BadRequest(f"'{where}.outcomeTimestamp' needs a time zone (e.g. 'Z').")
    return parsed


def _accepted_suggestions(item: Mapping, where: str) -> tuple[str, ...]:
    suggestions = item.get("acceptedSuggestions")
    if item.get("outcome") != "accepted":
        return ()
    if not isinstance(suggestions, list) or not suggestions:
        raise BadRequest(f"'{where}.acceptedSuggestions' is required when the outcome is 'accepted'.")
    if not all(isinstance(s, Mapping) and isinstance(s.get("id"), str) and s["id"] for s in suggestions):
        raise BadRequest(f"Each item of '{where}.acceptedSuggestions' must be an object with a string 'id'.")
    return tuple(s["id"] for s in suggestions)


def _override_reason(item: Mapping, where: str) -> tuple[Mapping | None, str | None]:
    override = item.get("overrideReason")
    if override is None:
        return None, None
    if not isinstance(override, Mapping):
        raise BadRequest(f"'{where}.overrideReason' must be an object.")
    reason, comment = override.get("reason"), override.get("userComment")
    if reason is not None and not (isinstance(reason, Mapping) and isinstance(reason.get("code"), str)
                                   and isinstance(reason.get("system"), str)):
        raise BadRequest(f"'{where}.overrideReason.reason' must be a Coding with 'system' and 'code'.")
    if comment is not None and not isinstance(comment, str):
        raise BadRequest(f"'{where}.overrideReason.userComment' must be a string.")
    return reason, comment


def parse_feedback(data: Mapping) -> tuple[Feedback, ...]:
    """The feedback items of a request body, or ``BadRequest`` naming the first bad field."""
    items = data.get("feedback")
    if not isinstance(items, list) or not items:
        raise BadRequest("Body must be {\"feedback\": [ ... ]} with at least one item.")
    parsed = []
    for index, item in enumerate(items):
        where = f"feedback[{index}]"
        if not isinstance(item, Mapping):
            raise BadRequest(f"'{where}' must be an object.")
        if not isinstance(item.get("card"), str) or not item["card"]:
            raise BadRequest(f"'{where}.card' is required: the uuid of the card.")
        if item.get("outcome") not in OUTCOMES:
            raise BadRequest(f"'{where}.outcome' must be 'accepted' or 'overridden'.")
        reason, comment = _override_reason(item, where)
        parsed.append(Feedback(
            card=item["card"],
            outcome=item["outcome"],
            accepted_suggestions=_accepted_suggestions(item, where),
            override_reason=reason,
            user_comment=comment,
            outcome_timestamp=_timestamp(item.get("outcomeTimestamp"), where),
        ))
    return tuple(parsed)

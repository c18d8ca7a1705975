"""CDS Hooks 2.0 feedback items, validated one by one: a bad item never costs the good ones.

``parse_feedback_items(body)`` returns the valid items and one ``FeedbackError`` per problem,
each naming the item (``feedback[2]``) and the field (``outcomeTimestamp``). The endpoint stores
the valid items and answers 400 listing the errors when there are any (the EHR's retry then
repeats the good items, which the store treats as duplicates).
"""

import dataclasses
import datetime
import hashlib
from collections.abc import Mapping
from typing import Any

OUTCOMES = ("accepted", "overridden")
MAX_ID_LENGTH = 128        # card and suggestion uuids (ours are 36 characters)
MAX_CODING_LENGTH = 255    # system, code and display of the override reason
MAX_COMMENT_LENGTH = 4000  # the clinician's free-text comment


@dataclasses.dataclass(frozen=True)
class FeedbackItem:
    card: str
    outcome: str
    outcome_timestamp: datetime.datetime  # aware, UTC
    accepted_suggestions: tuple[str, ...] = ()
    reason_system: str | None = None
    reason_code: str | None = None
    reason_display: str | None = None
    user_comment: str | None = None

    @property
    def dedupe_key(self) -> str:
        """The same item sent again (an EHR retry) has the same key; the comment is not part of it."""
        parts = (self.card, self.outcome, self.outcome_timestamp.astimezone(datetime.timezone.utc).isoformat(),
                 " ".join(sorted(set(self.accepted_suggestions))), self.reason_system or "", self.reason_code or "")
        return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


@dataclasses.dataclass(frozen=True)
class FeedbackError:
    index: int | None  # None: the body itself is wrong
    field: str         # e.g. "outcomeTimestamp", "overrideReason.reason.code"; "" for the item as a whole
    message: str

    @property
    def where(self) -> str:
        if self.index is None:
            return self.field
        return f"feedback[{self.index}]" + (f".{self.field}" if self.field else "")

    def as_dict(self) -> dict:
        return {"item": self.index, "field": self.field, "message": f"'{self.where}' {self.message}"}


def _text(value: Any, limit: int) -> str | None:
    """A non-empty string no longer than ``limit``, else None."""
    return value if isinstance(value, str) and value.strip() and len(value) <= limit else None


def _timestamp(value: Any) -> datetime.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.datetime.fromisoformat(value.strip().replace("z", "Z"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return None
    return parsed.astimezone(datetime.timezone.utc)


def _parse_item(index: int, item: Any) -> tuple[FeedbackItem | None, list[FeedbackError]]:
    errors: list[FeedbackError] = []

    def error(field: str, message: str) -> None:
        errors.append(FeedbackError(index, field, message))

    if not isinstance(item, Mapping):
        return None, [FeedbackError(index, "", "must be an object")]
    card = _text(item.get("card"), MAX_ID_LENGTH)
    if card is None:
        error("card", f"is required: the uuid of the card (a string of at most {MAX_ID_LENGTH} characters)")
    outcome = item.get("outcome")
    if outcome not in OUTCOMES:
        error("outcome", "must be 'accepted' or 'overridden'")
    timestamp = _timestamp(item.get("outcomeTimestamp"))
    if timestamp is None:
        error("outcomeTimestamp", "is required: an RFC 3339 date-time with a time zone, e.g. 2021-12-11T10:05:31Z")

    accepted: tuple[str, ...] = ()
    if outcome == "accepted":
        suggestions = item.get("acceptedSuggestions")
        if not isinstance(suggestions, list) or not suggestions:
            error("acceptedSuggestions", "is required when the outcome is 'accepted': [{\"id\": suggestion uuid}]")
        else:
            ids = [_text(s.get("id"), MAX_ID_LENGTH) if isinstance(s, Mapping) else None for s in suggestions]
            for position, suggestion_id in enumerate(ids):
                if suggestion_id is None:
                    error(f"acceptedSuggestions[{position}].id", "must be a suggestion uuid (a string)")
            accepted = tuple(dict.fromkeys(i for i in ids if i))

    system = code = display = comment = None
    override = item.get("overrideReason")
    if override is not None:
        if not isinstance(override, Mapping):
            error("overrideReason", "must be an object with 'reason' (a Coding) and/or 'userComment'")
        else:
            reason = override.get("reason")
            if reason is not None:
                if not isinstance(reason, Mapping):
                    error("overrideReason.reason", "must be a Coding with 'system' and 'code'")
                else:
                    system = _text(reason.get("system"), MAX_CODING_LENGTH)
                    code = _text(reason.get("code"), MAX_CODING_LENGTH)
                    if system is None:
                        error("overrideReason.reason.system", "is required in a Coding (a string)")
                    if code is None:
                        error("overrideReason.reason.code", "is required in a Coding (a string)")
                    raw_display = reason.get("display")
                    display = _text(raw_display, MAX_CODING_LENGTH)
                    if raw_display is not None and display is None and raw_display != "":
                        error("overrideReason.reason.display", f"must be a string of at most {MAX_CODING_LENGTH} "
                                                                "characters")
            raw_comment = override.get("userComment")
            if raw_comment is not None:
                if not isinstance(raw_comment, str) or len(raw_comment) > MAX_COMMENT_LENGTH:
                    error("overrideReason.userComment", f"must be a string of at most {MAX_COMMENT_LENGTH} characters")
                else:
                    comment = raw_comment or None

    if errors:
        return None, errors
    return FeedbackItem(card=card, outcome=outcome, outcome_timestamp=timestamp, accepted_suggestions=accepted,
                        reason_system=system, reason_code=code, reason_display=display, user_comment=comment), []


def parse_feedback_items(body: Any) -> tuple[list[FeedbackItem], list[FeedbackError]]:
    """The valid items of ``{"feedback": [...]}`` and an error for every problem in the others."""
    items = body.get("feedback") if isinstance(body, Mapping) else None
    if not isinstance(items, list) or not items:
        return [], [FeedbackError(None, "feedback", 'must be a non-empty array: {"feedback": [ ... ]}')]
    valid: list[FeedbackItem] = []
    errors: list[FeedbackError] = []
    for index, item in enumerate(items):
        parsed, item_errors = _parse_item(index, item)
        if parsed is not None:
            valid.append(parsed)
        errors.extend(item_errors)
    return valid, errors

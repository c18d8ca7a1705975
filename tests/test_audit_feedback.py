"""CDS Hooks feedback items validated one by one: errors name the item and the field; good items stay."""

import datetime

import pytest

from cds_service.audit import parse_feedback_items

UTC = datetime.timezone.utc


def accepted(card="card-1", suggestion="sugg-1", timestamp="2026-03-02T10:05:31Z"):
    return {"card": card, "outcome": "accepted", "acceptedSuggestions": [{"id": suggestion}],
            "outcomeTimestamp": timestamp}


def overridden(card="card-2", code="benefit-outweighs-risk", comment=None, timestamp="2026-03-02T10:05:31Z"):
    reason = {"reason": {"system": "https://example.org/override", "code": code}}
    if comment is not None:
        reason["userComment"] = comment
    return {"card": card, "outcome": "overridden", "overrideReason": reason, "outcomeTimestamp": timestamp}


def test_valid_items_are_parsed_with_utc_times():
    items, errors = parse_feedback_items({"feedback": [
        accepted(), overridden(comment="patient tolerated it before", timestamp="2026-03-02T11:05:31+01:00")]})
    assert errors == []
    first, second = items
    assert (first.card, first.outcome, first.accepted_suggestions) == ("card-1", "accepted", ("sugg-1",))
    assert first.outcome_timestamp == datetime.datetime(2026, 3, 2, 10, 5, 31, tzinfo=UTC)
    assert (second.reason_system, second.reason_code, second.reason_display) == (
        "https://example.org/override", "benefit-outweighs-risk", None)
    assert second.user_comment == "patient tolerated it before"
    assert second.outcome_timestamp == datetime.datetime(2026, 3, 2, 10, 5, 31, tzinfo=UTC)


def test_overridden_without_a_reason_is_valid():
    items, errors = parse_feedback_items({"feedback": [
        {"card": "c", "outcome": "overridden", "outcomeTimestamp": "2026-03-02T10:05:31Z"}]})
    assert errors == [] and items[0].reason_code is None


def test_a_malformed_item_is_named_and_the_others_are_kept():
    body = {"feedback": [accepted(card="good-1"),
                         {"card": "bad", "outcome": "accepted", "outcomeTimestamp": "2026-03-02T10:05:31Z"},
                         overridden(card="good-2")]}
    items, errors = parse_feedback_items(body)
    assert [item.card for item in items] == ["good-1", "good-2"]
    assert [(e.index, e.field) for e in errors] == [(1, "acceptedSuggestions")]
    assert errors[0].as_dict()["message"].startswith("'feedback[1].acceptedSuggestions' is required")


@pytest.mark.parametrize(("item", "field"), [
    ("not an object", ""),
    ({"outcome": "accepted", "acceptedSuggestions": [{"id": "s"}], "outcomeTimestamp": "2026-03-02T10:05:31Z"},
     "card"),
    ({"card": "", "outcome": "overridden", "outcomeTimestamp": "2026-03-02T10:05:31Z"}, "card"),
    ({"card": "c" * 129, "outcome": "overridden", "outcomeTimestamp": "2026-03-02T10:05:31Z"}, "card"),
    ({"card": "c", "outcome": "ignored", "outcomeTimestamp": "2026-03-02T10:05:31Z"}, "outcome"),
    ({"card": "c", "outcome": "overridden"}, "outcomeTimestamp"),
    ({"card": "c", "outcome": "overridden", "outcomeTimestamp": "2026-03-02T10:05:31"}, "outcomeTimestamp"),
    ({"card": "c", "outcome": "overridden", "outcomeTimestamp": "yesterday"}, "outcomeTimestamp"),
    ({"card": "c", "outcome": "overridden", "outcomeTimestamp": 1700000000}, "outcomeTimestamp"),
    ({"card": "c", "outcome": "accepted", "acceptedSuggestions": [], "outcomeTimestamp": "2026-03-02T10:05:31Z"},
     "acceptedSuggestions"),
    ({"card": "c", "outcome": "accepted", "acceptedSuggestions": [{"id": "a"}, {"uuid": "b"}],
      "outcomeTimestamp": "2026-03-02T10:05:31Z"}, "acceptedSuggestions[1].id"),
    ({"card": "c", "outcome": "overridden", "overrideReason": "no", "outcomeTimestamp": "2026-03-02T10:05:31Z"},
     "overrideReason"),
    ({"card": "c", "outcome": "overridden", "overrideReason": {"reason": {"code": "x"}},
      "outcomeTimestamp": "2026-03-02T10:05:31Z"}, "overrideReason.reason.system"),
    ({"card": "c", "outcome": "overridden", "overrideReason": {"reason": {"system": "s", "code": 3}},
      "outcomeTimestamp": "2026-03-02T10:05:31Z"}, "overrideReason.reason.code"),
    ({"card": "c", "outcome": "overridden", "overrideReason": {"userComment": 7},
      "outcomeTimestamp": "2026-03-02T10:05:31Z"}, "overrideReason.userComment"),
    ({"card": "c", "outcome": "overridden", "overrideReason": {"userComment": "x" * 4001},
      "outcomeTimestamp": "2026-03-02T10:05:31Z"}, "overrideReason.userComment"),
])
def test_each_malformed_field_is_named(item, field):
    items, errors = parse_feedback_items({"feedback": [accepted(card="keep"), item]})
    assert [i.card for i in items] == ["keep"]
    assert [(e.index, e.field) for e in errors] == [(1, field)]
    assert errors[0].where == ("feedback[1]" + (f".{field}" if field else ""))


def test_every_problem_of_an_item_is_reported():
    _, errors = parse_feedback_items({"feedback": [{"outcome": "maybe"}]})
    assert {e.field for e in errors} == {"card", "outcome", "outcomeTimestamp"}


@pytest.mark.parametrize("body", [{}, {"feedback": []}, {"feedback": {"card": "c"}}, [], "text", None])
def test_a_body_without_a_feedback_array_is_one_error(body):
    items, errors = parse_feedback_items(body)
    assert items == [] and [(e.index, e.field) for e in errors] == [(None, "feedback")]


def test_a_repeat_has_the_same_key_whatever_the_comment_or_zone_spelling():
    (a,), _ = parse_feedback_items({"feedback": [overridden(comment="first", timestamp="2026-03-02T10:05:31Z")]})
    (b,), _ = parse_feedback_items({"feedback": [overridden(comment="again", timestamp="2026-03-02T10:05:31+00:00")]})
    (c,), _ = parse_feedback_items({"feedback": [overridden(code="other", timestamp="2026-03-02T10:05:31Z")]})
    (d,), _ = parse_feedback_items({"feedback": [overridden(timestamp="2026-03-02T10:05:32Z")]})
    assert a.dedupe_key == b.dedupe_key
    assert len({a.dedupe_key, c.dedupe_key, d.dedupe_key}) == 3

"""One reusable check of a CDS Hooks 2.0 service response, applied to every response the tests get."""

import importlib
import uuid

from cds_service.contract import TOPIC_SYSTEM
from cds_service.contract import TOPICS

INDICATORS = {"info", "warning", "critical"}


def _assert_no_empty_values(value, path="response"):
    assert value is not None, f"{path} is null"
    if isinstance(value, dict):
        assert value, f"{path} is an empty object"
        for key, item in value.items():
            _assert_no_empty_values(item, f"{path}.{key}")
    elif isinstance(value, list):
        assert value or path == "response.cards", f"{path} is an empty array"
        for index, item in enumerate(value):
            _assert_no_empty_values(item, f"{path}[{index}]")
    elif isinstance(value, str):
        assert value.strip(), f"{path} is an empty string"


def assert_valid_r4(resource: dict) -> None:
    """The resource validates against the fhir.resources R4B model of its type."""
    resource_type = resource["resourceType"]
    module = importlib.import_module(f"fhir.resources.R4B.{resource_type.lower()}")
    getattr(module, resource_type).model_validate(resource)


def _assert_uuid(value, what):
    assert isinstance(value, str) and str(uuid.UUID(value)) == value, f"{what} is not a bare uuid: {value!r}"


def _assert_action(action, where):
    assert action["type"] in {"create", "update", "delete"}, where
    assert isinstance(action.get("description"), str), f"{where} has no description"
    if action["type"] == "delete":
        assert "resource" not in action and "/" in action["resourceId"], f"{where}: delete needs resourceId only"
    else:
        assert_valid_r4(action["resource"])


def assert_conformant_card(card: dict) -> None:
    _assert_uuid(card.get("uuid"), "card.uuid")
    summary = card["summary"]
    assert isinstance(summary, str) and 0 < len(summary) < 140, f"summary length {len(summary)}: {summary}"
    assert card["indicator"] in INDICATORS
    source = card["source"]
    assert isinstance(source["label"], str)
    assert source["topic"]["system"] == TOPIC_SYSTEM and source["topic"]["code"] in TOPICS
    suggestions = card.get("suggestions", [])
    if suggestions:
        assert card["selectionBehavior"] in {"at-most-one", "any"}
    for suggestion in suggestions:
        _assert_uuid(suggestion.get("uuid"), "suggestion.uuid")
        assert isinstance(suggestion["label"], str)
        for action in suggestion.get("actions", []):
            _assert_action(action, f"suggestion {suggestion['label']!r}")
    for reason in card.get("overrideReasons", []):
        assert reason["code"] and reason["system"] and reason["display"]
    if card["indicator"] in {"warning", "critical"}:
        assert card.get("overrideReasons"), "warning and critical cards offer override reasons"
    for link in card.get("links", []):
        assert link["label"] and link["url"].startswith("http") and link["type"] in {"absolute", "smart"}


def assert_conformant_response(body: dict) -> None:
    """CDS Hooks 2.0 response rules, for every card."""
    assert isinstance(body, dict) and isinstance(body.get("cards"), list), body
    _assert_no_empty_values(body)
    for card in body["cards"]:
        assert_conformant_card(card)

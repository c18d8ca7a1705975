"""Every patient scenario in fixtures/scenarios/, through the HTTP endpoint, against the cards a pharmacist expects."""

import dataclasses
from collections import Counter
from pathlib import Path

import pytest

from cds_service import create_app
from cds_service.scenario import Scenario
from cds_service.scenario import load_scenario

FIXTURES_SCENARIOS = Path(__file__).parent.parent / "fixtures" / "scenarios"
SCENARIOS = sorted(FIXTURES_SCENARIOS.glob("*.json"))


def app_at(now):
    return create_app({"require_jwt": False}, clock=lambda: now)


def card_actions(card: dict) -> list[str]:
    return [action["type"] + (f":{action['resource']['resourceType']}" if action["type"] == "create" else "")
            for suggestion in card.get("suggestions", []) for action in suggestion["actions"]]


def run_scenario(scenario: Scenario, request: dict | None = None) -> list[dict]:
    if request is not None:
        scenario = dataclasses.replace(scenario, request=request)
    response = app_at(scenario.now).test_client().post(f"/cds-services/{scenario.service}", json=scenario.request)
    assert response.status_code == 200, response.get_json()
    return response.get_json()["cards"]


def assert_expected_cards(cards: list[dict], expected: list[dict]) -> None:
    got = Counter((card["source"]["topic"]["code"], card["indicator"]) for card in cards)
    want = Counter((card["topic"], card["indicator"]) for card in expected)
    summaries = [f"{c['indicator']} {c['source']['topic']['code']}: {c['summary']}" for c in cards]
    assert got == want, "\n".join(summaries)
    by_topic = {card["source"]["topic"]["code"]: card for card in cards}
    for card in expected:
        actual = by_topic[card["topic"]]
        if "actions" in card:
            assert card_actions(actual) == card["actions"], (card["topic"], card_actions(actual))
        if "summaryContains" in card:
            assert card["summaryContains"] in actual["summary"]
        detail_words = card.get("detailContains", [])
        for words in [detail_words] if isinstance(detail_words, str) else detail_words:
            assert words in actual["detail"], (card["topic"], words)


def test_there_are_at_least_30_scenarios():
    assert len(SCENARIOS) >= 30


@pytest.mark.parametrize("path", SCENARIOS, ids=[path.stem for path in SCENARIOS])
def test_scenario(path):
    scenario = load_scenario(path)
    assert_expected_cards(run_scenario(scenario), scenario.expected)

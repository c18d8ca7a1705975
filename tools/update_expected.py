"""Rewrite a scenario's ``expected`` cards with what the service answers now, for a reviewed change.

    .venv/bin/python tools/update_expected.py fixtures/scenarios/05-*.json

For each file whose cards differ from its ``expected`` list (topic, indicator, the actions where the
list named them), prints the old and new cards and rewrites the list, keeping ``summaryContains`` and
``detailContains`` that still hold. Review the diff: an expected list is a pharmacist's judgment.
"""

import json
import sys
from pathlib import Path

from cds_service.cli import make_evaluator
from cds_service.scenario import load_scenario


def actions(card: dict) -> list[str]:
    return [a["type"] + (f":{a['resource']['resourceType']}" if a["type"] == "create" else "")
            for s in card.get("suggestions", []) for a in s["actions"]]


def updated(expected: list[dict], cards: list[dict]) -> list[dict] | None:
    got = {(c["source"]["topic"]["code"], c["indicator"]) for c in cards}
    by_topic = {c["source"]["topic"]["code"]: c for c in cards}
    same = got == {(e["topic"], e["indicator"]) for e in expected} and len(cards) == len(expected) and all(
        ("actions" not in e or actions(by_topic[e["topic"]]) == e["actions"])
        and e.get("summaryContains", "") in by_topic[e["topic"]]["summary"]
        and e.get("detailContains", "") in by_topic[e["topic"]]["detail"] for e in expected)
    if same:
        return None
    old = {e["topic"]: e for e in expected}
    new = []
    for card in cards:
        topic = card["source"]["topic"]["code"]
        entry = {"topic": topic, "indicator": card["indicator"]}
        if "actions" in old.get(topic, {}) or card.get("suggestions"):
            entry["actions"] = actions(card)
        for key, field in (("summaryContains", "summary"), ("detailContains", "detail")):
            if old.get(topic, {}).get(key, "\0") in card[field]:
                entry[key] = old[topic][key]
        new.append(entry)
    return new


def main(paths: list[str]) -> int:
    evaluate = make_evaluator()
    for path in map(Path, paths):
        data = json.loads(path.read_text())
        scenario = load_scenario(path)
        cards = evaluate(scenario.request, scenario.now)["cards"]
        new = updated(data["expected"], cards)
        if new is None:
            continue
        print(f"{path.name}:\n  was {[(e['topic'], e['indicator']) for e in data['expected']]}\n"
              f"  now {[(e['topic'], e['indicator']) for e in new]}")
        data["expected"] = new
        path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""How the answer reads as a whole, over every scenario fixture: the figures issue 10 asks for.

    .venv/bin/python tools/card_stats.py

Prints the mean number of cards per response, the share of responses with 4 or more cards, the
responses that offer both to cancel a draft and to change or keep it, the cards that repeat a line
another card of the same response already says, and whether every warning and critical finding
the rules made is on a card.
"""

import sys
from pathlib import Path

from cds_service import create_app
from cds_service.cards import cards_for
from cds_service.fhir.dates import shown_in
from cds_service.http.components import components
from cds_service.request.envelope import parse_envelope
from cds_service.scenario import load_scenario

SCENARIOS = Path(__file__).resolve().parent.parent / "fixtures" / "scenarios"


def detail_lines(card: dict) -> list[str]:
    """The lines of a card's detail that carry content (not the label/footer lines every card has)."""
    return [line.strip() for line in card.get("detail", "").splitlines()
            if line.strip() and not line.startswith(("**Label:**", "_Knowledge"))]


def contradictions(cards: list[dict]) -> int:
    """Drafts that one card cancels while another card offers to change them."""
    actions = [(action["type"], action.get("resourceId") or (action.get("resource") or {}).get("id"))
               for card in cards for suggestion in card.get("suggestions", []) for action in suggestion["actions"]]
    cancelled = {target.split("/")[-1] for kind, target in actions if kind == "delete" and target}
    changed = {target for kind, target in actions if kind == "update" and target}
    return len(cancelled & changed)


def repeats(cards: list[dict]) -> int:
    """Cards with a line that an earlier card of the response, or the same card, already says."""
    seen, count = set(), 0
    for card in cards:
        lines = detail_lines(card)
        if len(set(lines)) < len(lines) or seen & set(lines):
            count += 1
        seen |= set(lines)
    return count


def rule_ids_on(cards: list[dict]) -> set[str]:
    return {rule_id for card in cards for line in card["detail"].splitlines() if " · rules " in line
            for rule_id in line.rsplit(" · rules ", 1)[1].rstrip("_").split(", ")}


def main() -> int:
    moment = [None]
    check = components(create_app({"require_jwt": False, "log_level": "ERROR"}, clock=lambda: moment[0])).check
    responses, urgent, urgent_shown = {}, 0, 0
    for path in sorted(SCENARIOS.glob("*.json")):
        scenario = load_scenario(path)
        moment[0] = scenario.now
        envelope = parse_envelope(scenario.request, expected_hook=scenario.request["hook"])
        with shown_in(check.time_zone):
            orders, findings = check.findings(envelope)
            cards = cards_for(findings, [o.reference for o in orders if o.has_id], check.policy, envelope.hook).cards
        responses[path.stem] = cards
        must_show = {finding.rule_id for finding in findings if finding.indicator != "info"}
        urgent += len(must_show)
        urgent_shown += len(must_show & rule_ids_on(cards))
    counts = [len(cards) for cards in responses.values()]
    many = [name for name, cards in responses.items() if len(cards) >= 4]
    contradicting = [name for name, cards in responses.items() if contradictions(cards)]
    repeating = sum(repeats(cards) for cards in responses.values())
    print(f"scenarios: {len(counts)}")
    print(f"mean cards per response: {sum(counts) / len(counts):.2f}")
    print(f"responses with 4 or more cards: {len(many)} ({100 * len(many) / len(counts):.1f}%) {' '.join(many)}")
    print(f"responses offering to cancel and to change one draft: {len(contradicting)} {' '.join(contradicting)}")
    print(f"cards repeating a line: {repeating}")
    print(f"warning and critical findings shown on a card: {urgent_shown} of {urgent}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Composition: the findings of one request as one coherent answer (issue 10), table-driven, then over
every scenario fixture: no contradiction, nothing said twice, every warning and critical finding shown."""

import sys
import zoneinfo
from pathlib import Path

import pytest
from builders import POLICY

from cds_service import create_app
from cds_service.cards import cards_for
from cds_service.cards.compose import compose
from cds_service.findings import Action
from cds_service.findings import Finding
from cds_service.findings import Suggestion
from cds_service.http.components import components
from cds_service.request.envelope import parse_envelope
from cds_service.rules.registry import ROUTINE_NOTICES
from cds_service.scenario import load_scenario

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
import card_stats  # noqa: E402

DRAFT = "MedicationRequest/draft-1"
CANCEL = Suggestion("Cancel the milnacipran order", (Action("delete", "Remove", resource_id=DRAFT),))
CHANGE = Suggestion("Change to 25 mg twice a day", (Action("update", "Change", resource={
    "resourceType": "MedicationRequest", "id": "draft-1"}),), is_recommended=True)
PACK = Suggestion("Switch to the titration pack", (Action("update", "Switch", resource={
    "resourceType": "MedicationRequest", "id": "draft-1"}),))
REMOVE_OTHER = Suggestion("Remove the other draft", (Action("delete", "Remove", resource_id="MedicationRequest/other"),))
ORDER_LAB = Suggestion("Order a serum creatinine", (Action("create", "Order", resource={"resourceType": "ServiceRequest"}),))


def finding(rule_id, topic, indicator="warning", suggestions=(), detail=None, brief=""):
    return Finding(indicator, f"Summary of {rule_id}.", detail or f"Numbers of {rule_id}.", "label", suggestions,
                   topic=topic, rule_id=rule_id, brief=brief)


def plans(*findings, routine="all", hook="order-sign"):
    return compose(list(findings), [DRAFT], ROUTINE_NOTICES, routine, hook)


def test_cards_come_critical_then_warning_then_info_and_a_fix_first_within_a_level():
    composed = plans(finding("S2", "serotonin-syndrome"), finding("B1", "bleeding-risk"),
                     finding("R4", "renal-function", suggestions=(CHANGE,)), finding("H1", "hepatic", "info"),
                     finding("V3", "blood-pressure-heart-rate", "critical"))
    assert [plan.topic for plan in composed] == [
        "blood-pressure-heart-rate", "renal-function", "serotonin-syndrome", "bleeding-risk", "hepatic"]


def test_a_cancelled_draft_is_offered_no_change_but_the_other_findings_still_show():
    composed = plans(finding("M1", "maoi-contraindication", "critical", (CANCEL,)),
                     finding("R4", "renal-function", suggestions=(CHANGE, ORDER_LAB)),
                     finding("D5", "duplicate-therapy", suggestions=(REMOVE_OTHER,)),
                     finding("D2", "dose-titration", "info", (PACK,)),
                     finding("D3", "dose-titration", "info", (PACK,), brief="titrate"))
    by_topic = {plan.topic: plan for plan in composed}
    assert set(by_topic) == {"maoi-contraindication", "renal-function", "duplicate-therapy", "dose-titration"}
    assert by_topic["maoi-contraindication"].suggestions == (CANCEL,) and by_topic["maoi-contraindication"].cancels_order
    assert by_topic["renal-function"].suggestions == (ORDER_LAB,)       # the lab, not the dose change
    assert by_topic["duplicate-therapy"].suggestions == (REMOVE_OTHER,)  # another draft: still removable
    assert by_topic["dose-titration"].suggestions == ()
    # the order is cancelled: there is no start to give routine notice of
    assert [f.rule_id for f in by_topic["dose-titration"].findings] == ["D2"]


def test_one_card_per_topic_carries_every_finding_most_severe_first_each_line_once():
    shared = "- Estimated CrCl **24 mL/min** (Cockcroft-Gault)"
    [plan] = plans(finding("R7", "renal-function", "info", detail=f"Stale creatinine.\n\n{shared}"),
                   finding("R4", "renal-function", suggestions=(CHANGE,), detail=f"Ordered 200 mg/day.\n\n{shared}"))
    assert [f.rule_id for f in plan.findings] == ["R4", "R7"] and plan.summary == "Summary of R4."
    assert plan.suggestions == (CHANGE,)
    [card] = cards_for(list(plan.findings), [DRAFT], POLICY, "order-sign").cards
    assert card["detail"].count(shared) == 1
    assert card["summary"] == "Summary of R4." and "**Summary of R4.**" not in card["detail"]  # not said twice
    assert "**Summary of R7.**" in card["detail"]
    assert "Stale creatinine." in card["detail"] and "Ordered 200 mg/day." in card["detail"]


@pytest.mark.parametrize("notices, topic, summary", [
    (("D3", "SU1", "A3"), "dose-titration",
     "Starting milnacipran: titrate from 12.5 mg; watch for suicidality (boxed warning); hyponatremia likelier at 70."),
    (("SU1", "A2"), "suicidality", "Starting milnacipran: watch for suicidality (boxed warning); higher risk at 22 (under 25)."),
    (("A3",), "age", "Summary of A3."),  # one notice alone (e.g. on a renewal) keeps its own summary
])
def test_the_routine_notices_of_a_new_start_are_one_starting_milnacipran_card(notices, topic, summary):
    briefs = {"D3": "titrate from 12.5 mg", "SU1": "watch for suicidality (boxed warning)",
              "A2": "higher risk at 22 (under 25)", "A3": "hyponatremia likelier at 70"}
    topics = {"D3": "dose-titration", "SU1": "suicidality", "A2": "age", "A3": "age"}
    findings = [finding(n, topics[n], "info", (PACK,) if n == "D3" else (), brief=briefs[n]) for n in reversed(notices)]
    [plan] = plans(*findings, finding("S2", "serotonin-syndrome"))[1:]
    assert (plan.topic, plan.summary) == (topic, summary) and len(plan.summary) < 140
    assert plan.rule_ids == notices
    assert plan.suggestions == ((PACK,) if "D3" in notices else ())


def test_a_warning_is_never_folded_into_the_routine_card():
    composed = plans(finding("A1", "age", "warning"), finding("SU1", "suicidality", "info", brief="watch"))
    assert [(plan.topic, plan.lead.rule_id) for plan in composed] == [("age", "A1"), ("suicidality", "SU1")]


@pytest.mark.parametrize("routine, hook, shown", [
    ("all", "order-sign", True), ("order-select", "order-select", True), ("order-select", "order-sign", False),
    ("off", "order-select", False),
])
def test_the_site_decides_where_the_routine_notices_show(routine, hook, shown):
    composed = plans(finding("SU1", "suicidality", "info", brief="watch"), finding("S2", "serotonin-syndrome"),
                     routine=routine, hook=hook)
    assert [plan.topic for plan in composed] == ["serotonin-syndrome"] + (["suicidality"] if shown else [])


def test_a_line_said_by_an_earlier_card_is_not_said_again():
    line = "- **sertraline** — sertraline (MedicationRequest, active)"
    composed = plans(finding("S2", "serotonin-syndrome", detail=f"Serotonergic.\n\n{line}"),
                     finding("B2", "bleeding-risk", detail=f"Bleeding.\n\n{line}"))
    assert line in composed[0].findings[0].detail and line not in composed[1].findings[0].detail


SCENARIOS = sorted((Path(__file__).resolve().parent.parent / "fixtures" / "scenarios").glob("*.json"))


def test_over_every_scenario_no_contradiction_no_repeat_and_every_warning_shown():
    moment = [None]
    check = components(create_app({"require_jwt": False}, clock=lambda: moment[0])).check
    for path in SCENARIOS:
        scenario = load_scenario(path)
        moment[0] = scenario.now
        envelope = parse_envelope(scenario.request, expected_hook=scenario.request["hook"])
        orders, findings = check.findings(envelope)
        cards = cards_for(findings, [o.reference for o in orders if o.has_id], check.policy, envelope.hook).cards
        assert card_stats.contradictions(cards) == 0, path.stem
        assert card_stats.repeats(cards) == 0, path.stem
        urgent = {f.rule_id for f in findings if f.indicator != "info"}
        assert urgent <= card_stats.rule_ids_on(cards), (path.stem, urgent - card_stats.rule_ids_on(cards))
        assert not any(card["summary"].endswith("…") for card in cards), path.stem  # no summary cut to fit


def test_times_are_shown_in_the_site_zone_and_a_running_course_is_not_called_stopped():
    scenario = load_scenario(next(p for p in SCENARIOS if p.stem.startswith("92-")))
    app = create_app({"require_jwt": False, "time_zone": zoneinfo.ZoneInfo("America/Chicago")},
                     clock=lambda: scenario.now)
    [card] = app.test_client().post("/cds-services/milnacipran-order-sign", json=scenario.request).get_json()["cards"]
    assert "course running until 2026-11-22" in card["detail"] and "stopped 2026-11-22" not in card["detail"]
    assert "24-hour window ends **2026-11-23 09:00 America/Chicago**" in card["detail"]


def test_removing_one_duplicate_draft_is_not_cancelling_the_order():
    other = "MedicationRequest/draft-2"
    remove = Suggestion("Remove the other milnacipran draft", (Action("delete", "Remove", resource_id=other),))
    composed = compose([finding("D5", "duplicate-therapy", suggestions=(remove,)),
                        finding("R4", "renal-function", suggestions=(CHANGE,))], [DRAFT, other], ROUTINE_NOTICES)
    by_topic = {plan.topic: plan for plan in composed}
    assert not by_topic["duplicate-therapy"].cancels_order       # it offers the duplicate topic's override reasons
    assert by_topic["renal-function"].suggestions == (CHANGE,)   # the kept draft may still be changed

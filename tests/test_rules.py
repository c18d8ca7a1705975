"""Each rule's thresholds at and around their boundaries, table-driven, calling the rules directly."""


import datetime

import pytest
from builders import NOW
from builders import POLICY
from builders import bp
from builders import condition
from builders import days_ago
from builders import draft_resource
from builders import hr
from builders import orders
from builders import renal
from builders import run_rules
from builders import snapshot
from builders import use
from conformance import assert_valid_r4

from cds_service.chart.source import Unavailable
from cds_service.rules import age as age_rules
from cds_service.rules import bleeding_risk
from cds_service.rules import blood_pressure
from cds_service.rules import cardiovascular_drugs
from cds_service.rules import data_availability
from cds_service.rules import dose_titration
from cds_service.rules import duplicate_therapy
from cds_service.rules import hepatic
from cds_service.rules import hyponatremia
from cds_service.rules import maoi_washout
from cds_service.rules import pregnancy_lactation
from cds_service.rules import renal_function
from cds_service.rules import serotonergic_drugs
from cds_service.rules import suicidality
from cds_service.rules.engine import evaluate_rules
from cds_service.rules.registry import RULES
from cds_service.snapshot.labs_and_vitals import HcgResult
from cds_service.snapshot.labs_and_vitals import Measurement


def fired(findings):
    return [(f.rule_id, f.indicator) for f in findings]


def all_fired(**snapshot_fields):
    return fired(evaluate_rules(orders(), snapshot(**snapshot_fields), POLICY))


# --- the engine ------------------------------------------------------------------------------

def test_a_healthy_adult_gets_no_warning_or_critical_card():
    assert all_fired() == [("D3", "info"), ("SU1", "info")]  # new start at 100 mg/day without titration
    assert fired(evaluate_rules(orders(draft_resource(25, 2)), snapshot(), POLICY)) == [("SU1", "info")]


def test_rules_are_pure_functions_without_io_flask_or_clock():
    import ast
    import inspect

    for rule in RULES:
        source = inspect.getsource(inspect.getmodule(rule.check))
        imported = {alias.name for node in ast.walk(ast.parse(source)) if isinstance(node, (ast.Import, ast.ImportFrom))
                    for alias in node.names} | {node.module for node in ast.walk(ast.parse(source))
                                                if isinstance(node, ast.ImportFrom) and node.module}
        assert not imported & {"flask", "requests", "socket", "time", "os", "pathlib"}, rule.name
        assert "datetime.now" not in source and "utcnow" not in source


# --- renal function --------------------------------------------------------------------------

@pytest.mark.parametrize("crcl, mg, per_day, expected", [
    (60, 100, 2, []),                               # R1: no card
    (50, 100, 2, []),                               # boundary: 50 is mild
    (49.9, 100, 2, [("R2", "info")]),
    (30, 50, 2, [("R2", "info")]),                  # 30 is moderate
    (29.9, 100, 2, [("R4", "warning")]),            # 200 mg/day > 100
    (29.9, 50, 2, [("R4b", "info")]),               # 100 mg/day = ceiling, not above; new start: begin at 50
    (29.9, 25, 2, [("R3", "info")]),                # 50 mg/day fits
    (20, 25, 2, [("R3", "info")]),                  # 50 mg/day
    (20, 37.5, 2, [("R4b", "info")]),               # 75 mg/day on a new start
    (20, None, 2, [("R3", "info")]),                # no dose: states the ceiling
    (5, 25, 2, [("R3", "info")]),                   # 5 is severe, not ESRD
    (4.9, 50, 2, [("R5", "critical")]),
])
def test_renal_bands_and_dose_ceiling(crcl, mg, per_day, expected):
    draft = orders(draft_resource(mg, per_day, tablet_mg=50 if mg in (None, 37.5) else None))
    findings = run_rules(renal_function, draft, snapshot(renal=renal(crcl)))
    assert fired(findings) == expected


ON_MILNACIPRAN = (use("milnacipran", start=days_ago(200)),)


@pytest.mark.parametrize("medications, steps, recommended", [
    ((), [[12.5, 12.5, 25], [25], [50]], 0),             # new start: titrate up to the renal starting dose first
    (ON_MILNACIPRAN, [[25], [50]], 0),                   # already on it: 25 mg twice a day first
])
def test_severe_renal_overdose_suggests_valid_updates_with_the_right_one_recommended(medications, steps, recommended):
    draft = orders(draft_resource(100, 2))
    [finding] = renal_function.renal_dose_ceiling(draft, snapshot(renal=renal(20), medications=medications), POLICY)
    updates = [s.actions[0] for s in finding.suggestions]
    assert [a.type for a in updates] == ["update"] * len(steps)
    assert [[i["doseAndRate"][0]["doseQuantity"]["value"] for i in a.resource["dosageInstruction"]]
            for a in updates] == steps
    for action in updates:
        assert action.resource["id"] == "draft-1"
        assert_valid_r4(action.resource)
    assert [s.is_recommended for s in finding.suggestions] == [i == recommended for i in range(len(steps))]
    assert draft[0].resource["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["value"] == 100  # untouched


def test_a_new_start_in_severe_renal_impairment_titrates_from_12_5_mg_to_the_renal_starting_dose():
    [finding] = renal_function.renal_dose_ceiling(orders(draft_resource(50, 2)), snapshot(renal=renal(20)), POLICY)
    assert finding.rule_id == "R4b" and finding.summary.startswith("100 mg/day ordered; renal maximum to start is 50")
    titration = finding.suggestions[0]
    assert titration.is_recommended and titration.label == "Titrate from 12.5 mg up to 25 mg twice a day"
    sig = titration.actions[0].resource["dosageInstruction"]
    assert [(i["text"], i["timing"]["repeat"].get("boundsDuration", {}).get("value")) for i in sig] == [
        ("Day 1: 12.5 mg once a day", 1), ("Days 2-3: 12.5 mg twice a day", 2), ("Day 4 onward: 25 mg twice a day", None)]
    assert titration.actions[0].resource["medicationCodeableConcept"]["coding"][0]["code"] == "833141"  # 12.5 mg tablet


@pytest.mark.parametrize("categories", [("esrd",), ("dialysis",)])
def test_esrd_or_dialysis_on_the_problem_list_is_critical_whatever_the_labs(categories):
    findings = renal_function.end_stage_renal_disease(
        orders(), snapshot(renal=renal(80), conditions=tuple(condition(c) for c in categories)), POLICY)
    assert fired(findings) == [("R5", "critical")]
    assert findings[0].suggestions[0].actions[0].resource_id == "MedicationRequest/draft-1"


def test_a_draft_without_an_id_gets_the_card_but_no_suggestion_naming_a_made_up_id():
    resource = draft_resource()
    del resource["id"]
    findings = renal_function.end_stage_renal_disease(orders(resource), snapshot(conditions=(condition("esrd"),)), POLICY)
    assert fired(findings) == [("R5", "critical")] and findings[0].suggestions == ()


@pytest.mark.parametrize("age, conditions, expected", [
    (45, (), "info"), (64, (), "info"), (65, (), "warning"), (45, ("ckd",), "warning"), (45, ("ckd_stage_4",), "warning"),
])
def test_missing_renal_data_escalates_for_elderly_or_ckd(age, conditions, expected):
    findings = run_rules(renal_function, orders(),
                         snapshot(age=age, renal=renal(None), conditions=tuple(condition(c) for c in conditions)))
    assert fired(findings) == [("R6", expected)]
    [finding] = findings
    [action] = finding.suggestions[0].actions
    assert action.type == "create" and action.resource["code"]["coding"][0]["code"] == "2160-0"
    assert_valid_r4(action.resource)


@pytest.mark.parametrize("stale, unstable, expected", [(False, False, []), (True, False, [("R7", "info")]),
                                                       (False, True, [("R7", "info")])])
def test_stale_or_unstable_creatinine(stale, unstable, expected):
    estimate = renal(80, stale=stale, unstable=unstable, measured_at=days_ago(200 if stale else 1))
    assert fired(renal_function.stale_or_unstable_renal_data(orders(), snapshot(renal=estimate), POLICY)) == expected


# --- MAOIs -----------------------------------------------------------------------------------

@pytest.mark.parametrize("medication, expected", [
    (use("phenelzine"), [("M1", "critical")]),
    (use("tranylcypromine", "stopped", stopped_at=days_ago(13.9)), [("M1", "critical")]),
    (use("tranylcypromine", "stopped", stopped_at=days_ago(14.1)), []),
    (use("isocarboxazid", "stopped", recorded=days_ago(5)), [("M1", "critical")]),     # no stop date, recent
    (use("isocarboxazid", "stopped", recorded=days_ago(60)), [("M1u", "warning")]),    # no stop date, old
    (use("selegiline", route="transdermal"), [("M1", "critical")]),
    (use("selegiline", route="topical", product_route="transdermal"), [("M1", "critical")]),   # product wins
    (use("selegiline"), [("M1", "critical")]),                                                # route unknown
    (use("selegiline", route="oral"), [("M4", "warning")]),
    (use("selegiline", product_route="oral"), [("M4", "warning")]),
    (use("rasagiline"), [("M4", "warning")]),
    (use("linezolid"), [("M2", "critical")]),
    (use("linezolid", "stopped", stopped_at=days_ago(0.9)), [("M2", "critical")]),
    (use("linezolid", "stopped", stopped_at=days_ago(1.1)), []),
    (use("methylene blue", "stopped", product_route="injectable", stopped_at=days_ago(0.5)), [("M3", "critical")]),
    (use("methylene blue", route="intravenous"), [("M3", "critical")]),
    (use("methylene blue"), [("M3", "critical")]),                                            # route unknown
    (use("methylene blue", route="subcutaneous", product_route="injectable"), [("M3o", "info")]),
    (use("methylene blue", route="oral"), [("M3o", "info")]),
    (use("methylene blue", product_route="oral"), [("M3o", "info")]),
])
def test_maoi_washouts(medication, expected):
    findings = run_rules(maoi_washout, orders(), snapshot(medications=(medication,)))
    assert fired(findings) == expected


@pytest.mark.parametrize("medication, summary", [
    (use("phenelzine"), "Phenelzine (an MAOI) is active: milnacipran is contraindicated. Cancel this order."),
    (use("phenelzine", "stopped", stopped_at=NOW - datetime.timedelta(days=5)),
     "Phenelzine last taken 2026-11-15 15:00 UTC: no milnacipran before 2026-11-29 15:00 UTC. Cancel this order."),
    (use("linezolid", "stopped", stopped_at=NOW + datetime.timedelta(days=2)),
     "Linezolid course runs until 2026-11-22: no milnacipran before 2026-11-23 15:00 UTC. Cancel this order."),
    (use("linezolid"), "Linezolid is being given: do not start milnacipran. Cancel this order."),
    (use("rasagiline"), "Rasagiline (an MAO inhibitor) is active: serotonin syndrome risk. Avoid or monitor closely."),
])
def test_a_contraindication_summary_names_the_drug_and_when_milnacipran_may_start(medication, summary):
    [finding] = run_rules(maoi_washout, orders(), snapshot(medications=(medication,)))
    assert finding.summary == summary


def test_washout_end_is_stated_with_date_and_time():
    stopped = use("phenelzine", "stopped", stopped_at=days_ago(3))
    [finding] = maoi_washout.psychiatric_maoi(orders(), snapshot(medications=(stopped,)), POLICY)
    assert "washout ends **2026-12-01 15:00 UTC**" in finding.detail


# --- serotonergic, bleeding, cardiovascular ----------------------------------------------------

@pytest.mark.parametrize("medications, expected", [
    ((use("sertraline"),), [("S2", "warning")]),
    ((use("tramadol"), use("sumatriptan")), [("S1", "warning")]),
    ((use("tapentadol"),), [("S3", "warning")]),
    ((use("clomipramine"),), [("S4", "warning")]),
    ((use("st john's wort"),), [("S1", "warning")]),
    ((use("sertraline", "stopped", stopped_at=days_ago(3)),), []),
    ((use("fluoxetine", "stopped", stopped_at=days_ago(20)),), [("S5", "info")]),
    ((use("fluoxetine", "stopped", stopped_at=days_ago(40)),), []),
])
def test_serotonergic_drugs(medications, expected):
    findings = run_rules(serotonergic_drugs, orders(), snapshot(medications=medications))
    assert fired(findings) == expected


def test_all_serotonergic_drugs_go_on_one_finding():
    meds = (use("sertraline"), use("tramadol"), use("lithium carbonate"), use("sumatriptan"), use("buspirone"))
    [finding] = serotonergic_drugs.serotonergic_co_medication(orders(), snapshot(medications=meds), POLICY)
    assert all(name in finding.detail for name in ("sertraline", "tramadol", "lithium carbonate", "sumatriptan"))
    assert len(finding.summary) < 140


@pytest.mark.parametrize("medications, age, conditions, expected", [
    ((use("warfarin"),), 45, (), [("B1", "warning")]),
    ((use("clopidogrel"),), 45, (), [("B2", "warning")]),
    ((use("ibuprofen"),), 45, (), [("B3", "info")]),
    ((use("ibuprofen"),), 64, (), [("B3", "info")]),
    ((use("aspirin"),), 65, (), [("B3", "warning")]),
    ((use("naproxen"),), 45, ("bleeding_disorder",), [("B3", "warning")]),
    ((use("diclofenac", route="topical"),), 70, (), []),
    ((use("diclofenac", product_route="topical"),), 70, (), []),
    ((use("ketorolac", route="ophthalmic"),), 45, (), []),
    ((use("ibuprofen", "stopped", stopped_at=days_ago(2)),), 45, (), []),
])
def test_bleeding_risk(medications, age, conditions, expected):
    findings = bleeding_risk.bleeding_risk(
        orders(), snapshot(medications=medications, age=age, conditions=tuple(condition(c) for c in conditions)), POLICY)
    assert fired(findings) == expected


@pytest.mark.parametrize("medication, expected", [
    (use("digoxin", product_route="injectable"), [("C1", "warning")]),
    (use("digoxin", route="oral"), [("C2", "info")]),
    (use("clonidine", route="oral"), [("C3", "info")]),
    (use("norepinephrine", product_route="injectable"), [("C4", "warning")]),
    (use("epinephrine", product_route="injectable"), [("C4", "warning")]),
    (use("epinephrine", product_route="injectable", as_needed=True), [("C4p", "info")]),
    (use("epinephrine", product_route="injectable", dose_form="auto-injector"), [("C4p", "info")]),
    (use("epinephrine", product_route="injectable", ingredient_count=2), [("C4p", "info")]),
])
def test_cardiovascular_drugs(medication, expected):
    findings = cardiovascular_drugs.cardiovascular_interaction(orders(), snapshot(medications=(medication,)), POLICY)
    assert fired(findings) == expected


# --- blood pressure and heart rate ----------------------------------------------------------

@pytest.mark.parametrize("pressures, conditions, expected", [
    ((bp(139, 89),), (), []),
    ((bp(140, 80),), (), [("V2", "warning")]),
    ((bp(120, 90),), (), [("V2", "warning")]),
    ((bp(179, 109),), (), [("V2", "warning")]),
    ((bp(180, 90),), (), [("V3", "critical")]),
    ((bp(150, 110),), (), [("V3", "critical")]),
    ((bp(150, 95, 1), bp(130, 80, 2), bp(130, 80, 3)), (), []),           # mean of the last 3: 136.7/85
    ((bp(120, 70),), ("hypertensive_crisis",), [("V3", "critical")]),
    ((bp(150, 95, 120),), (), []),                                         # outside the 90-day window
    ((), ("hypertension",), [("V2", "warning")]),                           # hypertension, no reading
])
def test_blood_pressure_thresholds(pressures, conditions, expected):
    findings = blood_pressure.blood_pressure_history(
        orders(), snapshot(blood_pressures=pressures, conditions=tuple(condition(c) for c in conditions)), POLICY)
    assert fired(findings) == expected


@pytest.mark.parametrize("rates, expected", [((hr(100),), []), ((hr(101),), [("V4", "warning")]),
                                             ((hr(120, 1), hr(90, 2), hr(88, 3)), [])])
def test_tachycardia_threshold(rates, expected):
    assert fired(blood_pressure.tachycardia(orders(), snapshot(heart_rates=rates), POLICY)) == expected


@pytest.mark.parametrize("pressures, rates, kinds", [
    ((), (hr(70),), ["85354-9"]), ((bp(120, 80),), (), ["8867-4"]), ((), (), ["85354-9", "8867-4"]),
    ((bp(120, 80, 91),), (hr(70, 91),), ["85354-9", "8867-4"]),
])
def test_missing_baseline_orders_the_missing_vitals(pressures, rates, kinds):
    [finding] = blood_pressure.missing_baseline(orders(), snapshot(blood_pressures=pressures, heart_rates=rates), POLICY)
    assert finding.rule_id == "V1"
    actions = finding.suggestions[0].actions
    assert [a.resource["code"]["coding"][0]["code"] for a in actions] == kinds
    for action in actions:
        assert_valid_r4(action.resource)


def test_sustained_rise_on_treatment():
    on_treatment = use("milnacipran", start=days_ago(60))
    pressures = (bp(142, 85, 2), bp(141, 84, 10), bp(125, 80, 70))
    findings = blood_pressure.sustained_rise_on_treatment(
        orders(), snapshot(medications=(on_treatment,), blood_pressures=pressures), POLICY)
    assert fired(findings) == [("V5", "warning")]
    one_raised = (bp(142, 85, 2), bp(130, 84, 10), bp(125, 80, 70))
    assert not blood_pressure.sustained_rise_on_treatment(
        orders(), snapshot(medications=(on_treatment,), blood_pressures=one_raised), POLICY)


# --- dose and titration ----------------------------------------------------------------------

@pytest.mark.parametrize("steps, expected", [
    ([(100, 2)], [("D3", "info")]),                             # 200 mg/day, not above the maximum
    ([(150, 2)], [("D1", "warning"), ("D2", "info"), ("D3", "info")]),
    ([(100, 1)], [("D2", "info"), ("D3", "info")]),             # once daily
    ([(50, 2)], [("D3", "info")]),                              # new start at 100 mg/day, no titration
    ([(25, 2)], []),                                            # 50 mg/day start
    ([(12.5, 1), (12.5, 2), (25, 2), (50, 2)], []),             # titrated sig
])
def test_dose_and_titration(steps, expected):
    draft = orders(draft_resource(steps=steps, tablet_mg=50))
    findings = run_rules(dose_titration, draft, snapshot())
    assert fired(findings) == expected


def test_the_titration_pack_needs_no_dose_card():
    draft = orders(draft_resource(steps=[(50, 2)], code="833151"))
    assert not dose_titration.titration_on_new_start(draft, snapshot(), POLICY)


def test_no_titration_nudge_when_already_on_milnacipran():
    draft = orders(draft_resource(100, 2))
    on_it = snapshot(medications=(use("milnacipran", start=days_ago(200)),))
    assert not dose_titration.titration_on_new_start(draft, on_it, POLICY)


def test_dose_suggestions_are_valid_r4_updates_of_the_same_draft():
    draft = orders(draft_resource(150, 2))
    findings = run_rules(dose_titration, draft, snapshot())
    for finding in findings:
        for suggestion in finding.suggestions:
            [action] = suggestion.actions
            assert action.type == "update" and action.resource["id"] == "draft-1"
            assert_valid_r4(action.resource)


def _full_draft(mg_per_dose, per_day, **changes):
    """A draft as an EHR fills it: route, method, site, instructions, a start date and a dispense."""
    resource = draft_resource(mg_per_dose, per_day)
    resource["dosageInstruction"][0].update({
        "route": {"coding": [{"system": "http://snomed.info/sct", "code": "26643006", "display": "Oral route"}]},
        "method": {"text": "swallow"}, "site": {"text": "mouth"}, "patientInstruction": "with food",
        "additionalInstruction": [{"text": "take with meals"}]})
    resource["dosageInstruction"][0]["timing"]["repeat"]["boundsPeriod"] = {"start": "2026-11-20"}
    resource["dispenseRequest"] = {"quantity": {"value": 60, "unit": "tablet"}, "numberOfRepeatsAllowed": 2,
                                   "validityPeriod": {"start": "2026-11-20"}}
    resource["note"] = [{"text": "fibromyalgia"}]
    resource.update(changes)
    return resource


BUILDERS = [   # each suggestion builder, reached through the rule that uses it
    ("change_dose", 150, lambda draft: dose_titration.maximum_daily_dose(draft, snapshot(), POLICY)),
    ("switch_to_titration_pack", 100, lambda draft: dose_titration.titration_on_new_start(draft, snapshot(), POLICY)),
    ("titrate_to", 100, lambda draft: renal_function.renal_dose_ceiling(draft, snapshot(renal=renal(20)), POLICY)),
]


@pytest.mark.parametrize("builder, mg, run", BUILDERS, ids=[name for name, _, _ in BUILDERS])
def test_every_update_builder_sends_valid_r4_keeping_the_drafts_own_fields(builder, mg, run):
    draft = orders(_full_draft(mg, 2))
    updates = [action for finding in run(draft) for suggestion in finding.suggestions for action in suggestion.actions
               if action.type == "update"]
    assert updates, builder
    for action in updates:
        assert_valid_r4(action.resource)
        assert action.resource["note"] == [{"text": "fibromyalgia"}]
        assert action.resource["dosageInstruction"][0]["route"]["coding"][0]["code"] == "26643006"


def _old_style_sig(mg):
    """A draft whose only R4 slips are in what an update replaces: an STU3-style sig (``doseQuantity`` on the
    instruction, as some clients still send it), a narrative without its status, an old fill without a value."""
    resource = _full_draft(mg, 2, text={"div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">milnacipran</div>"})
    instruction = resource["dosageInstruction"][0]
    instruction["doseQuantity"] = instruction.pop("doseAndRate")[0]["doseQuantity"]
    resource["dispenseRequest"]["quantity"] = {"unit": "tablet", "value": "sixty"}
    return resource


@pytest.mark.parametrize("builder, mg, run", BUILDERS, ids=[name for name, _, _ in BUILDERS])
def test_a_slip_only_in_what_the_update_replaces_still_gets_a_valid_button(builder, mg, run):
    updates = [action for finding in run(orders(_old_style_sig(mg))) for suggestion in finding.suggestions
               for action in suggestion.actions if action.type == "update"]
    assert updates, builder
    for action in updates:
        assert_valid_r4(action.resource)
        assert "text" not in action.resource and action.resource["note"] == [{"text": "fibromyalgia"}]


@pytest.mark.parametrize("builder, mg, run", BUILDERS, ids=[name for name, _, _ in BUILDERS])
def test_a_draft_that_is_not_valid_r4_keeps_its_card_but_gets_no_update_button(builder, mg, run):
    findings = run(orders(_full_draft(mg, 2, authoredOn="yesterday")))
    assert findings, builder
    assert not [a for f in findings for s in f.suggestions for a in s.actions if a.type == "update"]


def test_maximum_dose_suggestion_defers_to_the_renal_card_in_severe_impairment():
    [finding] = dose_titration.maximum_daily_dose(orders(draft_resource(150, 2)), snapshot(renal=renal(20)), POLICY)
    assert finding.suggestions == ()


# --- duplicate, age, suicidality, conditions, labs --------------------------------------------

@pytest.mark.parametrize("medications, expected", [
    ((), []), ((use("levomilnacipran"),), [("D5", "warning")]), ((use("milnacipran", start=days_ago(100)),),
                                                                   [("D5", "warning")]),
    ((use("milnacipran", "stopped", stopped_at=days_ago(3)),), []),
])
def test_duplicate_therapy(medications, expected):
    assert fired(duplicate_therapy.duplicate_milnacipran(orders(), snapshot(medications=medications), POLICY)) == expected


def test_two_milnacipran_drafts_offer_to_remove_the_second():
    two = orders(draft_resource(order_id="a"), draft_resource(order_id="b"))
    [finding] = duplicate_therapy.duplicate_milnacipran(two, snapshot(), POLICY)
    assert finding.suggestions[0].actions[0].resource_id == "MedicationRequest/b"


@pytest.mark.parametrize("years, expected", [
    (17, [("A1", "warning")]), (18, [("A2", "info")]), (24, [("A2", "info")]), (25, []), (64, []),
    (65, [("A3", "info")]), (None, []),
])
def test_age_bands(years, expected):
    assert fired(age_rules.age(orders(), snapshot(age=years), POLICY)) == expected


@pytest.mark.parametrize("conditions, medications, expected", [
    ((), (), [("SU1", "info")]),
    ((), (use("milnacipran", start=days_ago(100)),), []),                                    # renewal
    ((), (use("milnacipran", "stopped", stopped_at=days_ago(29)),), []),                     # within 30 days
    ((), (use("milnacipran", "stopped", stopped_at=days_ago(31)),), [("SU1", "info")]),
    (("suicidality",), (), [("SU2", "warning")]),
])
def test_suicidality(conditions, medications, expected):
    findings = suicidality.suicidality(
        orders(), snapshot(conditions=tuple(condition(c) for c in conditions), medications=medications), POLICY)
    assert fired(findings) == expected


@pytest.mark.parametrize("category, expected", [
    ("alcohol_use_disorder", ("alcohol", "AL1", "warning")), ("seizure", ("seizure", "SZ1", "info")),
    ("bipolar_mania", ("mania", "BP1", "warning")),
    ("angle_closure_glaucoma", ("angle-closure-glaucoma", "G1", "warning")),
])
def test_problem_list_precautions(category, expected):
    findings = evaluate_rules(orders(), snapshot(conditions=(condition(category),)), POLICY)
    assert (expected[0], expected[1], expected[2]) in [(f.topic, f.rule_id, f.indicator) for f in findings]


@pytest.mark.parametrize("conditions, labs, expected", [
    (("chronic_liver_disease",), {}, [("H1", "warning")]),
    (("hepatic_failure",), {}, [("H2", "info")]),
    ((), {"alt": (Measurement(121, "U/L", days_ago(5), 40),)}, [("H3", "warning")]),
    ((), {"alt": (Measurement(120, "U/L", days_ago(5), 40),)}, []),                  # exactly 3x: not above
    ((), {"bilirubin_total": (Measurement(2.5, "mg/dL", days_ago(5), 1.2),)}, [("H3", "warning")]),
    ((), {"ast": (Measurement(500, "U/L", days_ago(100), 40),)}, []),                # outside 90 days
    ((), {"ast": (Measurement(500, "ukat/L", days_ago(5)),)}, []),                   # no range, unit unknown: no guess
])
def test_hepatic(conditions, labs, expected):
    findings = run_rules(hepatic, orders(), snapshot(conditions=tuple(condition(c) for c in conditions), labs=labs))
    assert fired(findings) == expected


@pytest.mark.parametrize("sex, conditions, hcg, expected", [
    ("female", ("pregnancy",), (), [("P1", "warning")]),
    ("female", ("lactation",), (), [("P2", "info")]),
    ("female", (), (HcgResult("positive", days_ago(30), "hCG positive"),), [("P1", "warning")]),
    ("female", (), (HcgResult("negative", days_ago(30), "hCG negative"),), []),
    ("female", (), (HcgResult("positive", days_ago(300), "hCG positive"),), []),
    ("male", ("pregnancy",), (), [("P1", "warning")]),  # administrative gender does not rule it out
])
def test_pregnancy_lactation(sex, conditions, hcg, expected):
    findings = pregnancy_lactation.pregnancy_lactation(
        orders(), snapshot(sex=sex, conditions=tuple(condition(c) for c in conditions), hcg_results=hcg), POLICY)
    assert fired(findings) == expected


@pytest.mark.parametrize("sodium, days, expected", [(134, 5, [("NA1", "info")]), (135, 5, []), (130, 31, [])])
def test_hyponatremia(sodium, days, expected):
    labs = {"sodium": (Measurement(sodium, "mmol/L", days_ago(days)),)}
    assert fired(hyponatremia.hyponatremia(orders(), snapshot(labs=labs), POLICY)) == expected


@pytest.mark.parametrize("keys, expected", [
    (("vitalSigns",), [("DA1", "info")]), (("medicationStatements",), [("DA1", "warning")]), ((), []),
])
def test_data_availability(keys, expected):
    missing = tuple(Unavailable(key, "FHIR server timed out") for key in keys)
    assert fired(data_availability.unavailable_data(orders(), snapshot(unavailable=missing), POLICY)) == expected


# --- what a suggestion does to the draft -------------------------------------------------------

def test_a_dose_update_keeps_route_and_start_and_drops_the_old_quantity_and_narrative():
    resource = draft_resource(100, 2)
    resource["text"] = {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">100 mg BID</div>"}
    resource["dosageInstruction"][0]["route"] = {"text": "Oral"}
    resource["dosageInstruction"][0]["timing"]["repeat"]["boundsPeriod"] = {"start": "2026-11-21"}
    resource["dispenseRequest"] = {"quantity": {"value": 60, "unit": "tablet"}, "numberOfRepeatsAllowed": 5,
                                   "validityPeriod": {"start": "2026-11-20"}}
    [finding] = renal_function.renal_dose_ceiling(orders(resource), snapshot(renal=renal(20), medications=ON_MILNACIPRAN),
                                                  POLICY)
    updated = finding.suggestions[0].actions[0].resource
    assert_valid_r4(updated)
    [instruction] = updated["dosageInstruction"]
    assert instruction["route"] == {"text": "Oral"}
    assert instruction["timing"]["repeat"]["boundsPeriod"] == {"start": "2026-11-21"}
    assert updated["dispenseRequest"] == {"validityPeriod": {"start": "2026-11-20"}}
    assert "text" not in updated


def test_the_titration_pack_update_dispenses_one_pack_without_refills():
    [finding] = dose_titration.titration_on_new_start(orders(draft_resource(50, 2)), snapshot(), POLICY)
    updated = finding.suggestions[0].actions[0].resource
    assert updated["medicationCodeableConcept"]["coding"][0]["code"] == "833151"
    assert updated["dispenseRequest"] == {"quantity": {"value": 1, "unit": "pack"}, "numberOfRepeatsAllowed": 0}
    assert [i["sequence"] for i in updated["dosageInstruction"]] == [1, 2, 3, 4]
    assert_valid_r4(updated)


def test_no_titration_pack_in_severe_renal_impairment():
    assert not dose_titration.titration_on_new_start(orders(draft_resource(50, 2)), snapshot(renal=renal(20)), POLICY)


def test_a_titration_pack_order_is_not_replaced_by_a_flat_renal_dose():
    pack = orders(draft_resource(steps=[(12.5, 1), (12.5, 2), (25, 2), (100, 2)], code="833151"))
    [finding] = renal_function.renal_dose_ceiling(pack, snapshot(renal=renal(20)), POLICY)
    assert finding.rule_id == "R4" and finding.suggestions == ()


def test_two_drafts_each_get_their_own_dose_fix_on_one_card():
    from cds_service.cards import cards_for
    two = orders(draft_resource(100, 2, order_id="a"), draft_resource(100, 2, order_id="b"))
    findings = run_rules(renal_function, two, snapshot(renal=renal(20), medications=ON_MILNACIPRAN))
    [card] = cards_for(findings, [order.reference for order in two], POLICY, "order-sign").cards
    targets = [s["actions"][0]["resource"]["id"] for s in card["suggestions"]]
    assert sorted(targets) == ["a", "a", "b", "b"]
    assert len({s["label"] for s in card["suggestions"]}) == 4


def test_readings_a_few_minutes_in_the_future_still_count():
    pressures = (bp(185, 112, -0.003),)
    assert fired(blood_pressure.blood_pressure_history(orders(), snapshot(blood_pressures=pressures), POLICY)) == \
        [("V3", "critical")]
    assert not blood_pressure.missing_baseline(orders(), snapshot(blood_pressures=pressures, heart_rates=(hr(70, -0.002),)),
                                               POLICY)


def test_bp_components_are_read_under_another_panel_code():
    from cds_service.snapshot.labs_and_vitals import read_observations
    panel = {"resourceType": "Observation", "status": "final", "effectiveDateTime": "2026-11-19T09:00:00Z",
             "code": {"coding": [{"system": "http://loinc.org", "code": "55284-4"}]},
             "component": [{"code": {"coding": [{"system": "http://loinc.org", "code": code}]},
                            "valueQuantity": {"value": value, "code": "mm[Hg]"}}
                           for code, value in (("8480-6", 185), ("8462-4", 112))]}
    [reading] = read_observations([panel], POLICY.knowledge)["blood_pressure"]
    assert (reading.systolic, reading.diastolic) == (185, 112)

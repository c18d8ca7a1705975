"""Clinical coverage as charts record it (issue 9), through the snapshot and the rules, not just the knowledge.

Each case is FHIR resources as an EHR sends them -> ``build_snapshot`` -> ``evaluate_rules``: code
families (a leaf that matches, an excluded sibling that does not), history-of versus current,
hCG, default ULN and AUDIT-C at their cut-offs, strength from text, forms from words, renewals.
"""

import datetime
import re
from pathlib import Path

import pytest
from builders import KNOWLEDGE
from builders import MATCHER
from builders import NOW
from builders import POLICY
from builders import RXNORM
from builders import days_ago
from builders import draft_resource
from builders import orders

from cds_service.chart.prefetch import prefetch_templates
from cds_service.chart.source import Chart
from cds_service.fhir.vocabulary import CODE_SYSTEMS
from cds_service.fhir.vocabulary import LOINC
from cds_service.fhir.vocabulary import SNOMED
from cds_service.rules.engine import evaluate_rules
from cds_service.snapshot import build_snapshot

REPO = Path(__file__).resolve().parent.parent
ICD = CODE_SYSTEMS["icd10cm"][0]
LOCAL = "urn:oid:1.2.3.4.5.local"


def iso(days: float) -> str:
    return days_ago(days).isoformat()


def patient(sex="female", age=45):
    birth = NOW.date().replace(year=NOW.year - age) - datetime.timedelta(days=1)
    return {"resourceType": "Patient", "id": "p1", "gender": sex, "birthDate": birth.isoformat()} if sex else \
        {"resourceType": "Patient", "id": "p1", "birthDate": birth.isoformat()}


def observation(kind, value=None, unit="", days=5, high=None, code=None, result=None, interpretation=None,
                integer=None, loinc=None):
    resource = {"resourceType": "Observation", "id": f"{kind}-{days}-{value}-{integer}", "status": "final",
                "code": {"coding": [{"system": LOINC, "code": loinc or KNOWLEDGE.loinc_of(kind)}]},
                "subject": {"reference": "Patient/p1"}, "effectiveDateTime": iso(days)}
    if value is not None:
        resource["valueQuantity"] = {"value": value, "unit": unit, "code": unit}
    if integer is not None:
        resource["valueInteger"] = integer
    if high is not None:
        resource["referenceRange"] = [{"high": {"value": high, "unit": unit}}]
    if result is not None:
        resource["valueCodeableConcept"] = {"coding": [{"system": SNOMED, "code": result}]}
    if interpretation is not None:
        resource["interpretation"] = [{"coding": [{"system": CODE_SYSTEMS["v3-interpretation"][0],
                                                   "code": interpretation}]}]
    return resource


BASELINE = [observation("creatinine_mass", 0.8, "mg/dL"), observation("weight", 70, "kg"),
            observation("height", 165, "cm"), observation("heart_rate", 72, "/min")]
BP = {"resourceType": "Observation", "id": "bp", "status": "final", "effectiveDateTime": iso(5),
      "code": {"coding": [{"system": LOINC, "code": "85354-9"}]},
      "component": [{"code": {"coding": [{"system": LOINC, "code": "8480-6"}]}, "valueQuantity": {"value": 122}},
                    {"code": {"coding": [{"system": LOINC, "code": "8462-4"}]}, "valueQuantity": {"value": 78}}]}


def condition(code, status="active", verification="confirmed", days=30, system=ICD, abated=False, date_field="recordedDate"):
    resource = {"resourceType": "Condition", "id": f"c-{code}-{status}-{days}", "subject": {"reference": "Patient/p1"},
                "code": {"coding": [{"system": system, "code": code}]}, date_field: iso(days)}
    if status is not None:
        resource["clinicalStatus"] = {"coding": [{"code": status}]}
    if verification is not None:
        resource["verificationStatus"] = {"coding": [{"code": verification}]}
    if abated:
        resource["abatementDateTime"] = iso(days / 2)
    return resource


def medication(text, status="active", route=None, as_needed=False, rxcui=None, **extra):
    concept = {"coding": [{"system": RXNORM, "code": rxcui}]} if rxcui else \
        {"coding": [{"system": LOCAL, "code": "L1", "display": text}], "text": text}
    resource = {"resourceType": "MedicationRequest", "id": extra.pop("id", f"m-{abs(hash(text))}"), "status": status,
                "intent": "order", "subject": {"reference": "Patient/p1"}, "medicationCodeableConcept": concept,
                "authoredOn": iso(extra.pop("days", 60)), **extra}
    dosage = {}
    if route:
        dosage["route"] = {"text": route}
    if as_needed:
        dosage["asNeededBoolean"] = True
    if dosage:
        resource.setdefault("dosageInstruction", []).append(dosage)
    return resource


def run(*resources, drafts=None, sex="female", age=45, vitals=True):
    """The findings for these chart resources and draft(s)."""
    drafts = drafts or (draft_resource(25, 2),)
    checked = orders(*drafts)
    chart = Chart(patient(sex, age), tuple(BASELINE + ([BP] if vitals else []) + list(resources)))
    snapshot = build_snapshot(chart, checked, list(drafts), MATCHER, NOW, POLICY.thresholds)
    return evaluate_rules(checked, snapshot, POLICY)


def ids(findings):
    return {f.rule_id for f in findings}


def by_id(findings, rule_id):
    return next(f for f in findings if f.rule_id == rule_id)


# -- code families: a leaf that matches and an excluded sibling that does not --------------------------------------
# (family, leaf, sibling, rule id, extra arguments)
FAMILIES = [
    ("bipolar / mania", "F31.71", "F32.9", "BP1"),
    ("seizure disorder", "G40.909", "R56.00", "SZ1"),
    ("chronic liver disease", "B18.2", "B17.10", "H1"),
    ("severe hepatic impairment", "K72.00", "K71.0", "H2"),
    ("suicidal behaviour (intent rule)", "T43.222A", "T43.221A", "SU2"),
    ("suicidal ideation", "R45.851", "R45.850", "SU2"),
    ("pregnancy", "O09.90", "O24.420", "P1"),
    ("lactation", "Z39.1", "O92.3", "P2"),
    ("alcohol use disorder", "F10.21", "Z81.1", "AL1"),
    ("angle closure", "H40.2231", "H40.1111", "G1"),
    ("narrow angles", "H40.033", "H40.013", "G1"),
    ("ESRD", "N18.6", "N18.4", "R5"),
    ("dialysis", "Z99.2", "Z94.1", "R5"),
    ("hypertensive crisis", "I16.1", "I27.20", "V3"),
    ("hyponatremia", "E87.1", "E87.0", "NA1"),
    ("volume depletion", "E86.0", "E87.70", "NA1"),
]


@pytest.mark.parametrize("family, leaf, sibling, rule_id", FAMILIES, ids=[f[0] for f in FAMILIES])
def test_a_family_leaf_fires_its_rule_and_an_excluded_sibling_does_not(family, leaf, sibling, rule_id):
    assert rule_id in ids(run(condition(leaf)))
    assert rule_id not in ids(run(condition(sibling)))


def test_hypertension_family_leaf_without_a_reading_fires_v2_and_a_sibling_does_not():
    assert "V2" in ids(run(condition("I10"), vitals=False))
    assert "V2" not in ids(run(condition("R03.0"), vitals=False))


def test_snomed_set_members_count_like_icd_codes():
    assert "BP1" in ids(run(condition("13746004", system=SNOMED)))      # bipolar disorder
    assert "H1" in ids(run(condition("19943007", system=SNOMED)))       # cirrhosis of liver


def test_a_code_in_two_categories_fires_both_rules():
    found = ids(run(condition("K76.7")))                                   # hepatorenal syndrome: H1 and H2
    assert {"H1", "H2"} <= found


# -- history-of versus current -------------------------------------------------------------------------------------
HISTORY_OF = [("F31.9", "BP1"), ("G40.909", "SZ1"), ("R45.851", "SU2"), ("K74.60", "H1"), ("F10.20", "AL1"),
              ("H40.2231", "G1"), ("E87.1", "NA1")]
CURRENT = [("O09.90", "P1"), ("Z39.1", "P2"), ("N18.6", "R5"), ("K72.00", "H2"), ("I16.1", "V3"), ("E86.0", "NA1")]
ALL_STATUSES = ("active", "recurrence", "relapse", "inactive", "remission", "resolved", None)


@pytest.mark.parametrize("code, rule_id", HISTORY_OF)
@pytest.mark.parametrize("status", ALL_STATUSES)
def test_a_history_of_precaution_counts_whatever_the_clinical_status(code, rule_id, status):
    assert rule_id in ids(run(condition(code, status=status, days=900)))


@pytest.mark.parametrize("code, rule_id", HISTORY_OF + CURRENT)
@pytest.mark.parametrize("verification", ("refuted", "entered-in-error"))
def test_refuted_or_entered_in_error_never_counts(code, rule_id, verification):
    assert rule_id not in ids(run(condition(code, verification=verification)))


@pytest.mark.parametrize("code, rule_id", CURRENT)
@pytest.mark.parametrize("status, fires", [("active", True), ("recurrence", True), ("relapse", True),
                                           ("inactive", False), ("remission", False), ("resolved", False)])
def test_a_current_precaution_counts_only_when_active(code, rule_id, status, fires):
    assert (rule_id in ids(run(condition(code, status=status, days=10)))) is fires


@pytest.mark.parametrize("code, rule_id", CURRENT)
def test_a_current_condition_without_clinical_status_counts_unless_abated(code, rule_id):
    assert rule_id in ids(run(condition(code, status=None, days=10)))
    assert rule_id not in ids(run(condition(code, status=None, days=10, abated=True)))


@pytest.mark.parametrize("code, rule_id, inside, outside", [
    ("O09.90", "P1", 300, 310),      # pregnancy_condition_window_days 304
    ("Z39.1", "P2", 360, 370),       # lactation_condition_window_days 365
    ("E86.0", "NA1", 29, 31),        # volume_depletion_window_days 30
])
def test_a_current_condition_without_status_counts_only_inside_its_window(code, rule_id, inside, outside):
    assert rule_id in ids(run(condition(code, status=None, days=inside, date_field="onsetDateTime")))
    assert rule_id not in ids(run(condition(code, status=None, days=outside, date_field="onsetDateTime")))
    assert rule_id in ids(run(condition(code, days=outside, date_field="onsetDateTime")))  # active: the record says so


@pytest.mark.parametrize("end_days, fires", [(10, False), (100, True)])
def test_a_later_end_of_pregnancy_record_closes_the_pregnancy(end_days, fires):
    found = ids(run(condition("O26.893", days=60), condition("Z37.0", status="resolved", days=end_days)))
    assert ("P1" in found) is fires


@pytest.mark.parametrize("code, rule_id, words", [
    ("F31.72", "BP1", "History of bipolar"), ("G40.309", "SZ1", "History of seizure"),
    ("F10.21", "AL1", "History of alcohol"), ("K74.60", "H1", "History of chronic liver"),
    ("H40.2231", "G1", "History of angle-closure"), ("R45.851", "SU2", "History of suicidal"),
])
def test_a_card_about_a_condition_that_is_not_active_says_history_of(code, rule_id, words):
    inactive = by_id(run(condition(code, status="remission")), rule_id)
    assert inactive.summary.startswith(words) and "History of:" in inactive.detail and "(remission)" in inactive.detail
    active = by_id(run(condition(code)), rule_id)
    assert not active.summary.startswith("History of") and "History of:" not in active.detail


def test_current_suicidal_ideation_asks_for_the_current_risk():
    assert "assess current risk" in by_id(run(condition("R45.851")), "SU2").summary


def test_an_active_record_wins_over_an_inactive_one_of_the_same_category():
    finding = by_id(run(condition("F31.9", status="resolved"), condition("F30.10", days=5)), "BP1")
    assert not finding.summary.startswith("History of")


def test_an_unconfirmed_condition_counts_and_says_so():
    assert "unconfirmed" in by_id(run(condition("G40.909", verification="provisional")), "SZ1").detail


def test_the_conditions_template_fetches_every_clinical_status_a_history_of_category_counts():
    template = prefetch_templates(KNOWLEDGE)["conditions"]
    statuses = re.search(r"clinical-status=([a-z,]+)", template).group(1).split(",")
    assert set(statuses) == {s for s in ALL_STATUSES if s}


# -- hCG ------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("resources, sex, fires", [
    ([observation("hcg_quantitative", 25, "[IU]/L")], "female", True),              # at the cut-off
    ([observation("hcg_quantitative", 24.9, "[IU]/L")], "female", False),           # indeterminate band
    ([observation("hcg_quantitative", 4.9, "mIU/mL")], "female", False),            # negative
    ([observation("hcg_quantitative", 300, "m[IU]/mL")], None, True),               # sex unknown: can be pregnant
    ([observation("hcg_quantitative", 300, "[IU]/L")], "male", False),              # tumour marker in a man
    ([observation("hcg_quantitative", 10, "[IU]/L", high=5)], "female", True),      # the lab's range wins
    ([observation("hcg_quantitative", 30, "[IU]/L", interpretation="N")], "female", True),  # N is not a known meaning
    ([observation("hcg_quantitative", 300, "ng/mL")], "female", False),             # unknown unit, not flagged
    ([observation("hcg_other_units", 2, "nmol/L", interpretation="POS")], "female", True),
    ([observation("hcg_other_units", 2, "nmol/L")], "female", False),               # molar units: only if flagged
    ([observation("hcg_qualitative", result="10828004")], "male", True),            # a pregnancy test: any gender
    ([observation("hcg_qualitative", result="260385009")], "female", False),
    ([observation("hcg_interpretation", result="260373001")], "female", True),
    ([observation("hcg_qualitative", result="10828004", days=300)], "female", False),   # outside 273 days
])
def test_hcg_results_at_their_cut_offs(resources, sex, fires):
    assert ("P1" in ids(run(*resources, sex=sex))) is fires


@pytest.mark.parametrize("negative_days, fires", [(10, False), (29, False), (35, True)])
def test_a_negative_hcg_after_a_positive_means_not_pregnant_only_within_the_window(negative_days, fires):
    found = run(observation("hcg_qualitative", result="10828004", days=40),
                observation("hcg_qualitative", result="260415000", days=negative_days))
    assert ("P1" in ids(found)) is fires
    if fires:
        assert "not taken as 'not pregnant'" in by_id(found, "P1").detail


def test_a_negative_hcg_before_the_positive_does_not_cancel_it():
    assert "P1" in ids(run(observation("hcg_qualitative", result="260385009", days=20),
                           observation("hcg_qualitative", result="10828004", days=5)))


def test_a_delivery_after_the_positive_hcg_cancels_it():
    assert "P1" not in ids(run(observation("hcg_qualitative", result="10828004", days=200),
                               condition("O80", status="resolved", days=20)))


# -- liver tests without a reference range: default ULN --------------------------------------------------------------
@pytest.mark.parametrize("kind, value, unit, sex, high, fires", [
    ("alt", 75, "U/L", "female", None, False), ("alt", 76, "U/L", "female", None, True),     # 3 x 25
    ("alt", 99, "U/L", "male", None, False), ("alt", 100, "U/L", "male", None, True),        # 3 x 33
    ("alt", 76, "U/L", None, None, True),                                                     # sex unknown: 25
    ("ast", 120, "U/L", "male", None, False), ("ast", 121, "IU/L", "female", None, True),     # 3 x 40
    ("alt", 1.3, "ukat/L", "female", None, True),                                             # 78 U/L
    ("alt", 100, "U/L", "female", 40, False),                                                 # the result's range wins
    ("alt", 500, "mmol/L", "female", None, False),                                            # unknown unit: no default
])
def test_default_upper_limit_for_liver_tests_without_a_range(kind, value, unit, sex, high, fires):
    found = run(observation(kind, value, unit, high=high), sex=sex)
    assert ("H3" in ids(found)) is fires
    if fires and high is None:
        assert "ULN assumed" in by_id(found, "H3").detail


# -- AUDIT-C ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("scores, sex, fires", [
    ([(2, 30)], "female", False), ([(3, 30)], "female", True),
    ([(3, 30)], "male", False), ([(4, 30)], "male", True),
    ([(3, 30)], None, True),
    ([(8, 370)], "male", False),                       # outside audit_c_window_days
    ([(2, 10), (8, 200)], "male", False),              # the newest score decides
    ([(0, 10), (8, 200)], "male", False),              # a score of 0 is a result too
])
def test_audit_c_at_its_cut_offs(scores, sex, fires):
    found = run(*[observation("audit_c_total", integer=score, days=days) for score, days in scores], sex=sex)
    assert ("AL2" in ids(found)) is fires


def test_an_alcohol_diagnosis_takes_precedence_over_the_score():
    assert ids(run(condition("F10.20"), observation("audit_c_total", integer=9))) & {"AL1", "AL2"} == {"AL1"}


# -- dose in words ---------------------------------------------------------------------------------------------------
def local_draft(text, tablets=None, sig=None, per_day=2, **extra):
    resource = {"resourceType": "MedicationRequest", "id": "draft-1", "status": "draft", "intent": "order",
                "subject": {"reference": "Patient/p1"},
                "medicationCodeableConcept": {"coding": [{"system": LOCAL, "code": "SAV", "display": text}]}, **extra}
    dosage = {"text": sig} if sig else {}
    if tablets is not None:
        dosage.update(timing={"repeat": {"frequency": per_day, "period": 1, "periodUnit": "d"}},
                      doseAndRate=[{"doseQuantity": {"value": tablets, "unit": "tablet", "code": "{tbl}"}}])
    resource["dosageInstruction"] = [dosage]
    return resource


@pytest.mark.parametrize("text, tablets, daily, pack", [
    ("SAVELLA 100 MG TABLET", 1, 200, False),
    ("milnacipran 50mg tab", 2, 200, False),
    ("Milnacipran HCl 12.5 milligram tablet", 1, 25, False),
    ("milnacipran 25 mg oral tablet [Savella]", 1, 50, False),
    ("milnacipran tablet", 1, None, False),                        # no strength: unknown, never guessed
    ("milnacipran 12.5 mg / 25 mg / 50 mg tablets", 1, None, False),   # several strengths: unknown
    ("milnacipran 20 mg tablet", 1, None, False),                  # not a listed strength
    ("Savella titration pack", None, None, True),
])
def test_strength_from_the_medication_text(text, tablets, daily, pack):
    [order] = orders(local_draft(text, tablets))
    assert order.match.titration_pack is pack
    assert (order.dosing.max_daily_mg if order.dosing else None) == daily


@pytest.mark.parametrize("rxcui, text, daily", [
    ("833136", "Savella 100 mg tablet", 200),           # brand name code: no strength of its own
    ("588250", "milnacipran 50 mg tab", 100),           # ingredient code
    ("833144", "milnacipran 100 mg tablet", 100),       # a coded 50 mg tablet: the code wins over the words
])
def test_a_code_without_a_strength_takes_it_from_the_text(rxcui, text, daily):
    draft = draft_resource(None) | {"medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": rxcui}], "text": text},
                                    "dosageInstruction": [{"timing": {"repeat": {"frequency": 2, "period": 1, "periodUnit": "d"}},
                                                           "doseAndRate": [{"doseQuantity": {"value": 1, "code": "{tbl}"}}]}]}
    [order] = orders(draft)
    assert order.dosing.max_daily_mg == daily


def test_a_strength_from_text_reaches_the_renal_ceiling():
    severe = observation("creatinine_mass", 2.5, "mg/dL", days=1)
    found = run(severe, drafts=(local_draft("SAVELLA 100 MG TABLET", 1),), age=70)
    assert "R4" in ids(found) and "200 mg/day" in by_id(found, "R4").summary
    assert "tablet strength (100 mg) was read from “SAVELLA 100 MG TABLET”" in by_id(found, "R4").detail


@pytest.mark.parametrize("draft", [
    local_draft("milnacipran tablet", 2),                                     # tablets of an unknown strength
    local_draft("milnacipran 50mg tab", sig="2 tabs twice daily"),           # free-text sig only
    draft_resource(steps=[(100, 2)]) | {"dosageInstruction": [{"text": "100 mg bid", "doseAndRate": [
        {"doseQuantity": {"value": 100, "unit": "mg", "code": "mg"}}]}]},   # no frequency
])
def test_an_unreadable_dose_is_never_shown_as_checked(draft):
    normal = run(drafts=(draft,))
    assert "D0" in ids(normal) and "NOT checked" in by_id(normal, "D0").summary
    assert not ids(normal) & {"D1", "D2", "D3"}
    severe = run(observation("creatinine_mass", 2.5, "mg/dL", days=1), drafts=(draft,), age=70)
    r3 = by_id(severe, "R3")
    assert "NOT checked" in r3.summary and "could not be read" in r3.detail


def test_no_dose_at_all_on_order_select_stays_quiet():
    assert "D0" not in ids(run(drafts=(draft_resource(None),)))


# -- routes and forms in words ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("resource, present, absent", [
    (medication("diclofenac sodium 1% gel"), set(), {"B3"}),
    (medication("diclofenac 1.3% patch"), set(), {"B3"}),
    (medication("Flector 1.3% medicated patch"), set(), {"B3"}),
    (medication("ibuprofen cream, apply to the skin"), set(), {"B3"}),
    (medication("ibuprofen 400 mg tablet"), {"B3"}, set()),
    (medication("ketorolac 15.75 mg nasal spray"), {"B3"}, set()),
    (medication("diclofenac", route="on the skin"), set(), {"B3"}),
    (medication("heparin lock flush 100 units/mL"), set(), {"B1"}),
    (medication("heparin sodium 10 units/mL IV flush"), set(), {"B1"}),
    (medication("heparin 5,000 units subcutaneous injection"), {"B1"}, set()),
    (medication("EpiPen 0.3 mg auto-injector"), {"C4p"}, {"C4"}),
    (medication("epinephrine 0.3 mg autoinjector"), {"C4p"}, {"C4"}),
    (medication("epinephrine 1 mg/mL infusion"), {"C4"}, {"C4p"}),
])
def test_forms_in_words(resource, present, absent):
    found = ids(run(resource))
    assert present <= found and not absent & found


# -- a renewal is not a duplicate ------------------------------------------------------------------------------------
ACTIVE_ORDER = medication("milnacipran", rxcui="833144", id="mr-a", days=120,
                          identifier=[{"system": "urn:rx", "value": "RX-1"}],
                          groupIdentifier={"system": "urn:grp", "value": "G1"},
                          dosageInstruction=[{"timing": {"repeat": {"frequency": 2, "period": 1, "periodUnit": "d"}},
                                              "doseAndRate": [{"doseQuantity": {"value": 50, "unit": "mg", "code": "mg"}}]}])


@pytest.mark.parametrize("link, duplicate", [
    ({"priorPrescription": {"reference": "MedicationRequest/mr-a"}}, False),
    ({"priorPrescription": {"reference": "https://ehr.example/fhir/MedicationRequest/mr-a/_history/3"}}, False),
    ({"basedOn": [{"reference": "MedicationRequest/mr-a"}]}, False),
    ({"priorPrescription": {"identifier": {"system": "urn:rx", "value": "RX-1"}}}, False),
    ({"groupIdentifier": {"system": "urn:grp", "value": "G1"}}, False),
    ({"groupIdentifier": {"system": "urn:grp", "value": "G2"}}, True),
    ({"priorPrescription": {"reference": "MedicationRequest/someone-else"}}, True),
    ({}, True),
])
def test_a_renewal_is_not_a_duplicate_but_an_unlinked_order_is(link, duplicate):
    found = ids(run(ACTIVE_ORDER, drafts=(draft_resource(50, 2) | link,)))
    assert ("D5" in found) is duplicate
    assert not found & {"SU1", "D3", "R4b"}         # never a new start: the patient is on milnacipran


def test_a_renewal_still_flags_levomilnacipran():
    found = ids(run(ACTIVE_ORDER, medication("levomilnacipran", rxcui="1433212"),
                    drafts=(draft_resource(50, 2) | {"priorPrescription": {"reference": "MedicationRequest/mr-a"}},)))
    assert "D5" in found


def test_a_renewal_is_dose_checked_on_its_own_dose():
    renewal = draft_resource(150, 2, tablet_mg=50) | {"priorPrescription": {"reference": "MedicationRequest/mr-a"}}
    found = ids(run(ACTIVE_ORDER, drafts=(renewal,)))
    assert {"D1", "D2"} <= found and "D5" not in found


def bp(systolic, days):
    return BP | {"id": f"bp-{days}", "effectiveDateTime": iso(days), "component": [
        {"code": {"coding": [{"system": LOINC, "code": "8480-6"}]}, "valueQuantity": {"value": systolic}},
        {"code": {"coding": [{"system": LOINC, "code": "8462-4"}]}, "valueQuantity": {"value": 80}}]}


@pytest.mark.parametrize("mg, words", [(100, "raises the daily dose from 100 to 200 mg"),
                                       (25, "lowers the daily dose from 100 to 50 mg")])
def test_a_sustained_rise_on_treatment_advises_reducing_and_names_the_change(mg, words):
    renewal = draft_resource(mg, 2) | {"basedOn": [{"reference": "MedicationRequest/mr-a"}]}
    found = run(ACTIVE_ORDER, bp(118, 130), bp(138, 40), bp(136, 10), drafts=(renewal,), vitals=False)
    v5 = by_id(found, "V5")
    assert "not an increase" in v5.summary and words in v5.detail


def test_uncontrolled_bp_on_treatment_advises_a_lower_dose_not_treating_before_starting():
    found = run(ACTIVE_ORDER, bp(150, 20), bp(152, 10), drafts=(draft_resource(50, 2),), vitals=False)
    assert "not an increase" in by_id(found, "V2").summary
    new_start = run(bp(150, 20), bp(152, 10), vitals=False)
    assert "before starting" in by_id(new_start, "V2").summary


# -- no unused knowledge ---------------------------------------------------------------------------------------------


def _service_source() -> str:
    return "\n".join(p.read_text() for p in (REPO / "cds_service").rglob("*.py") if "knowledge" not in p.parts)


def _named(name: str, source: str) -> bool:
    return f'"{name}"' in source or f"'{name}'" in source


def test_every_threshold_and_constant_is_read_by_a_rule_or_the_snapshot():
    source = _service_source()
    windows = {category.window for category in KNOWLEDGE.categories.values() if category.window}
    unused = {name for name in list(KNOWLEDGE.thresholds) + list(KNOWLEDGE.constants)
              if not _named(name, source) and name not in windows}
    assert unused == set()


def test_every_condition_category_is_read_by_a_rule_or_closes_another():
    rules = "\n".join(p.read_text() for p in (REPO / "cds_service" / "rules").glob("*.py"))
    closers = {category.closed_by for category in KNOWLEDGE.categories.values() if category.closed_by}
    assert [c for c in KNOWLEDGE.categories if not _named(c, rules) and c not in closers] == []


def test_every_observation_kind_is_fetched_and_read():
    source, templates = _service_source(), "\n".join(prefetch_templates(KNOWLEDGE).values())
    kinds = set(KNOWLEDGE.observation_kinds.values())
    assert [k for k in kinds if not _named(k, source)] == []
    assert [code for code, kind in KNOWLEDGE.observation_kinds.items()
            if kind in kinds and not re.search(rf"{re.escape(LOINC)}\|{re.escape(code)}[,&]", templates)] == []


def test_every_form_and_result_value_is_read():
    rules = "\n".join(p.read_text() for p in (REPO / "cds_service" / "rules").glob("*.py"))
    assert [form for form in KNOWLEDGE.form_words if not _named(form, rules)] == []
    systems = {system for system, _ in KNOWLEDGE.result_meanings}
    assert systems == {"snomed", "v3-interpretation"} and "result_meaning" in _service_source()


def test_discovery_shows_the_new_templates():
    from cds_service import create_app
    services = create_app({"require_jwt": False}).test_client().get("/cds-services").get_json()["services"]
    for service in services:
        prefetch = service["prefetch"]
        assert "clinical-status=active,recurrence,relapse,inactive,remission,resolved" in prefetch["conditions"]
        assert f"{LOINC}|75626-2" in prefetch["alcoholScreening"]
        assert all(f"{LOINC}|{code}" in prefetch["otherLabs"] for code in ("1743-4", "88112-8", "2947-0", "2119-6", "20994-0"))


def test_a_draft_bundle_that_stops_the_active_order_and_adds_a_new_one_is_not_a_duplicate():
    stop = {**ACTIVE_ORDER, "status": "stopped"}
    found = ids(run(ACTIVE_ORDER, drafts=(draft_resource(50, 2), stop)))
    assert not found & {"D5", "SU1", "D3"}     # not a duplicate, and still not a new start
    assert "D5" in ids(run(ACTIVE_ORDER, drafts=(draft_resource(50, 2),)))

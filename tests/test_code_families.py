"""Conditions by code family (shared/reference/code-families.md): leaves that match, excluded siblings that do not.

The tables below are the reference's families, one leaf that must match and one or more siblings the
reference excludes (or that belong to another family).  When PyPI ``simple-icd-10-cm`` (the CMS FY2026
tabular the reference was checked against) is installed, the last tests also recount every family's
billable leaves against the reference's counts and regenerate the pregnancy exclusion list.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

import cds_service.knowledge as knowledge_package
from cds_service.fhir.vocabulary import ICD10CM as ICD10CM_URI
from cds_service.fhir.vocabulary import SNOMED as SNOMED_URI
from cds_service.knowledge import load_knowledge

KDIR = Path(__file__).resolve().parent.parent / "cds_service" / "knowledge"
ICD = ICD10CM_URI


@pytest.fixture(scope="module")
def kb():
    return load_knowledge()


# (code, every category it belongs to, in priority order) -- () = matches nothing
ICD_CASES = [
    # §2.1 bipolar disorder / mania: F30, F31; not F32/F33, F39 (optional F34.0, F06.33 left out)
    ("F31.71", ("bipolar_mania",)), ("F30.11", ("bipolar_mania",)), ("F31.9", ("bipolar_mania",)),
    ("F31", ("bipolar_mania",)),  # a header sent as is still matches
    ("F32.9", ()), ("F39", ()), ("F34.0", ()), ("F06.33", ()),
    # §2.2 seizure disorder: G40, R56.1, R56.9; not R56.0- febrile, P90, F44.5, Z82.0
    ("G40.B19", ("seizure",)), ("G40.909", ("seizure",)), ("R56.1", ("seizure",)), ("R56.9", ("seizure",)),
    ("R56.00", ()), ("R56.01", ()), ("P90", ()), ("F44.5", ()), ("Z82.0", ()),
    # §2.3 chronic liver disease (H1) and severe impairment (H2)
    ("B18.2", ("chronic_liver_disease",)), ("K74.60", ("chronic_liver_disease",)), ("K76.0", ("chronic_liver_disease",)),
    ("K75.81", ("chronic_liver_disease",)), ("K71.51", ("chronic_liver_disease",)),
    ("K71.0", ()), ("K71.10", ()), ("K75.9", ()), ("K76.89", ()), ("K77", ()), ("B17.10", ()),
    ("Z94.4", ()), ("I85.00", ()),  # optional rows left out
    ("K72.00", ("hepatic_failure",)),  # acute failure: H2 only
    ("K71.11", ("hepatic_failure",)),
    ("K72.10", ("chronic_liver_disease", "hepatic_failure")), ("K70.41", ("chronic_liver_disease", "hepatic_failure")),
    ("K76.7", ("chronic_liver_disease", "hepatic_failure")), ("K76.82", ("chronic_liver_disease", "hepatic_failure")),
    # §2.4 suicidal ideation or behaviour, incl. the T36-T65/T71 intent rule
    ("R45.851", ("suicidality",)), ("T14.91XD", ("suicidality",)), ("Z91.51", ("suicidality",)),
    ("X78.9XXA", ("suicidality",)), ("T43.222A", ("suicidality",)), ("T36.92XA", ("suicidality",)),
    ("T71.162A", ("suicidality",)), ("T43.222", ("suicidality",)), ("T51.0X2A", ("suicidality",)),
    ("R45.850", ()), ("R45.85", ()), ("T43.221A", ()), ("T43.225A", ()), ("T43.22", ()), ("T71.161A", ()),
    ("T51.0X1A", ()), ("Y38.811A", ()), ("R45.88", ()), ("Z91.52", ()),
    # §2.5 pregnancy, with the §3 exclusions (childbirth / puerperium leaves, O15.1) and end markers
    ("Z33.1", ("pregnancy",)), ("Z3A.20", ("pregnancy",)), ("O24.410", ("pregnancy",)), ("O60.03", ("pregnancy",)),
    ("O99.311", ("pregnancy",)), ("O09.90", ("pregnancy",)), ("O91.011", ("pregnancy",)),
    ("O10.011", ("pregnancy", "hypertension")),
    ("O24.420", ()), ("O15.1", ()), ("O99.314", ()), ("O9A.12", ()), ("Z33.2", ()), ("Z32.02", ()), ("Z32.01", ()),
    ("O60.12X0", ()), ("O90.3", ()), ("O94", ()),
    ("O10.02", ("hypertension",)),  # excluded from pregnancy, still pre-existing hypertension
    ("O80", ("pregnancy_end",)), ("Z37.0", ("pregnancy_end",)), ("O03.9", ("pregnancy_end",)),
    ("Z39.0", ("pregnancy_end",)), ("O82", ("pregnancy_end",)),
    # §2.6 lactation; not O92.3 agalactia, O92.5 suppressed, O92.6 galactorrhea, P92.5 (infant); O92.4 optional
    ("Z39.1", ("lactation",)), ("O92.79", ("lactation",)), ("O91.03", ("lactation",)), ("O92.13", ("lactation",)),
    ("O92.3", ()), ("O92.5", ()), ("O92.6", ()), ("P92.5", ()), ("O92.4", ()),
    # §2.7 alcohol use disorder: F10 (in remission and F10.9- stay in); not Z81.1, R78.0, T51.0-; K86.0 optional
    ("F10.21", ("alcohol_use_disorder",)), ("F10.90", ("alcohol_use_disorder",)), ("F10.10", ("alcohol_use_disorder",)),
    ("Z81.1", ()), ("R78.0", ()), ("K86.0", ()),
    ("K70.30", ("chronic_liver_disease",)),  # alcoholic liver disease is §2.3
    # §2.8 angle closure / narrow angles: H40.2, H40.03, H40.06; not suspects, ocular hypertension, open angle, H40.83
    ("H40.2231", ("angle_closure_glaucoma",)), ("H40.033", ("angle_closure_glaucoma",)),
    ("H40.063", ("angle_closure_glaucoma",)), ("H40.20X0", ("angle_closure_glaucoma",)),
    ("H40.013", ()), ("H40.053", ()), ("H40.1111", ()), ("Q15.0", ()), ("H40.831", ()),
    # §2.9 hyponatremia (history-of) and volume depletion (current)
    ("E87.1", ("hyponatremia",)), ("E22.2", ("hyponatremia",)), ("E86.0", ("volume_depletion",)),
    ("E87.0", ()), ("E87.70", ()),
    # §2.10 ESRD, dialysis, kidney transplant, CKD 1-4
    ("N18.6", ("esrd",)), ("N18.5", ("esrd",)), ("I12.0", ("esrd", "hypertension")), ("I13.11", ("esrd", "hypertension")),
    ("Z99.2", ("dialysis",)), ("Z49.32", ("dialysis",)), ("Z91.158", ("dialysis",)), ("Z91.15", ("dialysis",)),
    ("Z94.0", ("kidney_transplant",)), ("Z48.22", ("kidney_transplant",)), ("T86.12", ("kidney_transplant",)),
    ("Z94.1", ()), ("N17.9", ()), ("N19", ()),
    ("N18.4", ("ckd_stage_4",)), ("N18.32", ("ckd",)), ("N18.1", ("ckd",)), ("N18.3", ("ckd",)),
    ("I13.10", ("ckd", "hypertension")), ("I12.9", ("ckd", "hypertension")),
    # §2.11 hypertension; I16 also V3; not I27 pulmonary, K76.6 portal, H40.05 ocular, G93.2, P29.2, R03.0
    ("I10", ("hypertension",)), ("I1A.0", ("hypertension",)), ("I15.0", ("hypertension",)),
    ("O11.1", ("pregnancy", "hypertension")), ("O11.4", ("hypertension",)),
    ("I16.1", ("hypertensive_crisis", "hypertension")),
    ("I27.20", ()), ("G93.2", ()), ("P29.2", ()), ("R03.0", ()), ("O13.1", ("pregnancy",)),
    ("K76.6", ("chronic_liver_disease",)),
]


@pytest.mark.parametrize("code, expected", ICD_CASES, ids=[c for c, _ in ICD_CASES])
def test_icd10cm_family(kb, code, expected):
    assert kb.condition_categories(ICD, code) == expected
    assert kb.condition_category(ICD, code) == (expected[0] if expected else None)


SNOMED_CASES = [
    ("13746004", "bipolar_mania"), ("85248005", "bipolar_mania"), ("231496004", "bipolar_mania"),
    ("84757009", "seizure"), ("19598007", "seizure"), ("230456007", "seizure"), ("313307000", "seizure"),
    ("91175000", "seizure"),
    ("197279005", "chronic_liver_disease"), ("128302006", "chronic_liver_disease"), ("408335007", "chronic_liver_disease"),
    ("41309000", "chronic_liver_disease"), ("59927004", "hepatic_failure"),
    ("6471006", "suicidality"), ("425104003", "suicidality"), ("304594002", "suicidality"), ("271982007", "suicidality"),
    ("77386006", "pregnancy"), ("47200007", "pregnancy"), ("41587001", "pregnancy"), ("169560008", "pregnancy"),
    ("866041003", "lactation"), ("169750002", "lactation"), ("69840006", "lactation"),
    ("7200002", "alcohol_use_disorder"), ("191480000", "alcohol_use_disorder"), ("191813001", "alcohol_use_disorder"),
    ("392291006", "angle_closure_glaucoma"), ("65460003", "angle_closure_glaucoma"),
    ("33647009", "angle_closure_glaucoma"), ("444863008", "angle_closure_glaucoma"),
    ("34095006", "volume_depletion"),
    ("46177005", "esrd"), ("236434000", "esrd"), ("714152005", "esrd"),
    ("105502003", "dialysis"), ("714749008", "dialysis"), ("238318009", "dialysis"),
    ("236436003", "kidney_transplant"), ("161665007", "kidney_transplant"), ("58797008", "kidney_transplant"),
    ("70536003", "kidney_transplant"),
    ("38341003", "hypertension"), ("31992008", "hypertension"), ("1201005", "hypertension"), ("64715009", "hypertension"),
    ("706882009", "hypertensive_crisis"), ("443482000", "hypertensive_crisis"),
]


@pytest.mark.parametrize("code, category", SNOMED_CASES, ids=[c for c, _ in SNOMED_CASES])
def test_snomed_members(kb, code, category):
    assert kb.condition_categories(SNOMED_URI, code) == (category,)


@pytest.mark.parametrize("code, why", [
    ("4210003", "ocular hypertension (V DHT over-matches)"), ("34742003", "portal hypertension"),
    ("68267002", "benign intracranial hypertension"), ("70995007", "pulmonary hypertension"),
    ("82313006", "suicide attempt: NOT VERIFIED"), ("89627008", "hyponatremia: NOT VERIFIED"),
    ("111513000", "open-angle glaucoma"),
])
def test_snomed_never_matched(kb, code, why):
    assert kb.condition_categories(SNOMED_URI, code) == (), why


def test_not_verified_codes_are_in_no_file():
    for name in ("conditions.csv", "observations.csv", "result_values.csv", "forms.json"):
        text = (KDIR / name).read_text(encoding="utf-8")
        assert "82313006" not in text and "89627008" not in text, name


@pytest.mark.parametrize("system, code, expected", [
    (ICD, "F31.9", "bipolar_mania"), (ICD, "F319", "bipolar_mania"), (ICD, "f31.9", "bipolar_mania"),
    (ICD, " T43.222A ", "suicidality"), (ICD, "t43222a", "suicidality"),
    ("http://hl7.org/fhir/sid/icd-10", "O24.410", "pregnancy"),
    ("urn:oid:2.16.840.1.113883.6.90", "N186", "esrd"), ("URN:OID:2.16.840.1.113883.6.90", "Z99.2", "dialysis"),
    (ICD + "/", "E87.1", "hyponatremia"),
    (SNOMED_URI, "85248005", "bipolar_mania"), ("urn:oid:2.16.840.1.113883.6.96", "85248005", "bipolar_mania"),
    ("http://snomed.info/sct/", "59927004", "hepatic_failure"),
    ("http://www.cms.gov/Medicare/Coding/ICD10", "5A1D70Z", "dialysis"),
    ("urn:oid:2.16.840.1.113883.6.4", "5A1D90Z", "dialysis"),
    ("http://www.ama-assn.org/go/cpt", "90935", "dialysis"), ("urn:oid:2.16.840.1.113883.6.12", "90947", "dialysis"),
    ("http://example.org/local", "F31.9", None), (SNOMED_URI, "F31.9", None), (ICD, "85248005", None),
    (None, "F31.9", None), (ICD, "", None),
])
def test_system_and_code_aliases(kb, system, code, expected):
    assert kb.condition_category(system, code) == expected


def test_token_search_codes_leave_families_and_exclusions_out(kb):
    assert "O24.420" not in kb.codes_in_category("pregnancy", "icd10cm", include_prefixes=True)
    assert "Z33.1" in kb.codes_in_category("pregnancy", "icd10cm")
    assert "O09" not in kb.codes_in_category("pregnancy", "icd10cm")
    assert "O09" in kb.codes_in_category("pregnancy", "icd10cm", include_prefixes=True)
    assert "T43" in kb.codes_in_category("suicidality", ICD, include_prefixes=True)
    assert set(kb.codes_in_category("dialysis", "cpt")) == {"90935", "90937", "90945", "90947"}


# --- history-of versus current (code-families.md §5) -----------------------------------------------

@pytest.mark.parametrize("category, counts, window", [
    ("bipolar_mania", "history-of", None), ("seizure", "history-of", None), ("suicidality", "history-of", None),
    ("chronic_liver_disease", "history-of", None), ("hepatic_failure", "current", None),
    ("alcohol_use_disorder", "history-of", None), ("angle_closure_glaucoma", "history-of", None),
    ("hyponatremia", "history-of", None), ("volume_depletion", "current", 30),
    ("hypertension", "current", None), ("hypertensive_crisis", "current", None),
    ("esrd", "current", None), ("dialysis", "current", None),
    ("pregnancy", "current", 304), ("lactation", "current", 365),
])
def test_category_counts_as(kb, category, counts, window):
    info = kb.categories[category]
    assert info.counts == counts
    assert (kb.thresholds[info.window] if info.window else None) == window


def test_pregnancy_is_closed_by_an_end_marker(kb):
    assert kb.categories["pregnancy"].closed_by == "pregnancy_end"
    assert all(info.closed_by is None for name, info in kb.categories.items() if name != "pregnancy")


def test_every_category_is_described_and_used():
    described = list(json.loads((KDIR / "condition_categories.json").read_text(encoding="utf-8"))["categories"])
    with open(KDIR / "conditions.csv", newline="", encoding="utf-8") as f:
        used = {row["category"] for row in csv.DictReader(f)}
    assert set(described) == used


# --- labs, scores, cut-offs, result values, form words ---------------------------------------------

@pytest.mark.parametrize("loinc, kind", [
    ("1742-6", "alt"), ("1743-4", "alt"), ("1744-2", "alt"), ("76625-3", "alt"), ("77144-4", "alt"),
    ("1920-8", "ast"), ("30239-8", "ast"), ("88112-8", "ast"),
    ("2951-2", "sodium"), ("2947-0", "sodium"), ("32717-1", "sodium"), ("39791-9", "sodium"), ("41657-8", "sodium"),
    ("77139-4", "sodium"),
    ("2106-3", "hcg_qualitative"), ("2118-8", "hcg_qualitative"), ("80384-1", "hcg_qualitative"),
    ("80385-8", "hcg_qualitative"), ("2110-5", "hcg_qualitative"), ("2112-1", "hcg_qualitative"),
    ("19080-1", "hcg_quantitative"), ("83086-9", "hcg_quantitative"), ("25372-4", "hcg_quantitative"),
    ("21198-7", "hcg_quantitative"), ("20415-6", "hcg_quantitative"), ("45194-8", "hcg_quantitative"),
    ("2119-6", "hcg_other_units"), ("99104-2", "hcg_other_units"), ("20994-0", "hcg_interpretation"),
    ("75626-2", "audit_c_total"),
])
def test_lab_and_score_codes(kb, loinc, kind):
    assert kb.observation_kinds[loinc] == kind


@pytest.mark.parametrize("loinc", ["19180-9", "25373-2", "2115-4", "55870-0", "2113-9", "56497-1"])
def test_hcg_codes_the_reference_leaves_out(kb, loinc):
    assert loinc not in kb.observation_kinds


@pytest.mark.parametrize("name, value, source_key", [
    ("alt_default_uln_male", 33, "ACG"), ("alt_default_uln_female", 25, "ACG"),
    ("alt_default_uln_sex_unknown", 25, "design"), ("ast_default_uln", 40, "design"),
    ("enzyme_u_l_per_ukat_l", 60, "CF"),
    ("hcg_quantitative_positive_iu_l", 25, "HCG"), ("hcg_quantitative_negative_below_iu_l", 5, "design"),
    ("audit_c_positive_male", 4, "AUD"), ("audit_c_positive_female", 3, "AUD"),
    ("audit_c_positive_sex_unknown", 3, "design"), ("audit_c_window_days", 365, "design"),
    ("pregnancy_condition_window_days", 304, "design"), ("lactation_condition_window_days", 365, "design"),
    ("volume_depletion_window_days", 30, "design"),
])
def test_new_thresholds(kb, name, value, source_key):
    assert {**kb.thresholds, **kb.constants}[name] == value
    assert json.loads((Path(knowledge_package.__file__).parent / "thresholds.json").read_text())[name]["source"] \
        .startswith(source_key)


@pytest.mark.parametrize("system, code, meaning", [
    (SNOMED_URI, "10828004", "positive"), (SNOMED_URI, "260373001", "positive"),
    (SNOMED_URI, "260385009", "negative"), (SNOMED_URI, "260415000", "negative"),
    (SNOMED_URI, "42425007", "indeterminate"), (SNOMED_URI, "419984006", "indeterminate"),
    (SNOMED_URI, "82334004", "indeterminate"),
    ("http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation", "POS", "positive"),
    ("http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation", "NEG", None),
    (SNOMED_URI, "77386006", None), ("http://example.org", "10828004", None),
])
def test_result_values(kb, system, code, meaning):
    assert kb.result_meaning(system, code) == meaning


@pytest.mark.parametrize("form, group, words, not_words", [
    ("topical_nsaid", "nsaid", {"gel", "cream", "patch", "topical solution", "medicated patch"}, {"oral solution"}),
    ("epinephrine_auto_injector", "catecholamine", {"auto-injector", "autoinjector", "epipen"}, set()),
    ("heparin_flush_lock", "anticoagulant", {"flush", "catheter lock", "hep-lock", "posiflush"}, set()),
])
def test_form_words(kb, form, group, words, not_words):
    assert isinstance(kb.form_words[form], tuple) and isinstance(kb.form_not_words[form], tuple)
    assert words <= set(kb.form_words[form])
    assert not_words <= set(kb.form_not_words[form])
    assert kb.form_applies_to[form] == (group,)
    assert all(w == w.strip().lower() for w in kb.form_words[form])
    assert kb.form_sources[form]


def test_plain_solution_and_spray_are_not_topical_words(kb):
    assert "solution" not in kb.form_words["topical_nsaid"] and "spray" not in kb.form_words["topical_nsaid"]


def test_form_words_match_the_product_table(kb):
    """Every topical NSAID dose form and auto-injector / flush product of products.csv is named by a form word."""
    with open(KDIR / "products.csv", newline="", encoding="utf-8") as f:
        products = list(csv.DictReader(f))
    for row in products:
        ingredient = kb.ingredients[row["ingredient_rxcui"]]
        name = row["product_name"]
        if ingredient.group == "nsaid" and row["route_hint"] == "topical":
            assert row["dose_form"] in kb.form_words["topical_nsaid"], name
        if ingredient.name == "epinephrine" and row["dose_form"] == "auto-injector":
            assert any(w in name for w in kb.form_words["epinephrine_auto_injector"]), name
        if ingredient.name == "heparin" and ("flush" in name or "lock" in name):
            assert any(w in name for w in kb.form_words["heparin_flush_lock"]), name


# --- the loader: exclusions and consistency checks ------------------------------------------------

def _copy_with_rows(tmp_path: Path, extra_rows: list[str]) -> Path:
    target = tmp_path / "knowledge"
    shutil.copytree(KDIR, target, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    with open(target / "conditions.csv", "a", encoding="utf-8") as f:
        f.writelines(row + "\n" for row in extra_rows)
    return target


def test_an_exclusion_takes_codes_out_of_its_own_category_only(tmp_path):
    kb = load_knowledge(_copy_with_rows(tmp_path, [
        "icd10cm,F31.7,exclude_prefix,test,bipolar_mania,design (test)",
        "icd10cm,I12.0,exclude,test,hypertension,design (test)",
    ]))
    assert kb.condition_categories(ICD, "F31.71") == ()
    assert kb.condition_categories(ICD, "F31.9") == ("bipolar_mania",)
    assert kb.condition_categories(ICD, "I12.0") == ("esrd",)  # still ESRD
    assert kb.condition_categories(ICD, "I12.9") == ("ckd", "hypertension")


@pytest.mark.parametrize("row, message", [
    ("icd10cm,F20.9,exclude,test,bipolar_mania,design (test)", "excludes nothing"),
    ("icd10cm,F31,prefix,test,bipolar_mania,design (test)", "duplicate"),
    ("icd10cm,F99,exact,test,no_such_category,design (test)", "category"),
    ("icd10cm,F99,range,test,bipolar_mania,design (test)", "unknown match"),
    ("snomed,123,prefix,test,bipolar_mania,design (test)", "ICD-10-CM only"),
    ("loinc,123,exact,test,bipolar_mania,design (test)", "unknown system"),
])
def test_loader_rejects_bad_rows(tmp_path, row, message):
    with pytest.raises(ValueError, match=message):
        load_knowledge(_copy_with_rows(tmp_path, [row]))


def test_no_exact_icd_row_is_already_covered_by_its_own_family():
    with open(KDIR / "conditions.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    families = {(r["category"], r["code"].replace(".", "")) for r in rows
                if r["system"] == "icd10cm" and r["match"] == "prefix"}
    for r in rows:
        if r["system"] == "icd10cm" and r["match"] == "exact":
            code = r["code"].replace(".", "")
            covered = [p for cat, p in families if cat == r["category"] and code.startswith(p)]
            assert not covered, (r["code"], r["category"], covered)


# --- against the CMS FY2026 tabular (simple-icd-10-cm 1.5.0) ---------------------------------------

@pytest.fixture(scope="module")
def cms(kb):
    """(the package, {billable leaf without dot: its categories}) for every FY2026 leaf."""
    icd = pytest.importorskip("simple_icd_10_cm", reason="simple-icd-10-cm 1.5.0 (CMS FY2026 tabular) not installed")
    codes = [code for code in icd.get_all_codes(with_dots=False)
             if "-" not in code and not code.isdigit()]  # chapters are numbers, blocks ranges (fast filter)
    leaves = {code: kb.condition_categories(ICD, code) for code in codes if icd.is_leaf(code)}
    return icd, leaves


def _leaves_in(kb, leaves, category):
    return {leaf for leaf, categories in leaves.items() if category in categories}


def test_every_icd_code_is_a_cms_item(kb, cms):
    icd, _ = cms
    with open(KDIR / "conditions.csv", newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r["system"] == "icd10cm"]
    for r in rows:
        assert icd.is_valid_item(r["code"]), r["code"]
        if r["match"] in ("exact", "exclude"):
            assert icd.is_leaf(r["code"]), r["code"]
    for code, _ in ICD_CASES:
        assert icd.is_valid_item(code), code


@pytest.mark.parametrize("categories, count", [
    (("bipolar_mania",), 37), (("seizure",), 60), (("chronic_liver_disease",), 45), (("hepatic_failure",), 11),
    (("suicidality",), 1100), (("pregnancy",), 1931), (("lactation",), 8), (("alcohol_use_disorder",), 58),
    (("angle_closure_glaucoma",), 45), (("esrd", "dialysis"), 12), (("hypertension",), 60),
])
def test_leaf_counts_match_the_reference(kb, cms, categories, count):
    _, leaves = cms
    found = set().union(*(_leaves_in(kb, leaves, category) for category in categories))
    assert len(found) == count


def test_pregnancy_exclusions_are_the_childbirth_and_puerperium_leaves(kb, cms):
    icd, leaves = cms
    with open(KDIR / "conditions.csv", newline="", encoding="utf-8") as f:
        excluded = {r["code"].replace(".", "") for r in csv.DictReader(f)
                    if r["category"] == "pregnancy" and r["match"] == "exclude"}
    assert len(excluded) == 124 and excluded <= set(leaves)
    words = ("childbirth", "puerperium")
    # every exclusion is a leaf titled childbirth or puerperium, plus O15.1 Eclampsia complicating labor
    assert {leaf for leaf in excluded if not any(w in icd.get_description(leaf).lower() for w in words)} == {"O151"}
    # and no leaf so titled is left in the pregnancy family
    assert not [leaf for leaf in _leaves_in(kb, leaves, "pregnancy")
                if any(w in icd.get_description(leaf).lower() for w in words)]


def test_intent_rule_selects_exactly_the_self_harm_leaves(kb, cms):
    icd, leaves = cms
    poisoning = [leaf for leaf in leaves if leaf[:3] == "T71" or "T36" <= leaf[:3] <= "T65"]
    titled = {leaf for leaf in poisoning if "intentional self-harm" in icd.get_description(leaf).lower()}
    matched = {leaf for leaf in poisoning if "suicidality" in leaves[leaf]}
    assert len(titled) == 966
    assert matched == titled

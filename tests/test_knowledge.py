"""Tests for cds_service.knowledge: data-file provenance, exclusions and the loader's indexes."""

from __future__ import annotations

import csv
import json
import re
import time
from pathlib import Path

import pytest

from cds_service.fhir.vocabulary import ICD10CM as ICD10CM_URI
from cds_service.fhir.vocabulary import SNOMED as SNOMED_URI
from cds_service.knowledge import default_knowledge
from cds_service.knowledge import load_knowledge
from cds_service.knowledge import source_keys

KDIR = Path(__file__).resolve().parent.parent / "cds_service" / "knowledge"
CSV_FILES = ["ingredients.csv", "products.csv", "milnacipran_codes.csv", "observations.csv", "conditions.csv",
             "result_values.csv"]

REQUIRED_THRESHOLDS = [
    "crcl_esrd_below", "crcl_severe_below", "crcl_moderate_below", "renal_max_daily_mg", "renal_target_daily_mg",
    "renal_target_dose_mg", "renal_max_dose_mg", "max_daily_mg", "max_single_dose_mg", "usual_maintenance_daily_mg",
    "maoi_washout_days", "linezolid_methylene_blue_window_hours", "new_start_lookback_days", "scr_current_days",
    "scr_usable_days", "weight_current_days", "weight_usable_days", "height_usable_days", "scr_unstable_delta_mg_dl",
    "scr_unstable_window_hours", "bp_hr_window_days", "sbp_uncontrolled", "dbp_uncontrolled", "sbp_severe",
    "dbp_severe", "heart_rate_tachycardia_above", "bp_rise_sbp_mmhg", "hr_rise_bpm", "elderly_age",
    "young_adult_max_age", "adult_age", "alt_ast_uln_multiple", "bilirubin_uln_multiple", "liver_tests_window_days",
    "sodium_low_below", "sodium_window_days", "hcg_positive_window_days", "creatinine_umol_per_mg_dl",
    "cm_per_inch", "ibw_male_base_kg", "ibw_female_base_kg", "ibw_kg_per_inch_over_60", "female_crcl_factor",
    "bmi_underweight_below", "bmi_overweight_from", "adjusted_weight_fraction",
    "stopped_med_unknown_date_recent_days",
]


def _rows(name: str) -> list[dict[str, str]]:
    with open(KDIR / name, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _json(name: str):
    with open(KDIR / name, encoding="utf-8") as f:
        return json.load(f)


@pytest.fixture(scope="module")
def kb():
    return load_knowledge()


@pytest.fixture(scope="module")
def source_key_set() -> set[str]:
    return set(_json("sources.json"))


def _segments(cell: str) -> list[str]:
    """Split a source cell at top-level ';' (not inside parentheses)."""
    parts, depth, current = [], 0, ""
    for ch in cell:
        depth += ch == "("
        depth -= ch == ")"
        if ch == ";" and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    return parts + [current]


def _assert_sourced(cell: str, keys: set[str], where: str) -> None:
    """The cell, and every top-level '; ' segment of it, starts with known source key(s)."""
    assert cell and cell.strip(), f"{where}: empty source"
    for segment in _segments(cell):
        leading = source_keys(segment)
        assert leading, f"{where}: segment {segment!r} does not start with a source key"
        unknown = [k for k in leading if k not in keys]
        assert not unknown, f"{where}: unknown source key(s) {unknown} in {cell!r}"


# --- provenance -------------------------------------------------------------------------------

def test_sources_json_has_all_reference_keys(source_key_set):
    expected = {"L-DM", "L-SrLC", "L-TOC", "L-RX", "L-ML", "L-MPR", "L-MS", "L-IX", "L-GRX", "K", "D", "C", "V",
                "P", "O", "W", "F", "U", "DIC", "CH", "VUL", "MDC", "RXP", "ADD", "design"}
    assert expected <= source_key_set
    assert all(isinstance(v, str) and v.strip() for v in _json("sources.json").values())


@pytest.mark.parametrize("name", CSV_FILES)
def test_every_csv_row_has_known_source(name, source_key_set):
    rows = _rows(name)
    assert rows
    for i, row in enumerate(rows, start=2):
        _assert_sourced(row["source"], source_key_set, f"{name}:{i}")


def test_thresholds_and_overrides_are_sourced(source_key_set):
    for name, spec in _json("thresholds.json").items():
        _assert_sourced(spec["source"], source_key_set, f"thresholds.json:{name}")
    _assert_sourced(_json("override_reasons.json")["source"], source_key_set, "override_reasons.json")
    for name, spec in _json("condition_categories.json")["categories"].items():
        _assert_sourced(spec["source"], source_key_set, f"condition_categories.json:{name}")
    for name, spec in _json("forms.json")["forms"].items():
        _assert_sourced(spec["source"], source_key_set, f"forms.json:{name}")


def test_source_keys_parser():
    assert source_keys("D,C") == ("D", "C")
    assert source_keys("V: v2022/condition.py VS End Stage Renal Disease") == ("V",)
    assert source_keys("L-RX 2.2") == ("L-RX",)
    assert source_keys("design (kb §2.4)") == ("design",)
    assert source_keys("") == ()


# --- exclusions ----------------------------------------------------------------------------------

def test_not_verified_codes_absent(kb):
    assert "258326" not in kb.ingredients
    assert not any(r["rxcui"] == "258326" for r in _rows("ingredients.csv"))
    assert not any(r["ingredient_rxcui"] == "258326" for r in _rows("products.csv"))
    assert not any(r["code"] == "82313006" for r in _rows("conditions.csv"))
    assert kb.condition_category(SNOMED_URI, "82313006") is None
    for name in CSV_FILES:
        text = (KDIR / name).read_text(encoding="utf-8")
        assert "82313006" not in text and "258326" not in text, name


def test_no_open_angle_glaucoma(kb):
    assert kb.condition_category(SNOMED_URI, "111513000") is None
    assert not any(r["code"] == "111513000" for r in _rows("conditions.csv"))
    for row in _rows("conditions.csv"):
        if row["category"] == "angle_closure_glaucoma":
            assert "open" not in row["display"].lower(), row
            if row["system"] == "icd10cm":
                assert row["code"].startswith(("H40.2", "H40.03", "H40.06")), row
    assert kb.condition_category(ICD10CM_URI, "H40.11X0") is None  # primary open-angle


def test_tryptophan_products_limited_to_single_ingredient_oral():
    rows = [r for r in _rows("products.csv") if r["ingredient_rxcui"] == "10898"]
    assert rows
    assert all(r["ingredient_count"] == "1" and r["route_hint"] == "oral" for r in rows)


# --- spot checks ---------------------------------------------------------------------------------

def test_sertraline_tablet_resolves_to_ssri(kb):
    [rxcui] = [r["product_rxcui"] for r in _rows("products.csv")
               if r["product_name"] == "sertraline 50 mg oral tablet"]
    [pi] = kb.product_ingredients[rxcui]
    assert pi.ingredient.name == "sertraline" and pi.ingredient.group == "ssri"
    assert pi.route_hint == "oral"


def test_titration_pack(kb):
    assert kb.milnacipran_codes["833151"].titration_pack is True
    assert kb.milnacipran_codes["833150"].titration_pack is True
    assert kb.milnacipran_codes["833135"].titration_pack is False
    assert kb.milnacipran_codes["833135"].strength_mg == 100.0
    assert kb.milnacipran_codes["833141"].strength_mg == 12.5
    assert kb.milnacipran_codes["833151"].strength_mg is None
    assert {"410839", "410840", "30003", "833136"} <= set(kb.milnacipran_codes)


def test_transdermal_selegiline(kb):
    transdermal = [pi for pis in kb.product_ingredients.values() for pi in pis
                   if pi.ingredient.rxcui == "9639" and pi.route_hint == "transdermal"]
    assert transdermal
    assert all(pi.ingredient.group == "maoi_psychiatric" for pi in transdermal)


def test_ingredient_groups(kb):
    assert kb.ingredients["588250"].group == "milnacipran"
    assert kb.ingredients["1433212"].group == "levomilnacipran"
    assert kb.ingredients["190376"].group == "linezolid"
    assert kb.ingredients["6878"].group == "methylene_blue"
    assert kb.ingredients["787390"].group == "serotonergic_opioid"
    assert kb.ingredients["3992"].group == "catecholamine"
    assert kb.ingredients["10898"].group == "other_serotonergic"
    assert set(kb.ingredients) == {r["rxcui"] for r in _rows("ingredients.csv")}
    assert "" not in kb.ingredients  # text-only pseudo-ingredients (St John's wort, lithium) stay out


@pytest.mark.parametrize("system, code", [
    (ICD10CM_URI, "H40.2230"),
    (ICD10CM_URI, "H402230"),
    (ICD10CM_URI, "H40.061"),
    (ICD10CM_URI, "h40.033"),
    ("http://hl7.org/fhir/sid/icd-10", "H40.241"),
    (SNOMED_URI, "392288006"),
])
def test_angle_closure_codes(kb, system, code):
    assert kb.condition_category(system, code) == "angle_closure_glaucoma"


def test_condition_categories(kb):
    assert kb.condition_category(ICD10CM_URI, "N18.6") == "esrd"
    assert kb.condition_category("urn:oid:2.16.840.1.113883.6.90", "N186") == "esrd"
    assert kb.condition_category(ICD10CM_URI, "N18.4") == "ckd_stage_4"
    assert kb.condition_category(ICD10CM_URI, "Z91.151") == "dialysis"
    assert kb.condition_category(ICD10CM_URI, "Z91.15") == "dialysis"
    assert kb.condition_category(SNOMED_URI, "236435004") == "esrd"
    assert kb.condition_category(SNOMED_URI, "302497006") == "dialysis"
    assert kb.condition_category(SNOMED_URI, "91175000") == "seizure"
    assert kb.condition_category(ICD10CM_URI, "I16.1") == "hypertensive_crisis"
    assert kb.condition_category(ICD10CM_URI, "E87.1") == "hyponatremia"
    assert kb.condition_category("http://example.org/other", "N18.6") is None
    assert kb.condition_category(SNOMED_URI, "N18.6") is None
    assert {"265764009", "302497006", "71192002", "714749008", "238318009"} <= set(kb.snomed_codes_in_category("dialysis"))


def test_observations(kb):
    assert kb.observation_kinds["2160-0"] == "creatinine_mass"
    assert kb.observation_kinds["14682-9"] == "creatinine_molar"
    assert kb.observation_kinds["2164-2"] == "crcl_measured"
    assert kb.egfr_preference["98979-8"] < kb.egfr_preference["33914-3"]
    assert min(kb.egfr_preference, key=kb.egfr_preference.get) == "98979-8"
    assert set(kb.egfr_preference) == {loinc for loinc, kind in kb.observation_kinds.items() if kind == "egfr"}


def test_text_matching(kb):
    found = [ing for ing, _ in kb.ingredients_in_text(
        "St. John\u2019s Wort 300 mg, lithium carbonate, Fetzima, dextroamphetamine")]
    assert [i.name for i in found] == ["st john's wort", "lithium carbonate", "levomilnacipran", "dextroamphetamine"]
    assert found[0].rxcui == "" and found[0].group == "other_serotonergic"
    assert kb.text_names["hypericum"][0][0].group == "other_serotonergic"
    assert kb.text_names["savella"][0][0].rxcui == "588250"
    assert kb.ingredients_in_text("levomilnacipran") == ((kb.ingredients["1433212"], None),)


@pytest.mark.parametrize("text, ingredient, route", [
    ("NARDIL 15 MG TAB", "phenelzine", "oral"), ("Parnate 10 mg", "tranylcypromine", "oral"),
    ("Emsam 6 mg/24 hr patch", "selegiline", "transdermal"), ("Zyvox 600 mg IV", "linezolid", None),
    ("ProvayBlue 5 mg/mL", "methylene blue", "injectable"), ("Uribel capsule", "methylene blue", "oral"),
])
def test_brand_names_from_the_product_table_carry_their_route(kb, text, ingredient, route):
    [(found, found_route)] = [(i, r) for i, r in kb.ingredients_in_text(text) if i.name == ingredient]
    assert found_route == route


def test_thresholds(kb):
    for name in REQUIRED_THRESHOLDS:
        assert name in kb.thresholds or name in kb.constants, name
        assert isinstance({**kb.thresholds, **kb.constants}[name], float)
        assert _json("thresholds.json")[name]["source"]
    assert kb.thresholds["crcl_severe_below"] == 30
    assert kb.thresholds["maoi_washout_days"] == 14
    assert kb.thresholds["hcg_positive_window_days"] == 273
    assert _json("thresholds.json")["sbp_uncontrolled"]["source"].startswith("design")


def test_override_reasons_and_version(kb):
    assert kb.version == _json("manifest.json")["version"]
    assert re.fullmatch(r"\d{4}\.\d{1,2}\.\d+", kb.version)
    codes = [r["code"] for r in kb.override_reasons]
    assert "cross-titration" in codes and len(codes) == len(set(codes))
    assert codes == [r["code"] for r in _json("override_reasons.json")["reasons"]]
    assert all(r["system"] == "https://milnacipran-cds.example.org/override-reason" for r in kb.override_reasons)


def test_load_time_and_default_cache():
    start = time.perf_counter()
    kb = load_knowledge()
    elapsed = time.perf_counter() - start
    assert kb.version
    assert elapsed < 1.0  # target < 50 ms; generous bound for slow CI
    assert default_knowledge() is default_knowledge()

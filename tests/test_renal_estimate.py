"""Cockcroft-Gault and the renal estimate: weight basis, units, sex unknown, eGFR, staleness (kb §2)."""

from collections import ChainMap

import pytest
from builders import KNOWLEDGE
from builders import MATCHER
from builders import NOW
from builders import days_ago
from builders import orders

from cds_service.chart.source import Chart
from cds_service.snapshot import build_snapshot
from cds_service.snapshot.creatinine_clearance import cockcroft_gault
from cds_service.snapshot.creatinine_clearance import dosing_weight

T = ChainMap(KNOWLEDGE.constants, KNOWLEDGE.thresholds)  # as the snapshot reads them


@pytest.mark.parametrize("age, weight, scr, female, expected", [
    (40, 70, 1.0, False, 97.22),     # (140-40)*70/(72*1.0)
    (40, 70, 1.0, True, 82.64),      # x 0.85
    (80, 60, 2.0, False, 25.0),      # (60*60)/(144)
    (72, 60, 2.1, True, 22.94),      # kb worked example shape
    (18, 50, 0.5, False, 169.44),
])
def test_cockcroft_gault(age, weight, scr, female, expected):
    assert cockcroft_gault(age, weight, scr, female, T) == pytest.approx(expected, abs=0.01)


@pytest.mark.parametrize("weight, height, female, basis, used", [
    (45, 170, False, "actual weight", 45.0),                 # BMI 15.6 < 18.5: actual
    (65, 175.26, False, "actual weight", 65.0),              # 69 in, IBW 70.7; BMI 21.2: the lower of IBW and actual
    (75, 175.26, False, "ideal weight", 70.7),               # BMI 24.4: ideal
    (100, 175.26, False, "adjusted weight", 82.42),          # BMI 32.6: 70.7 + 0.4 x (100 - 70.7)
    (80, 160.02, True, "adjusted weight", 63.44),            # 63 in, IBW 52.4; BMI 31.2: 52.4 + 0.4 x 27.6
    (80, None, False, "actual weight", 80.0),                # no height: actual, and the text says so
])
def test_dosing_weight_follows_bmi(weight, height, female, basis, used):
    value, text = dosing_weight(weight, height, female, T)
    assert text.startswith(basis)
    assert value == pytest.approx(used, abs=0.05)
    assert height is not None or "height unavailable" in text


def observation(code, value, unit, days, system="http://loinc.org"):
    return {"resourceType": "Observation", "id": f"o{code}{days}", "status": "final",
            "code": {"coding": [{"system": system, "code": code}]},
            "effectiveDateTime": days_ago(days).isoformat(),
            "valueQuantity": {"value": value, "unit": unit, "code": unit, "system": "http://unitsofmeasure.org"}}


def estimate(*observations, gender="male", birth="1966-01-01"):
    chart = Chart({"resourceType": "Patient", "id": "p1", "gender": gender, "birthDate": birth}, tuple(observations))
    return build_snapshot(chart, orders(), [], MATCHER, NOW, T).renal


SCR = "2160-0"
SCR_MOLAR = "14682-9"
WEIGHT = "29463-7"
HEIGHT = "8302-2"
EGFR_2021 = "98979-8"


def test_units_are_normalised_umol_per_l_lb_and_inches():
    metric = estimate(observation(SCR, 1.2, "mg/dL", 3), observation(WEIGHT, 90, "kg", 3),
                      observation(HEIGHT, 180, "cm", 3))
    imperial = estimate(observation(SCR_MOLAR, 1.2 * 88.4, "umol/L", 3), observation(WEIGHT, 90 / 0.45359237, "[lb_av]", 3),
                        observation(HEIGHT, 180 / 2.54, "[in_i]", 3))
    assert metric.crcl == pytest.approx(imperial.crcl, rel=1e-6)
    assert metric.method == "Cockcroft-Gault"


def test_an_unknown_unit_is_left_out_not_guessed():
    result = estimate(observation(SCR, 1.2, "g/L", 3), observation(WEIGHT, 90, "kg", 3))
    assert result.crcl is None and "'g/L', which the service cannot read" in result.missing[0]


def test_an_unreadable_newest_creatinine_never_falls_back_to_an_older_one():
    result = estimate(observation(SCR, 0.9, "mg/dL", 203), observation(SCR, 450, "mmol/mol", 2),
                      observation(WEIGHT, 70, "kg", 3))
    assert result.crcl is None and "newest result" in result.missing[0]


@pytest.mark.parametrize("unit, value", [("μmol/L", 106.08), ("µmol/L", 106.08), ("umol/L", 106.08),
                                         ("mg/100 mL", 1.2), ("MG/DL", 1.2)])
def test_creatinine_unit_spellings(unit, value):
    result = estimate(observation(SCR_MOLAR if "mol" in unit else SCR, value, unit, 3), observation(WEIGHT, 70, "kg", 3))
    assert "SCr 1.20 mg/dL" in result.inputs[0]


@pytest.mark.parametrize("value", [0, -1.0])
def test_zero_or_negative_values_are_unreadable_not_a_crash(value):
    result = estimate(observation(SCR, 1.0, "mg/dL", 3), observation(WEIGHT, 70, "kg", 3),
                      observation(HEIGHT, value, "cm", 3))
    assert result.crcl == pytest.approx(cockcroft_gault(60, 70, 1.0, False, T))  # height ignored
    assert estimate(observation(SCR, value, "mg/dL", 3), observation(WEIGHT, 70, "kg", 3)).crcl is None


def test_egfr_and_crcl_units_are_converted_or_refused():
    per_second = estimate(observation("2164-2", 0.75, "mL/s", 3))
    assert per_second.crcl == pytest.approx(45)
    assert estimate(observation(EGFR_2021, 0.4, "mL/s/{1.73_m2}", 3), observation(WEIGHT, 70, "kg", 3),
                    observation(HEIGHT, 175, "cm", 3)).crcl == pytest.approx(24 * (175 * 70 / 3600) ** 0.5 / 1.73)
    assert estimate(observation(EGFR_2021, 40, "furlongs", 3)).crcl is None


def test_the_newest_egfr_wins_over_a_preferred_equation_from_months_ago():
    result = estimate(observation(EGFR_2021, 80, "mL/min/{1.73_m2}", 300), observation("62238-1", 20, "mL/min/{1.73_m2}", 1))
    assert result.crcl == 20


def test_an_old_egfr_is_not_compared_with_todays_cockcroft_gault():
    result = estimate(observation(SCR, 0.9, "mg/dL", 1), observation(WEIGHT, 70, "kg", 3),
                      observation(EGFR_2021, 25, "mL/min/{1.73_m2}", 300))
    assert result.method == "Cockcroft-Gault" and result.crcl > 50


def test_sex_unknown_uses_the_lower_female_value_and_says_so():
    male = estimate(observation(SCR, 1.0, "mg/dL", 3), observation(WEIGHT, 70, "kg", 3), gender="male")
    unknown = estimate(observation(SCR, 1.0, "mg/dL", 3), observation(WEIGHT, 70, "kg", 3), gender="unknown")
    assert unknown.crcl == pytest.approx(male.crcl * 0.85)
    assert any("sex unknown" in note for note in unknown.notes)


def test_stale_creatinine_is_used_and_marked_stale():
    result = estimate(observation(SCR, 1.0, "mg/dL", 200), observation(WEIGHT, 70, "kg", 3))
    assert result.crcl is not None and result.stale


def test_creatinine_older_than_a_year_is_not_used():
    result = estimate(observation(SCR, 1.0, "mg/dL", 400), observation(WEIGHT, 70, "kg", 3))
    assert result.crcl is None


def test_unstable_creatinine_uses_the_highest_value():
    result = estimate(observation(SCR, 1.0, "mg/dL", 2), observation(SCR, 1.4, "mg/dL", 1),
                      observation(SCR, 1.1, "mg/dL", 0.5), observation(WEIGHT, 70, "kg", 3))
    assert result.unstable
    assert "SCr 1.40" in result.inputs[0]


def test_egfr_only_is_de_indexed_by_body_surface_area():
    result = estimate(observation(EGFR_2021, 40, "mL/min/{1.73_m2}", 5), observation(WEIGHT, 100, "kg", 3),
                      observation(HEIGHT, 190, "cm", 3))
    bsa = (190 * 100 / 3600) ** 0.5
    assert result.crcl == pytest.approx(40 * bsa / 1.73)
    assert "eGFR" in result.method


def test_egfr_in_a_lower_band_than_cockcroft_gault_wins():
    result = estimate(observation(SCR, 1.0, "mg/dL", 3), observation(WEIGHT, 70, "kg", 3),
                      observation(HEIGHT, 175, "cm", 3), observation(EGFR_2021, 25, "mL/min/{1.73_m2}", 3))
    assert result.crcl < 30 and result.method == "estimated from the lab eGFR"
    assert any("lower band" in note for note in result.notes)


def test_measured_creatinine_clearance_is_preferred_within_the_same_draw():
    result = estimate(observation("2164-2", 82, "mL/min", 3), observation(SCR, 1.0, "mg/dL", 3),
                      observation(WEIGHT, 70, "kg", 3))
    assert result.crcl == 82 and "measured" in result.method  # C-G 77.8 is in the same band


def test_an_older_normal_result_never_hides_a_newer_one_showing_esrd():
    old_measured = estimate(observation("2164-2", 60, "mL/min", 80), observation(SCR, 16, "mg/dL", 2),
                            observation(WEIGHT, 70, "kg", 3))
    assert old_measured.crcl < 5 and old_measured.method == "Cockcroft-Gault"
    assert any("not used, older than the newest result" in note for note in old_measured.notes)
    old_creatinine = estimate(observation(SCR, 0.9, "mg/dL", 170), observation(WEIGHT, 70, "kg", 3),
                              observation(EGFR_2021, 4, "mL/min/{1.73_m2}", 1))
    assert old_creatinine.crcl < 5 and old_creatinine.method == "estimated from the lab eGFR"


def test_no_estimate_under_18():
    result = estimate(observation(SCR, 0.6, "mg/dL", 3), observation(WEIGHT, 50, "kg", 3), birth="2010-05-01")
    assert result.crcl is None


@pytest.mark.parametrize("crcl, band", [
    (4.99, "esrd"), (5.0, "severe"), (29.99, "severe"), (30.0, "moderate"), (49.99, "moderate"), (50.0, "normal"),
])
def test_bands_use_the_unrounded_value(crcl, band):
    from builders import renal
    assert renal(crcl).band(T) == band


def test_loinc_system_spellings_are_read():
    for system in ("urn:oid:2.16.840.1.113883.6.1", "http://loinc.org/", "HTTP://LOINC.ORG"):
        result = estimate(observation(SCR, 1.0, "mg/dL", 3, system=system), observation(WEIGHT, 70, "kg", 3))
        assert result.crcl is not None, system

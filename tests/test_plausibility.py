"""Plausibility before arithmetic (issue 13): a measured input outside its plausible range is never used;
the affected check says which value was implausible and shows it; no card shows an impossible number."""

import json
import math
import re

import pytest
from test_unreadable_chart import NOW

from cds_service import create_app
from cds_service.knowledge import default_knowledge
from cds_service.scenario import build_request

FACTS = {"age": 45, "sex": "female", "weight_kg": 70, "height_cm": 165, "creatinine_mg_dl": 0.8,
         "bp": [(122, 78)], "heart_rate": [72]}
WORDING = "implausible value"


@pytest.fixture(scope="module")
def client():
    return create_app({"require_jwt": False, "log_level": "ERROR"}, clock=lambda: NOW).test_client()


def request_with(**facts):
    return build_request(NOW, {**FACTS, **facts})


def cards_of(client, request):
    response = client.post("/cds-services/milnacipran-order-sign", json=request)
    assert response.status_code == 200, response.get_json()
    return response.get_json()["cards"]


NUMBER = re.compile(r"(?<![\w.])-\d+(?:\.\d+)?\b|\binf\b|\bnan\b", re.IGNORECASE)


def assert_no_impossible_number(cards):
    for card in cards:
        for text in (card["summary"], card.get("detail", "")):
            hits = [m.group(0) for m in NUMBER.finditer(text.replace("–", " ").replace("—", " "))]
            # date ranges like 2026-11-17 are not negative numbers
            hits = [h for h in hits if not re.search(rf"\d{re.escape(h)}", text)]
            assert not hits, (hits, text)


IMPLAUSIBLE = {  # name -> (facts, the value shown)
    "height 1.7 in a centimetre field": ({"height_cm": 1.7}, "height 1.7 cm"),
    "weight 0.07 kg": ({"weight_kg": 0.07}, "weight 0.07 kg"),
    "weight 5000 kg": ({"weight_kg": 5000}, "weight 5000 kg"),
    "creatinine 0.001 mg/dL": ({"creatinine_mg_dl": 0.001}, "serum creatinine 0.001 mg/dL"),
    "creatinine 250 mg/dL": ({"creatinine_mg_dl": 250}, "serum creatinine 250 mg/dL"),
    "born in 1800": ({"age": 226}, "gives 226 years"),
    "heart rate 900": ({"heart_rate": [900]}, "HR 900/min"),
    "systolic 1200": ({"bp": [(1200, 80)]}, "BP 1200/80 mmHg"),
    "diastolic 2": ({"bp": [(120, 2)]}, "BP 120/2 mmHg"),
}


@pytest.mark.parametrize("name", IMPLAUSIBLE, ids=list(IMPLAUSIBLE))
def test_an_implausible_input_is_shown_and_never_used(client, name):
    facts, shown = IMPLAUSIBLE[name]
    cards = cards_of(client, request_with(**facts))
    text = "\n".join(c["summary"] + "\n" + c.get("detail", "") for c in cards)
    assert WORDING in text.lower() or "implausible value" in text, text
    assert shown in text, text
    assert not any(c["indicator"] == "critical" for c in cards), [c["summary"] for c in cards]
    assert_no_impossible_number(cards)
    availability = [c for c in cards if c["source"]["topic"]["code"] == "data-availability"]
    assert availability and "Implausible value not used" in availability[0]["summary"]
    assert "DA2" in rules_of(availability[0])


def rules_of(card) -> list[str]:
    """The rule ids in the card's footer ("_Knowledge 2026.11.4 · rules D0_")."""
    return re.findall(r"rules ([\w, ]+)_", card["detail"])[0].replace(" ", "").split(",")


def test_the_check_that_needed_the_value_names_it(client):
    cards = {c["source"]["topic"]["code"]: c for c in cards_of(client, request_with(weight_kg=0.07))}
    renal = cards["renal-function"]
    assert "implausible value" in renal["summary"] and "weight: the newest result" in renal["detail"]
    cards = {c["source"]["topic"]["code"]: c for c in cards_of(client, request_with(heart_rate=[900]))}
    assert "implausible value" in cards["blood-pressure-heart-rate"]["summary"]


def test_an_implausible_height_does_not_stop_the_estimate(client):
    cards = cards_of(client, request_with(height_cm=1.7, creatinine_mg_dl=3.0, age=70))
    renal = next(c for c in cards if c["source"]["topic"]["code"] == "renal-function")
    assert "severe renal impairment" in renal["summary"] and "actual weight 70.0 kg (height unavailable)" in renal["detail"]
    assert "height: the newest result" in renal["detail"]


@pytest.mark.parametrize("value", [1e308, 0.0, 1e-300, 5000.0])
def test_an_implausible_dose_is_shown_not_computed(client, value):
    request = request_with()
    draft = request["context"]["draftOrders"]["entry"][0]["resource"]
    draft["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["value"] = value
    draft["dosageInstruction"][0]["text"] = "see dose"
    cards = {c["source"]["topic"]["code"]: c for c in cards_of(client, request)}
    dose = cards["dose-titration"]
    assert dose["summary"].startswith("Implausible value in the order's dose") and rules_of(dose) == ["D0"]
    assert "inf" not in json.dumps(dose).lower().replace("info", "")
    assert_no_impossible_number(list(cards.values()))


@pytest.mark.parametrize("number", [b"1e309", b"-1e309", b"1e-400", b"5e-324", b"123456789012345678901234567890"])
def test_numbers_that_overflow_or_underflow_are_refused_at_the_edge(client, number):
    body = json.dumps(request_with()).replace('"value": 165', '"value": NUMBER').replace("NUMBER", number.decode())
    response = client.post("/cds-services/milnacipran-order-sign", data=body, content_type="application/json")
    assert response.status_code == 400
    assert "number" in response.get_json()["issue"][0]["diagnostics"] or \
        "integer" in response.get_json()["issue"][0]["diagnostics"]


def test_every_range_has_a_unit_and_a_source():
    knowledge = default_knowledge()
    raw = json.loads((__import__("pathlib").Path(__file__).parent.parent / "cds_service" / "knowledge"
                      / "plausible_ranges.json").read_text())
    sources = json.loads((__import__("pathlib").Path(__file__).parent.parent / "cds_service" / "knowledge"
                          / "sources.json").read_text())
    for kind in ("creatinine", "weight", "height", "age", "heart_rate", "systolic_bp", "diastolic_bp", "dose_mg"):
        low, high, unit = knowledge.plausible_ranges[kind]
        assert 0 <= low < high and unit and math.isfinite(high)
        assert all(key.strip().split(" ")[0] in sources for key in raw[kind]["source"].split(","))

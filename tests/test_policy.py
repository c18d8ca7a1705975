"""Site policy: overrides of thresholds, indicators and override reasons; invalid policies refuse to start."""

import json

import pytest
from conftest import load_fixture

from cds_service import create_app
from cds_service.policy import PolicyError

REQUEST = "requests/sandbox-order-sign.json"


def app_with_policy(tmp_path, policy):
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(policy) if not isinstance(policy, str) else policy)
    return create_app({"require_jwt": False, "policy_file": str(path)})


def cards(app, request=None):
    response = app.test_client().post("/cds-services/milnacipran-order-sign", json=request or load_fixture(REQUEST))
    return {card["source"]["topic"]["code"]: card for card in response.get_json()["cards"]}


def test_defaults_reproduce_the_reference():
    app = create_app({"require_jwt": False})
    assert set(cards(app)) == {"dose-titration", "suicidality"}


def test_a_policy_can_turn_a_rule_off_or_change_its_indicator(tmp_path):
    app = app_with_policy(tmp_path, {"indicators": {"SU1": "off", "D3": "warning"}})
    result = cards(app)
    assert "suicidality" not in result and result["dose-titration"]["indicator"] == "warning"


def test_a_policy_threshold_changes_the_rule(tmp_path):
    request = load_fixture(REQUEST)
    bp = request["prefetch"]["vitalSigns"]["entry"][0]["resource"]["component"][0]["valueQuantity"]
    bp["value"] = 132
    assert "blood-pressure-heart-rate" not in cards(create_app({"require_jwt": False}), request)
    app = app_with_policy(tmp_path, {"thresholds": {"sbp_uncontrolled": 130}})
    assert cards(app, request)["blood-pressure-heart-rate"]["indicator"] == "warning"


def test_a_policy_replaces_the_override_reasons(tmp_path):
    reasons = [{"system": "https://hospital.example.org/cds-override", "code": "pt-aware", "display": "Patient aware"}]
    app = app_with_policy(tmp_path, {"indicators": {"D3": "warning"}, "overrideReasons": reasons})
    assert cards(app)["dose-titration"]["overrideReasons"] == reasons


@pytest.mark.parametrize("policy, message", [
    ({"thresholds": {"sbp_uncontroled": 130}}, "thresholds.sbp_uncontroled"),
    ({"thresholds": {"sbp_uncontrolled": "high"}}, "thresholds.sbp_uncontrolled"),
    ({"indicators": {"Z9": "info"}}, "indicators.Z9"),
    ({"indicators": {"A2": "loud"}}, "indicators.A2"),
    ({"indicators": {"M1": "off"}}, "indicators.M1: a label contraindication cannot be turned off"),
    ({"overrideReasons": [{"code": "x"}]}, "overrideReasons[0]"),
    ({"overrideReasons": [{"system": "s", "code": "c", "display": "d", "topics": ["renal-function"]}]},
     "overrideReasons: no reason for the topic"),
    ({"cards": {}}, "cards: unknown key"),
    ("{not json", "not valid JSON"),
    ([], "must be a JSON object"),
])
def test_an_invalid_policy_refuses_to_start_naming_the_key(tmp_path, policy, message):
    with pytest.raises(PolicyError, match=message.replace("[", r"\[").replace("]", r"\]")):
        app_with_policy(tmp_path, policy)


def test_a_missing_policy_file_refuses_to_start(tmp_path):
    with pytest.raises(PolicyError, match="CDS_POLICY_FILE"):
        create_app({"require_jwt": False, "policy_file": str(tmp_path / "absent.json")})

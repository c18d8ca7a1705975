"""Site policy: overrides of thresholds, indicators and override reasons; invalid policies refuse to start."""

import json

import pytest
from conftest import load_fixture

from cds_service import create_app
from cds_service.contract import TOPICS
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
    [(topic, card)] = cards(app).items()  # the new start's routine notices, as one card
    assert topic == "dose-titration" and card["summary"].startswith("Starting milnacipran: titrate from 12.5 mg")
    assert "rules D3, SU1" in card["detail"]


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


SITE = "https://hospital.example.org/cds-override"
NOT_MAOI = [topic for topic in TOPICS if topic != "maoi-contraindication"]
CONTRAINDICATION_REASON = {"system": SITE, "code": "record-wrong", "display": "Record is wrong",
                           "topics": ["maoi-contraindication", "renal-function"], "contraindication": True}


def test_a_policy_replaces_the_override_reasons(tmp_path):
    reasons = [{"system": SITE, "code": "pt-aware", "display": "Patient aware", "topics": NOT_MAOI},
               CONTRAINDICATION_REASON]
    app = app_with_policy(tmp_path, {"indicators": {"D3": "warning"}, "overrideReasons": reasons})
    assert cards(app)["dose-titration"]["overrideReasons"] == [{"system": SITE, "code": "pt-aware",
                                                                "display": "Patient aware"}]


def test_a_card_that_cancels_the_order_offers_only_reasons_that_fit_a_contraindication():
    from test_scenarios import FIXTURES_SCENARIOS
    from test_scenarios import run_scenario

    from cds_service.http.components import components
    from cds_service.scenario import load_scenario
    policy = components(create_app({"require_jwt": False})).check.policy
    cancelling = {reason["code"] for reason in policy.override_reasons if reason.get("contraindication")}
    for name, topic in (("18-maoi-phenelzine-active", "maoi-contraindication"),
                        ("07-renal-esrd-by-crcl", "renal-function")):
        [card] = [c for c in run_scenario(load_scenario(FIXTURES_SCENARIOS / f"{name}.json"))
                  if c["source"]["topic"]["code"] == topic]
        codes = {reason["code"] for reason in card["overrideReasons"]}
        assert codes and codes <= cancelling, (name, codes)
        assert "cross-titration" not in codes and "already-tolerating" not in codes


@pytest.mark.parametrize("routine, hook, shown", [
    ("all", "order-sign", True), ("order-select", "order-select", True), ("order-select", "order-sign", False),
    ("off", "order-select", False),
])
def test_the_policy_decides_where_the_routine_notices_of_a_new_start_show(tmp_path, routine, hook, shown):
    request = load_fixture(REQUEST)
    request["hook"] = hook
    app = app_with_policy(tmp_path, {"routineNotices": routine})
    service = "milnacipran-order-select" if hook == "order-select" else "milnacipran-order-sign"
    response = app.test_client().post(f"/cds-services/{service}", json=request).get_json()
    assert any(c["summary"].startswith("Starting milnacipran") for c in response["cards"]) == shown


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
    ({"routineNotices": "sometimes"}, "routineNotices: must be one of all, order-select, off"),
    ({"overrideReasons": [{"system": SITE, "code": "planned", "display": "Cross-titration planned",
                           "topics": ["maoi-contraindication"]}, CONTRAINDICATION_REASON]},
     "does not fit a contraindication, so it cannot be offered on the maoi-contraindication card"),
    ({"overrideReasons": [{"system": SITE, "code": "cross-titration", "display": "Cross-titration planned",
                           "topics": NOT_MAOI, "contraindication": True}, CONTRAINDICATION_REASON]},
     "the knowledge marks this reason unfit"),
    ({"overrideReasons": [{"system": SITE, "code": "ok", "display": "OK", "topics": NOT_MAOI},
                          {**CONTRAINDICATION_REASON, "topics": ["maoi-contraindication"]}]},
     "no reason fit for a contraindication on the topic\\(s\\) renal-function"),
    ("{not json", "not valid JSON"),
    ([], "must be a JSON object"),
])
def test_an_invalid_policy_refuses_to_start_naming_the_key(tmp_path, policy, message):
    with pytest.raises(PolicyError, match=message.replace("[", r"\[").replace("]", r"\]")):
        app_with_policy(tmp_path, policy)


def test_a_missing_policy_file_refuses_to_start(tmp_path):
    with pytest.raises(PolicyError, match="CDS_POLICY_FILE"):
        create_app({"require_jwt": False, "policy_file": str(tmp_path / "absent.json")})

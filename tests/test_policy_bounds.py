"""A policy cannot weaken the label: bounds per threshold, the stricter direction, bands in order, constants fixed.

Also the policy's identity (name + content hash) and ``cds-service policy check``.
"""

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cds_service import create_app
from cds_service.cli import main
from cds_service.knowledge import default_knowledge
from cds_service.knowledge.bounds import default_threshold_bounds
from cds_service.policy import DEFAULT_IDENTITY
from cds_service.policy import PolicyError
from cds_service.scenario import load_scenario

SCENARIOS = Path(__file__).parent.parent / "fixtures" / "scenarios"
SIGN = "/cds-services/milnacipran-order-sign"
BOUNDS = default_threshold_bounds()
KNOWLEDGE = default_knowledge()
# Thresholds whose laxer bound is the label's own number (the bound's source is a label section, "L-...").
LABEL_BOUNDED = sorted(name for name, item in BOUNDS.items()
                       if item.laxer_bound is not None and item.source.startswith("L-"))
CONTRAINDICATIONS = ("maoi_washout_days", "crcl_esrd_below", "linezolid_methylene_blue_window_hours",
                     "stopped_med_unknown_date_recent_days")


def policy_file(tmp_path, content) -> str:
    path = tmp_path / "site-policy.json"
    path.write_text(json.dumps(content))
    return str(path)


def app_with(tmp_path, thresholds, scenario=None, **content):
    clock = None
    if scenario is not None:
        now = load_scenario(SCENARIOS / scenario).now
        clock = lambda: now  # noqa: E731
    path = policy_file(tmp_path, {"thresholds": thresholds, **content})
    return create_app({"require_jwt": False, "policy_file": path}, **({"clock": clock} if clock else {}))


def topics(app, scenario) -> dict[str, str]:
    request = load_scenario(SCENARIOS / scenario).request
    response = app.test_client().post(SIGN, json=request)
    assert response.status_code == 200
    return {card["source"]["topic"]["code"]: card["indicator"] for card in response.get_json()["cards"]}


# -- the knowledge declares the bounds -----------------------------------------------------------

def test_every_tunable_threshold_declares_bounds_around_its_default_and_a_stricter_direction():
    assert set(BOUNDS) == set(KNOWLEDGE.thresholds)
    for name, item in BOUNDS.items():
        assert item.stricter in ("higher", "lower", "neither"), name
        assert item.minimum <= KNOWLEDGE.thresholds[name] <= item.maximum, name
        assert item.source, name
    assert not set(BOUNDS) & set(KNOWLEDGE.constants)


def test_every_bound_names_its_source_by_a_key_of_sources_json():
    keys = set(json.loads((Path(__file__).parent.parent / "cds_service/knowledge/sources.json").read_text()))
    for name, item in BOUNDS.items():
        leading = item.source.split(" ")[0].split(",")
        assert leading and set(leading) <= keys, f"{name}: {item.source}"


@pytest.mark.parametrize("name", CONTRAINDICATIONS)
def test_the_contraindication_thresholds_have_the_label_value_as_their_laxer_bound(name):
    item = BOUNDS[name]
    assert item.stricter == "higher"
    assert item.laxer_bound == ("min", KNOWLEDGE.thresholds[name])


def test_the_renal_bands_are_declared_in_order():
    assert BOUNDS["crcl_esrd_below"].below == "crcl_severe_below"
    assert BOUNDS["crcl_severe_below"].below == "crcl_moderate_below"


# -- refused at start ----------------------------------------------------------------------------

@pytest.mark.parametrize("name", LABEL_BOUNDED)
def test_each_label_threshold_made_laxer_is_refused_naming_the_key_and_the_bound(tmp_path, name):
    item = BOUNDS[name]
    side, bound = item.laxer_bound
    laxer = bound - 1 if side == "min" else bound + 1
    with pytest.raises(PolicyError, match=rf"thresholds\.{name}: {laxer:g} is laxer than the bound {side} {bound:g}"):
        app_with(tmp_path, {name: laxer})


@pytest.mark.parametrize("policy, message", [
    ({"maoi_washout_days": 0}, r"thresholds\.maoi_washout_days: 0 is laxer than the bound min 14"),
    ({"crcl_esrd_below": 0}, r"thresholds\.crcl_esrd_below: 0 is laxer than the bound min 5"),
    ({"creatinine_umol_per_mg_dl": 0}, r"thresholds\.creatinine_umol_per_mg_dl: a formula or unit constant"),
])
def test_the_issues_examples_are_refused_at_start(tmp_path, policy, message):
    with pytest.raises(PolicyError, match=message):
        app_with(tmp_path, policy)


@pytest.mark.parametrize("name", sorted(KNOWLEDGE.constants))
def test_no_constant_can_be_overridden(tmp_path, name):
    with pytest.raises(PolicyError, match=rf"thresholds\.{name}: a formula or unit constant"):
        app_with(tmp_path, {name: KNOWLEDGE.constants[name]})  # not even to its own value


@pytest.mark.parametrize("thresholds, message", [
    ({"crcl_esrd_below": 29, "crcl_severe_below": 30}, None),  # stricter, still in order
    ({"crcl_esrd_below": 35}, r"crcl_esrd_below: 35 is outside the bound max 29"),
    ({"crcl_severe_below": 55, "crcl_moderate_below": 50}, r"crcl_severe_below: 55 must stay below crcl_moderate_below"),
    ({"sbp_uncontrolled": 160, "sbp_severe": 160}, r"sbp_uncontrolled: 160 must stay below sbp_severe"),
    ({"scr_current_days": 365, "scr_usable_days": 180}, r"scr_current_days: 365 must not exceed scr_usable_days"),
    ({"sbp_uncontrolled": 200}, r"sbp_uncontrolled: 200 is laxer than the bound max 160"),
    ({"maoi_washout_days": float("nan")}, r"maoi_washout_days: must be a non-negative number"),
])
def test_bands_stay_in_order_and_site_ranges_hold(tmp_path, thresholds, message):
    if message is None:
        app_with(tmp_path, thresholds)
        return
    with pytest.raises(PolicyError, match=message):
        app_with(tmp_path, thresholds)


# -- a stricter policy is accepted and changes the cards, through HTTP ---------------------------

def test_a_longer_maoi_washout_turns_a_finished_washout_into_a_contraindication(tmp_path):
    scenario = "20-maoi-stopped-20-days-negative.json"  # phenelzine stopped 20 days ago
    assert "maoi-contraindication" not in topics(app_with(tmp_path, {}, scenario), scenario)
    assert topics(app_with(tmp_path, {"maoi_washout_days": 21}, scenario), scenario)["maoi-contraindication"] \
        == "critical"


def test_a_higher_esrd_cut_off_makes_a_severe_patient_esrd(tmp_path):
    scenario = "61-sertraline-severe-renal-68f-built.json"  # CrCl about 23.4 mL/min
    assert topics(app_with(tmp_path, {}, scenario), scenario)["renal-function"] == "info"
    stricter = app_with(tmp_path, {"crcl_esrd_below": 25}, scenario)
    assert topics(stricter, scenario)["renal-function"] == "critical"


# -- identity ------------------------------------------------------------------------------------

def test_the_policy_identity_is_its_name_and_content_hash_in_readyz_and_the_request_log(tmp_path, caplog):
    default = create_app({"require_jwt": False}).test_client().get("/readyz").get_json()
    assert default["policy"] == {"name": DEFAULT_IDENTITY.name, "hash": DEFAULT_IDENTITY.hash}
    named = app_with(tmp_path, {"maoi_washout_days": 21}, name="St Elsewhere 2026-11")
    ready = named.test_client().get("/readyz").get_json()["policy"]
    assert ready["name"] == "St Elsewhere 2026-11" and ready["hash"].startswith("sha256:")
    other = app_with(tmp_path, {"maoi_washout_days": 28}, name="St Elsewhere 2026-11")
    assert other.test_client().get("/readyz").get_json()["policy"]["hash"] != ready["hash"]
    with caplog.at_level(logging.INFO, logger="cds_service"):
        named.test_client().get("/cds-services")
    [line] = [r for r in caplog.records if r.getMessage() == "request"]
    assert line.fields["policy"] == ready


def test_a_policy_without_a_name_is_named_after_its_file(tmp_path):
    path = policy_file(tmp_path, {"thresholds": {"maoi_washout_days": 21}})
    app = create_app({"require_jwt": False, "policy_file": path})
    assert app.test_client().get("/readyz").get_json()["policy"]["name"] == "site-policy"


# -- cds-service policy check --------------------------------------------------------------------

def test_policy_check_prints_the_changes_for_the_minutes(tmp_path, capsys):
    path = policy_file(tmp_path, {"name": "P&T 2026-11", "thresholds": {"maoi_washout_days": 21, "sbp_uncontrolled": 150},
                                  "indicators": {"A2": "off"}})
    assert main(["policy", "check", path]) == 0
    out = capsys.readouterr().out
    assert "P&T 2026-11 (sha256:" in out
    assert "threshold maoi_washout_days: 14 -> 21 (stricter; allowed 14..60)" in out
    assert "threshold sbp_uncontrolled: 140 -> 150 (laxer (within the site range); allowed 120..160)" in out
    assert "indicator A2: off" in out


def test_policy_check_of_the_defaults_says_nothing_changes(tmp_path, capsys):
    assert main(["policy", "check", policy_file(tmp_path, {})]) == 0
    assert "No change against the label defaults." in capsys.readouterr().out


@pytest.mark.parametrize("content, named", [
    ({"thresholds": {"maoi_washout_days": 0}}, "thresholds.maoi_washout_days: 0 is laxer than the bound min 14"),
    ({"thresholds": {"creatinine_umol_per_mg_dl": 0}}, "thresholds.creatinine_umol_per_mg_dl"),
    ({"indicators": {"M1": "off"}}, "indicators.M1"),
])
def test_policy_check_exits_non_zero_for_a_policy_the_service_would_refuse(tmp_path, capsys, content, named):
    assert main(["policy", "check", policy_file(tmp_path, content)]) == 1
    assert named in capsys.readouterr().err


def test_serve_refuses_to_start_with_a_laxer_policy(tmp_path):
    environment = {**os.environ, "CDS_REQUIRE_JWT": "false", "CDS_DATA_DIR": str(tmp_path),
                   "CDS_POLICY_FILE": policy_file(tmp_path, {"thresholds": {"crcl_esrd_below": 0}})}
    served = subprocess.run([sys.executable, "-m", "cds_service.cli", "serve", "--port", "1"], env=environment,
                            capture_output=True, text=True, timeout=120)
    assert served.returncode == 2
    assert "thresholds.crcl_esrd_below: 0 is laxer than the bound min 5" in served.stderr

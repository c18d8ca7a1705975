"""The audit through HTTP: every card returned is recorded, feedback is stored item by item, an outage
never fails a hook response, and the repeated-alerts filter (a site option) hides repeats at order-sign."""

import copy
import json
import logging
from pathlib import Path

import pytest
from audit_fixtures import SECRET
from audit_fixtures import clock  # noqa: F401
from audit_fixtures import database  # noqa: F401
from audit_fixtures import store  # noqa: F401
from conftest import load_fixture
from sqlalchemy import select
from sqlalchemy import text

from cds_service import create_app
from cds_service.audit import Store
from cds_service.audit import pseudonymise
from cds_service.audit.models import CARD
from cds_service.audit.models import FEEDBACK
from cds_service.audit.models import RULE
from cds_service.audit.models import SUGGESTION
from cds_service.audit.models import metadata
from cds_service.http.components import components
from cds_service.settings import SettingsError

SIGN = "/cds-services/milnacipran-order-sign"
SELECT = "/cds-services/milnacipran-order-select"
REQUEST = "requests/sandbox-order-sign.json"
PATIENT = "smart-1288992"
REASON = {"system": "https://milnacipran-cds.example.org/override-reason", "code": "benefit-outweighs-risk",
          "display": "Benefit outweighs risk"}


APPS = []


@pytest.fixture(autouse=True)
def close_audits(store):
    """Each app's recorder finishes its writes before the test's database (``store``) goes away."""
    yield
    while APPS:
        audit = components(APPS.pop()).audit
        if audit is not None:
            audit.close()


POLICY = Path(__file__).parent / "policies" / "boxed-warning-as-warning.json"


def make_app(store, **settings):
    app = create_app({"require_jwt": False, "audit_patient_key_secret": SECRET, "policy_file": str(POLICY), **settings},
                     store=store)
    APPS.append(app)
    return app


def hook(app, path=SIGN, request=None):
    response = app.test_client().post(path, json=request or load_fixture(REQUEST))
    assert response.status_code == 200
    return response.get_json()["cards"]


def flushed(app):
    audit = components(app).audit
    audit.recorder.flush()
    return audit


def rows(store, table):
    with store.engine.connect() as connection:
        return connection.execute(select(table)).mappings().all()


def feedback(app, *items, path=SIGN):
    return app.test_client().post(path + "/feedback", json={"feedback": list(items)})


def accepted(card):
    return {"card": card["uuid"], "outcome": "accepted", "outcomeTimestamp": "2026-03-02T09:05:00Z",
            "acceptedSuggestions": [{"id": card["suggestions"][0]["uuid"]}]}


def overridden(card, reason=REASON, comment="discussed with the patient"):
    return {"card": card["uuid"], "outcome": "overridden", "outcomeTimestamp": "2026-03-02T09:06:00Z",
            "overrideReason": {"reason": reason, "userComment": comment}}


# -- cards -------------------------------------------------------------------------------------------

def test_an_overlong_hook_instance_still_gets_its_cards_and_is_recorded_cut_to_100_characters(store):
    app = make_app(store)
    request = load_fixture(REQUEST)
    request["hookInstance"] = "urn:uuid:" + "x" * 200       # the column holds 100: PostgreSQL refused the row
    cards = hook(app, request=request)
    flushed(app)
    assert cards and {row["hook_instance"] for row in rows(store, CARD)} == {request["hookInstance"][:100]}


def test_every_card_returned_is_recorded_with_its_rules_and_a_pseudonymous_patient(store):
    app = make_app(store)
    cards = hook(app)
    assert {card["source"]["topic"]["code"] for card in cards} == {"dose-titration", "suicidality"}
    audit = flushed(app)
    recorded = {row["card_uuid"]: row for row in rows(store, CARD)}
    assert set(recorded) == {card["uuid"] for card in cards}
    policy = components(app).check.policy.identity
    for card in cards:
        row = recorded[card["uuid"]]
        assert (row["service_id"], row["hook"], row["hook_instance"]) == \
            ("milnacipran-order-sign", "order-sign", load_fixture(REQUEST)["hookInstance"])
        assert (row["topic"], row["indicator"]) == (card["source"]["topic"]["code"], card["indicator"])
        assert (row["policy_name"], row["policy_hash"]) == (policy.name, policy.hash)
        assert row["knowledge_version"] == components(app).check.knowledge.version
        assert row["patient_key"] == pseudonymise(PATIENT, SECRET) and row["suppressed"] is False
    rules = {(r["card_id"], r["rule_id"]) for r in rows(store, RULE)}
    by_topic = {recorded[c["uuid"]]["topic"]: {rule for card_id, rule in rules if card_id == recorded[c["uuid"]]["id"]}
                for c in cards}
    assert by_topic == {"dose-titration": {"D3"}, "suicidality": {"SU1"}}
    suggestions = {(r["suggestion_uuid"], r["label"]) for r in rows(store, SUGGESTION)}
    assert suggestions == {(s["uuid"], s["label"]) for card in cards for s in card.get("suggestions", ())}
    assert audit.counts()["cards_recorded"] == len(cards)


def test_no_raw_patient_id_or_token_is_stored(store):
    request = load_fixture(REQUEST)
    request["fhirAuthorization"] = {"access_token": "secret-token-123", "token_type": "Bearer", "expires_in": 300,
                                    "scope": "patient/*.read", "subject": "cds"}
    app = make_app(store)
    hook(app, request=request)
    flushed(app)
    dumped = json.dumps([dict(row) for table in metadata.sorted_tables for row in rows(store, table)], default=str)
    assert PATIENT not in dumped and "secret-token-123" not in dumped


def test_without_a_secret_no_patient_key_is_stored(store):
    app = create_app({"require_jwt": False}, store=store)
    hook(app)
    flushed(app)
    assert {row["patient_key"] for row in rows(store, CARD)} == {None}


def test_a_database_outage_never_fails_the_hook_response(store, caplog):
    app = make_app(store)
    metadata.drop_all(store.engine)  # the database loses its tables under the running service
    with caplog.at_level(logging.ERROR, logger="cds_service.audit"):
        cards = hook(app)
        audit = flushed(app)
    assert len(cards) == 2
    assert audit.counts()["cards_record_failed"] == 1
    assert any("cards not recorded" in record.getMessage() for record in caplog.records)
    assert PATIENT not in caplog.text


# -- feedback ----------------------------------------------------------------------------------------

def test_feedback_accepted_and_overridden_is_stored_with_reason_and_comment(store):
    app = make_app(store)
    dose, suicidality = sorted(hook(app), key=lambda card: card["source"]["topic"]["code"])
    flushed(app)
    response = feedback(app, accepted(dose), overridden(suicidality))
    assert response.status_code == 200 and response.get_json() == {}
    stored = {row["card_uuid"]: row for row in rows(store, FEEDBACK)}
    assert stored[dose["uuid"]]["outcome"] == "accepted"
    assert json.loads(stored[dose["uuid"]]["accepted_suggestions"]) == [dose["suggestions"][0]["uuid"]]
    row = stored[suicidality["uuid"]]
    assert (row["outcome"], row["reason_code"], row["reason_display"], row["user_comment"]) == \
        ("overridden", REASON["code"], REASON["display"], "discussed with the patient")
    assert row["card_id"] is not None and row["service_id"] == "milnacipran-order-sign"


def test_a_repeated_item_is_idempotent_and_an_unknown_card_is_kept_unmatched(store):
    app = make_app(store)
    [card, _] = hook(app)
    flushed(app)
    unknown = {**overridden(card), "card": "a-card-from-before-a-restart"}
    assert feedback(app, overridden(card), unknown).status_code == 200
    assert feedback(app, overridden(card), unknown).status_code == 200  # the EHR retries
    stored = rows(store, FEEDBACK)
    assert len(stored) == 2
    assert {row["card_uuid"]: row["card_id"] is None for row in stored} == \
        {card["uuid"]: False, "a-card-from-before-a-restart": True}
    counts = components(app).audit.counts()
    assert (counts["feedback_stored"], counts["feedback_unmatched"], counts["feedback_duplicate"]) == (1, 1, 2)


def test_a_malformed_item_gets_400_naming_item_and_field_and_the_valid_items_are_kept(store):
    app = make_app(store)
    card, other = sorted(hook(app), key=lambda card: card["source"]["topic"]["code"])  # dose-titration, suicidality
    flushed(app)
    bad = copy.deepcopy(overridden(other))
    del bad["outcomeTimestamp"]
    response = feedback(app, overridden(card), bad, {**accepted(card), "acceptedSuggestions": [{"uuid": "x"}]})
    assert response.status_code == 400
    outcome = response.get_json()
    assert outcome["resourceType"] == "OperationOutcome"
    errors = [issue for issue in outcome["issue"] if issue["severity"] == "error"]
    assert [issue["expression"] for issue in errors] == [["feedback[1].outcomeTimestamp"],
                                                         ["feedback[2].acceptedSuggestions[0].id"]]
    assert "'feedback[1].outcomeTimestamp' is required" in errors[0]["diagnostics"]
    assert "1 valid item(s) of this request were stored" in outcome["issue"][-1]["diagnostics"]
    assert [row["card_uuid"] for row in rows(store, FEEDBACK)] == [card["uuid"]]


def test_feedback_during_an_outage_answers_503_so_that_the_ehr_retries(store):
    app = make_app(store)
    [card, _] = hook(app)
    flushed(app)
    with store.engine.begin() as connection:
        connection.execute(text("DROP TABLE audit_feedback"))
    response = feedback(app, overridden(card))
    assert response.status_code == 503
    outcome = response.get_json()
    assert outcome["resourceType"] == "OperationOutcome" and outcome["issue"][0]["code"] == "transient"
    assert components(app).audit.counts()["feedback_failed"] == 1


def test_with_the_audit_off_nothing_is_recorded_and_feedback_is_refused(store):
    app = create_app({"require_jwt": False, "audit_enabled": False})
    assert components(app).audit is None
    [card] = hook(app)
    assert feedback(app, overridden(card)).status_code == 503


def test_a_database_that_cannot_be_reached_stops_the_start_naming_the_masked_url():
    with pytest.raises(SettingsError, match=r"CDS_DATABASE_URL postgresql\+psycopg://cds:\*\*\*@127\.0\.0\.1:9/cds"):
        create_app({"require_jwt": False, "database_url": "postgresql://cds:hunter2@127.0.0.1:9/cds"})


# -- fewer repeated alerts (site option) -------------------------------------------------------------

def select_request():
    request = load_fixture(REQUEST)
    request["hook"] = "order-select"
    request["hookInstance"] = "5b0c8f4e-3c5c-4f0e-9a0e-9a3e2a1c7d11"
    request["context"]["selections"] = ["MedicationRequest/request-123"]
    return request


def test_repeated_alerts_are_shown_by_default(store):
    app = make_app(store)
    shown = hook(app, SELECT, select_request())
    flushed(app)
    assert len(hook(app)) == len(shown) == 2


def test_with_the_filter_on_a_card_shown_at_select_is_not_shown_again_at_sign_and_is_recorded_suppressed(store):
    app = make_app(store, filter_repeated_alerts=True)
    shown = hook(app, SELECT, select_request())
    flushed(app)
    assert hook(app) == []
    audit = flushed(app)
    at_sign = [row for row in rows(store, CARD) if row["hook"] == "order-sign"]
    assert len(at_sign) == len(shown) and all(row["suppressed"] for row in at_sign)
    assert audit.counts()["cards_suppressed"] == 2


def test_a_card_that_became_more_severe_is_shown_again(store, tmp_path):
    app = make_app(store, filter_repeated_alerts=True)
    hook(app, SELECT, select_request())
    flushed(app)
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps({"indicators": {"D3": "warning"}}))  # the dose-titration card is now a warning
    stricter = make_app(store, filter_repeated_alerts=True, policy_file=str(policy))
    assert [card["source"]["topic"]["code"] for card in hook(stricter)] == ["dose-titration"]


def test_a_different_draft_order_or_patient_is_not_filtered(store):
    app = make_app(store, filter_repeated_alerts=True)
    hook(app, SELECT, select_request())
    flushed(app)
    other_patient = load_fixture(REQUEST)
    other_patient["context"]["patientId"] = "another-patient"
    other_patient["prefetch"]["patient"]["id"] = "another-patient"
    assert len(hook(app, request=other_patient)) == 2
    other_order = load_fixture(REQUEST)
    other_order["context"]["draftOrders"]["entry"][0]["resource"]["id"] = "request-456"
    assert len(hook(app, request=other_order)) == 2


def test_with_the_database_down_the_filter_suppresses_nothing(store):
    app = make_app(store, filter_repeated_alerts=True)
    hook(app, SELECT, select_request())
    flushed(app)
    metadata.drop_all(store.engine)
    assert len(hook(app)) == 2  # showing a card twice is safer than hiding one
    assert flushed(app).counts()["repeat_lookup_failed"] == 1


def test_the_filter_needs_the_patient_key_secret():
    with pytest.raises(SettingsError, match="CDS_FILTER_REPEATED_ALERTS"):
        create_app({"require_jwt": False, "filter_repeated_alerts": True, "audit_patient_key_secret": None})


# -- the command line reads the same settings ------------------------------------------------------

def test_cds_service_migrate_brings_the_configured_database_to_the_newest_schema(tmp_path, monkeypatch, capsys):
    from cds_service.cli import main
    monkeypatch.setenv("CDS_DATABASE_URL", f"sqlite:///{tmp_path}/migrated.sqlite3")
    assert main(["migrate"]) == 0
    assert "database schema at revision 0002" in capsys.readouterr().err
    migrated = Store.from_url(f"sqlite:///{tmp_path}/migrated.sqlite3")
    assert migrated.schema_revision() == ("0002", "0002")
    migrated.dispose()

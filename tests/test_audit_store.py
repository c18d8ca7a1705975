"""The audit Store on SQLite and (with CDS_TEST_DATABASE_URL) PostgreSQL: schema, cards, feedback, purge, replay."""

import datetime
import json
import os
import subprocess
import sys
import threading

import pytest
from audit_fixtures import POLICY
from audit_fixtures import SECRET
from audit_fixtures import UTC
from audit_fixtures import card
from audit_fixtures import clock  # noqa: F401
from audit_fixtures import database  # noqa: F401
from audit_fixtures import record
from audit_fixtures import store  # noqa: F401
from sqlalchemy import inspect
from sqlalchemy import select
from sqlalchemy import text

from cds_service.audit import DUPLICATE
from cds_service.audit import STORED
from cds_service.audit import UNMATCHED
from cds_service.audit import AuditConfigError
from cds_service.audit import AuditUnavailable
from cds_service.audit import IssuedCard
from cds_service.audit import Store
from cds_service.audit import parse_feedback_items
from cds_service.audit import pseudonymise
from cds_service.audit.models import CARD
from cds_service.audit.models import FEEDBACK
from cds_service.audit.models import RULE
from cds_service.audit.models import SUGGESTION
from cds_service.settings import SettingsError
from cds_service.settings import load_settings

TABLES = {"audit_card", "audit_card_rule", "audit_card_suggestion", "audit_feedback", "audit_replay_token",
          "alembic_version"}


def feedback(*items):
    parsed, errors = parse_feedback_items({"feedback": list(items)})
    assert errors == []
    return parsed


def accepted(card_uuid, *suggestions, timestamp="2026-03-02T09:05:00Z"):
    return {"card": card_uuid, "outcome": "accepted", "acceptedSuggestions": [{"id": s} for s in suggestions],
            "outcomeTimestamp": timestamp}


def overridden(card_uuid, code="benefit-outweighs-risk", display=None, comment=None, timestamp="2026-03-02T09:05:00Z"):
    reason = {"reason": {"system": "https://example.org/override", "code": code}}
    if display:
        reason["reason"]["display"] = display
    if comment:
        reason["userComment"] = comment
    return {"card": card_uuid, "outcome": "overridden", "overrideReason": reason, "outcomeTimestamp": timestamp}


def rows(store, table):
    with store.engine.connect() as connection:
        return connection.execute(select(table)).mappings().all()


# -- schema ---------------------------------------------------------------------------------------

def test_migrations_run_up_from_an_empty_database_and_again_as_a_no_op(database, clock):
    url, options = database
    audit = Store.from_url(url, clock=clock, **options)
    assert TABLES.isdisjoint(inspect(audit.engine).get_table_names())
    assert audit.schema_revision() == (None, "0002")
    assert audit.migrate() == "0002"
    assert TABLES <= set(inspect(audit.engine).get_table_names())
    assert audit.migrate() == "0002"
    assert audit.schema_revision() == ("0002", "0002")
    audit.dispose()


def test_the_newest_revision_the_store_knows_is_the_newest_migration():
    from alembic.script import ScriptDirectory

    from cds_service.audit.store import SCHEMA_HEAD
    from cds_service.audit.store import alembic_config

    assert SCHEMA_HEAD == ScriptDirectory.from_config(alembic_config()).get_current_head(), \
        "a new migration: set SCHEMA_HEAD in cds_service/audit/store.py to its revision"


def test_the_migration_matches_the_models(store):
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from cds_service.audit.models import metadata
    with store.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), metadata)
    assert differences == []


def test_the_migration_downgrades_and_upgrades_again(store):
    from alembic import command

    from cds_service.audit.store import alembic_config
    config = alembic_config()
    with store.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "base")
    assert TABLES.isdisjoint(set(inspect(store.engine).get_table_names()) - {"alembic_version"})
    assert store.migrate() == "0002"


def test_several_processes_may_migrate_at_once(database):
    url, options = database
    search_path = options.get("connect_args", {}).get("options", "")
    script = ("import sys; from cds_service.audit import Store; "
              "opts = {'connect_args': {'options': sys.argv[2]}} if sys.argv[2] else {}; "
              "print(Store.from_url(sys.argv[1], **opts).migrate())")
    processes = [subprocess.Popen([sys.executable, "-c", script, url, search_path], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(4)]
    outcomes = [process.communicate(timeout=120) for process in processes]
    assert [p.returncode for p in processes] == [0, 0, 0, 0], [err for _, err in outcomes]
    assert [out.strip() for out, _ in outcomes] == ["0002"] * 4


def test_sqlite_uses_wal_creates_its_folder_and_sets_a_busy_timeout(tmp_path):
    audit = Store.from_url(f"sqlite:///{tmp_path}/new/folder/audit.sqlite3")
    audit.migrate()
    assert (tmp_path / "new" / "folder" / "audit.sqlite3").exists()
    with audit.engine.connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert connection.execute(text("PRAGMA busy_timeout")).scalar() >= 1000
        assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1
    audit.dispose()


def test_postgres_urls_use_psycopg_3_and_other_databases_are_refused():
    assert Store.from_url("postgresql://u:p@127.0.0.1:1/db").engine.dialect.driver == "psycopg"
    assert Store.from_url("postgres://u:p@127.0.0.1:1/db").engine.dialect.driver == "psycopg"
    with pytest.raises(AuditConfigError):
        Store.from_url("mysql://u:p@127.0.0.1/db")
    with pytest.raises(AuditConfigError):
        Store.from_url("not a url")


def test_the_default_database_is_a_sqlite_file_in_the_data_folder():
    assert load_settings({}).audit_database_url == "sqlite:///var/cds-audit.sqlite3"
    assert load_settings({"CDS_DATA_DIR": "/data"}).audit_database_url == "sqlite:////data/cds-audit.sqlite3"
    settings = load_settings({"CDS_DATABASE_URL": "postgresql://db/cds", "CDS_AUDIT_RETENTION_DAYS": "30"})
    assert (settings.audit_database_url, settings.audit_retention_days) == ("postgresql://db/cds", 30)
    assert load_settings({}).audit_retention_days == 400


@pytest.mark.parametrize("variable, value", [
    ("CDS_AUDIT_RETENTION_DAYS", "0"), ("CDS_AUDIT_RETENTION_DAYS", "-5"), ("CDS_AUDIT_RETENTION_DAYS", "ten"),
    ("CDS_AUDIT_RETENTION_DAYS", "1e3"), ("CDS_DATABASE_URL", "mysql://u:p@db/cds"),
    ("CDS_FILTER_REPEATED_ALERTS", "yes please"), ("CDS_AUDIT_ENABLED", "maybe"),
])
def test_a_bad_audit_setting_is_refused_naming_the_variable(variable, value):
    with pytest.raises(SettingsError, match=variable):
        load_settings({variable: value})


def test_the_database_password_and_the_patient_key_secret_are_masked():
    settings = load_settings({"CDS_DATABASE_URL": "postgresql://cds:hunter2@db/cds",
                              "CDS_AUDIT_PATIENT_KEY_SECRET": "s3cret-key"})
    assert "hunter2" not in repr(settings) and "s3cret-key" not in repr(settings)
    assert settings.audit_patient_key_secret == "s3cret-key"


# -- cards ----------------------------------------------------------------------------------------

def test_cards_are_recorded_with_rules_suggestions_and_a_pseudonymous_patient_key(store, clock):
    renal = card(rule_ids=("renal-crcl-band", "renal-dose-ceiling"), suggestions={"s-1": "Change to 25 mg twice daily"})
    maoi = card(rule_ids=("maoi-washout",), topic="maoi-contraindication", indicator="critical")
    record(store, [renal, maoi], patient_id="patient-123")

    cards = {row["card_uuid"]: row for row in rows(store, CARD)}
    assert set(cards) == {renal.card_uuid, maoi.card_uuid}
    row = cards[renal.card_uuid]
    assert (row["service_id"], row["hook"], row["topic"], row["indicator"]) == (
        "milnacipran-order-sign", "order-sign", "renal-function", "warning")
    assert (row["knowledge_version"], row["policy_name"], row["policy_hash"]) == ("2026.03", POLICY.name, POLICY.hash)
    assert row["issued_at"] == clock.now and row["issued_at"].tzinfo is not None
    assert row["patient_key"] == pseudonymise("patient-123", SECRET) != "patient-123"
    assert row["suppressed"] is False
    assert sorted((r["card_id"] == row["id"], r["rule_id"]) for r in rows(store, RULE)
                  if r["card_id"] == row["id"]) == [(True, "renal-crcl-band"), (True, "renal-dose-ceiling")]
    assert [(r["suggestion_uuid"], r["label"]) for r in rows(store, SUGGESTION)] == [
        ("s-1", "Change to 25 mg twice daily")]


def test_no_raw_patient_id_reaches_the_database(tmp_path):
    audit = Store.from_url(f"sqlite:///{tmp_path}/audit.sqlite3")
    audit.migrate()
    record(audit, [card(), card()], patient_id="Patient-Raw-4711")
    with pytest.raises(ValueError, match="pseudonymise"):
        audit.record_cards([card()], service_id="s", hook="order-sign", hook_instance=None,
                           patient_key="Patient-Raw-4711", knowledge_version="k", policy=POLICY)
    audit.dispose()
    for path in tmp_path.iterdir():  # the database and its WAL
        assert b"Patient-Raw-4711" not in path.read_bytes()


def test_pseudonymise_is_a_keyed_hmac():
    assert pseudonymise("p", "a") == pseudonymise("p", "a")
    assert pseudonymise("p", "a") != pseudonymise("p", "b")
    assert len(pseudonymise("p", "a")) == 64
    with pytest.raises(AuditConfigError):
        pseudonymise("p", "")


def test_a_card_is_recorded_once_and_a_suppressed_repeat_is_marked(store):
    first = card(suggestions={"s-1": "Cancel"})
    record(store, [first])
    record(store, [first, card(suppressed=True)])
    cards = rows(store, CARD)
    assert len(cards) == 2 and sorted(row["suppressed"] for row in cards) == [False, True]
    assert len(rows(store, SUGGESTION)) == 1


def test_issued_card_from_a_rendered_card():
    rendered = {"uuid": "u-1", "summary": "…", "indicator": "critical",
                "source": {"label": "x", "topic": {"system": "s", "code": "maoi-contraindication"}},
                "suggestions": [{"uuid": "s-1", "label": "Remove this draft order"}, {"label": "no uuid"}]}
    issued = IssuedCard.from_card(rendered, ["maoi-washout", "maoi-washout", "linezolid"])
    assert issued == IssuedCard("u-1", "maoi-contraindication", "critical", ("maoi-washout", "linezolid"),
                                {"s-1": "Remove this draft order"})


# -- feedback -------------------------------------------------------------------------------------

def test_feedback_round_trip(store, clock):
    renal, maoi = card(suggestions={"s-1": "Change dose"}), card(topic="maoi-contraindication", indicator="critical")
    record(store, [renal, maoi])
    clock.now += datetime.timedelta(minutes=5)
    results = store.record_feedback(feedback(
        accepted(renal.card_uuid, "s-1"),
        overridden(maoi.card_uuid, code="washout-complete", display="Washout already complete", comment="checked")),
        service_id="milnacipran-order-sign")
    assert results == [STORED, STORED]
    stored = {row["card_uuid"]: row for row in rows(store, FEEDBACK)}
    cards = {row["card_uuid"]: row["id"] for row in rows(store, CARD)}
    assert stored[renal.card_uuid]["card_id"] == cards[renal.card_uuid]
    assert json.loads(stored[renal.card_uuid]["accepted_suggestions"]) == ["s-1"]
    override = stored[maoi.card_uuid]
    assert (override["outcome"], override["reason_system"], override["reason_code"], override["reason_display"],
            override["user_comment"]) == ("overridden", "https://example.org/override", "washout-complete",
                                          "Washout already complete", "checked")
    assert override["outcome_timestamp"] == datetime.datetime(2026, 3, 2, 9, 5, tzinfo=UTC)
    assert override["received_at"] == clock.now
    assert override["service_id"] == "milnacipran-order-sign"


def test_a_repeated_item_is_a_duplicate_also_within_one_post(store):
    renal = card(suggestions={"s-1": "Change dose"})
    record(store, [renal])
    items = feedback(accepted(renal.card_uuid, "s-1"), overridden(renal.card_uuid, timestamp="2026-03-02T09:06:00Z"))
    assert store.record_feedback(items) == [STORED, STORED]
    assert store.record_feedback(items) == [DUPLICATE, DUPLICATE]
    repeat = feedback(overridden(renal.card_uuid, comment="a retry with a comment", timestamp="2026-03-02T09:06:00Z"),
                      accepted(renal.card_uuid, "s-2"), accepted(renal.card_uuid, "s-2"))
    assert store.record_feedback(repeat) == [DUPLICATE, STORED, DUPLICATE]
    assert len(rows(store, FEEDBACK)) == 3


def test_feedback_for_an_unknown_card_is_kept_as_unmatched(store):
    known = card()
    record(store, [known])
    results = store.record_feedback(feedback(overridden("card-from-before-a-restart"), overridden(known.card_uuid)))
    assert results == [UNMATCHED, STORED]
    assert store.record_feedback(feedback(overridden("card-from-before-a-restart"))) == [DUPLICATE]
    unmatched = [row for row in rows(store, FEEDBACK) if row["card_uuid"] == "card-from-before-a-restart"]
    assert len(unmatched) == 1 and unmatched[0]["card_id"] is None
    assert store.report().totals["unmatchedFeedback"] == 1


def test_malformed_items_do_not_cost_the_valid_ones(store):
    known = card()
    record(store, [known])
    items, errors = parse_feedback_items({"feedback": [
        overridden(known.card_uuid), {"card": known.card_uuid, "outcome": "accepted",
                                      "outcomeTimestamp": "2026-03-02T09:05:00Z"}, overridden("unknown")]})
    assert [(e.index, e.field) for e in errors] == [(1, "acceptedSuggestions")]
    assert store.record_feedback(items) == [STORED, UNMATCHED]
    assert len(rows(store, FEEDBACK)) == 2


# -- purge ----------------------------------------------------------------------------------------

def test_purge_removes_old_cards_their_feedback_and_old_unmatched_items(store, clock):
    old, recent = card(suggestions={"s-1": "Cancel"}), card(suggestions={"s-2": "Cancel"})
    record(store, [old])
    store.record_feedback(feedback(overridden(old.card_uuid), overridden("unknown-old")))
    store.claim_once("jti-old", clock.now + datetime.timedelta(minutes=5))
    clock.now += datetime.timedelta(days=100)
    record(store, [recent])
    store.record_feedback(feedback(accepted(recent.card_uuid, "s-2"), overridden("unknown-recent")))
    store.claim_once("jti-new", clock.now + datetime.timedelta(minutes=5))

    assert store.purge(101) == {"cards": 0, "feedback": 0, "replayTokens": 1}
    assert store.purge(30) == {"cards": 1, "feedback": 2, "replayTokens": 0}
    assert [row["card_uuid"] for row in rows(store, CARD)] == [recent.card_uuid]
    assert sorted(row["card_uuid"] for row in rows(store, FEEDBACK)) == sorted(
        [recent.card_uuid, "unknown-recent"])
    assert [row["suggestion_uuid"] for row in rows(store, SUGGESTION)] == ["s-2"]
    assert len(rows(store, RULE)) == 1


@pytest.mark.parametrize("days", [0, -1, 1.5, True])
def test_purge_needs_a_whole_number_of_days(store, days):
    with pytest.raises(ValueError):
        store.purge(days)


# -- replay store ---------------------------------------------------------------------------------

def test_claim_once_refuses_a_replay_until_the_claim_expires(store, clock):
    expiry = clock.now + datetime.timedelta(minutes=5)
    assert store.claim_once("jti-1", expiry, issuer="https://ehr.example.org") is True
    assert store.claim_once("jti-1", expiry, issuer="https://ehr.example.org") is False
    assert store.claim_once("jti-1", expiry, issuer="https://other.example.org") is True
    clock.now += datetime.timedelta(minutes=6)
    assert store.claim_once("jti-1", clock.now + datetime.timedelta(minutes=5), issuer="https://ehr.example.org")
    assert not store.claim_once("jti-1", clock.now + datetime.timedelta(minutes=5), issuer="https://ehr.example.org")


@pytest.mark.parametrize("taken_before", [False, True], ids=["new", "expired"])
def test_claim_once_is_won_by_exactly_one_of_many_threads(store, clock, taken_before):
    if taken_before:  # an expired claim: taken over by one thread only
        store.claim_once("contested-jti", clock.now + datetime.timedelta(minutes=5))
        clock.now += datetime.timedelta(minutes=6)
    expiry = clock.now + datetime.timedelta(minutes=5)
    wins, barrier = [], threading.Barrier(8)

    def claim():
        barrier.wait()
        wins.append(store.claim_once("contested-jti", expiry))

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(wins) == [False] * 7 + [True]


# -- outage ---------------------------------------------------------------------------------------

def test_an_unreachable_database_raises_audit_unavailable_without_details(tmp_path):
    closed = Store.from_url("postgresql://cds:secret-password@127.0.0.1:9/cds")
    with pytest.raises(AuditUnavailable) as raised:
        record(closed, [card()])
    assert "secret-password" not in str(raised.value)
    with pytest.raises(AuditUnavailable):
        closed.record_feedback(feedback(overridden("x")))
    with pytest.raises(AuditUnavailable):
        closed.ping()
    unmigrated = Store.from_url(f"sqlite:///{tmp_path}/empty.sqlite3")
    with pytest.raises(AuditUnavailable):
        record(unmigrated, [card()])


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root can write a read-only file")
def test_a_read_only_sqlite_file_raises_audit_unavailable(tmp_path):
    path = tmp_path / "audit.sqlite3"
    audit = Store.from_url(f"sqlite:///{path}")
    audit.migrate()
    audit.dispose()
    path.chmod(0o444)
    with pytest.raises(AuditUnavailable):
        record(Store.from_url(f"sqlite:///{path}"), [card()])

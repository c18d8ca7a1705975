"""Fixtures of the audit tests: one fresh database per test, on SQLite always and on PostgreSQL
when ``CDS_TEST_DATABASE_URL`` is set (each test gets its own schema there, dropped afterwards)."""

import datetime
import os
import uuid

import pytest
from sqlalchemy import create_engine
from sqlalchemy import text

from cds_service.audit import IssuedCard
from cds_service.audit import PolicyIdentity
from cds_service.audit import Store
from cds_service.audit import pseudonymise
from cds_service.audit.store import normalise_url

POSTGRES_URL = os.environ.get("CDS_TEST_DATABASE_URL", "").strip()
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.skipif(
    not POSTGRES_URL, reason="CDS_TEST_DATABASE_URL is not set"))]
UTC = datetime.timezone.utc
POLICY = PolicyIdentity("label-defaults", "sha256:0f1e2d3c")
SECRET = "test-secret"


class Clock:
    """A settable clock for the store."""

    def __init__(self, now: datetime.datetime):
        self.now = now

    def __call__(self) -> datetime.datetime:
        return self.now


@pytest.fixture(params=BACKENDS)
def database(request, tmp_path):
    """(url, engine options) of an empty database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/data/audit.sqlite3", {}
        return
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(normalise_url(POSTGRES_URL))
    with admin.begin() as connection:
        connection.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        yield POSTGRES_URL, {"connect_args": {"options": f"-csearch_path={schema}"}}
    finally:
        with admin.begin() as connection:
            connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


@pytest.fixture
def clock():
    return Clock(datetime.datetime(2026, 3, 2, 9, 0, tzinfo=UTC))


@pytest.fixture
def store(database, clock):
    url, options = database
    audit = Store.from_url(url, clock=clock, **options)
    audit.migrate()
    yield audit
    audit.dispose()


def card(rule_ids=("renal-crcl-band",), topic="renal-function", indicator="warning", suggestions=None,
         suppressed=False, card_uuid=None) -> IssuedCard:
    return IssuedCard(card_uuid=card_uuid or str(uuid.uuid4()), topic=topic, indicator=indicator,
                      rule_ids=tuple(rule_ids), suggestions=dict(suggestions or {}), suppressed=suppressed)


def record(store: Store, cards, patient_id="patient-123", hook="order-sign", issued_at=None) -> None:
    store.record_cards(cards, service_id=f"milnacipran-{hook}", hook=hook, hook_instance=str(uuid.uuid4()),
                       patient_key=pseudonymise(patient_id, SECRET), knowledge_version="2026.03",
                       policy=POLICY, issued_at=issued_at)

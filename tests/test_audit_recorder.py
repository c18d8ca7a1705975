"""Cards recorded on a background thread: submit never waits for the database, failures are counted."""

import os
import threading
import time

import pytest
from audit_fixtures import POLICY
from audit_fixtures import SECRET
from audit_fixtures import card
from audit_fixtures import clock  # noqa: F401
from audit_fixtures import database  # noqa: F401
from audit_fixtures import store  # noqa: F401
from sqlalchemy import func
from sqlalchemy import select

from cds_service.audit import CardRecorder
from cds_service.audit import Store
from cds_service.audit import pseudonymise
from cds_service.audit import recorder as recorder_module
from cds_service.audit.models import CARD


def fields(clock_now=None):
    return {"service_id": "milnacipran-order-sign", "hook": "order-sign", "hook_instance": "h",
            "patient_key": pseudonymise("p", SECRET), "knowledge_version": "2026.03", "policy": POLICY,
            "issued_at": clock_now}


def count_cards(store: Store) -> int:
    with store.engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(CARD)).scalar_one()


def test_submitted_cards_are_written_in_the_background(store, clock):
    recorder = CardRecorder(store)
    for _ in range(20):
        assert recorder.submit([card(), card(), card()], **fields(clock.now))
    recorder.flush()
    assert (recorder.recorded, recorder.failed, recorder.dropped) == (60, 0, 0)
    assert count_cards(store) == 60
    recorder.close()


def test_a_database_outage_is_counted_and_never_reaches_the_caller(clock, caplog):
    closed = Store.from_url("postgresql://cds:pw@127.0.0.1:9/cds")
    recorder = CardRecorder(closed)
    start = time.perf_counter()
    assert recorder.submit([card()], **fields(clock.now)) is True
    assert time.perf_counter() - start < 0.05
    recorder.flush()
    assert (recorder.recorded, recorder.failed) == (0, 1)
    assert "patient" not in caplog.text.lower()
    recorder.close()


def test_a_full_queue_drops_and_counts(store, clock):
    gate = threading.Event()
    original = store.record_responses

    def slow(*args, **kwargs):
        gate.wait(10)
        return original(*args, **kwargs)

    store.record_responses = slow
    recorder = CardRecorder(store, max_pending=2)
    results = [recorder.submit([card()], **fields(clock.now)) for _ in range(6)]
    gate.set()
    recorder.flush()
    assert results.count(False) == recorder.dropped >= 3
    assert recorder.recorded == results.count(True)
    recorder.close()


def test_responses_are_written_in_batches_and_one_bad_response_costs_no_other_its_record(store, clock, monkeypatch):
    monkeypatch.setattr(recorder_module, "BATCH_WAIT_SECONDS", 0.5)  # time enough to queue all ten
    batches = []
    original = store.record_responses

    def counted(responses):
        batches.append(len(responses))
        return original(responses)

    store.record_responses = counted
    recorder = CardRecorder(store)
    for n in range(10):
        bad = {"patient_key": "Patient-Raw-4711"} if n == 4 else {}  # refused by the store: not a pseudonym
        assert recorder.submit([card()], **(fields(clock.now) | bad))
    recorder.flush()
    assert (recorder.recorded, recorder.failed, recorder.dropped) == (9, 1, 0)
    assert count_cards(store) == 9
    assert batches[0] == 10 and batches[1:] == [1] * 10  # one batch, then retried one by one
    recorder.close()


def test_close_writes_what_is_queued(store, clock):
    recorder = CardRecorder(store)
    for _ in range(5):
        recorder.submit([card(), card()], **fields(clock.now))
    recorder.close()  # no flush first: the batch being gathered is written before the thread stops
    assert recorder.recorded == count_cards(store) == 10


def test_close_gives_up_on_a_writer_that_hangs(store, clock, caplog):
    gate = threading.Event()
    original = store.record_responses

    def hanging(responses):
        gate.wait(10)
        return original(responses)

    store.record_responses = hanging
    recorder = CardRecorder(store, max_pending=1)
    recorder.submit([card()], **fields(clock.now))  # taken by the writer, which hangs
    time.sleep(0.2)
    recorder.submit([card()], **fields(clock.now))  # fills the queue
    start = time.perf_counter()
    recorder.close(timeout=0.3)
    assert time.perf_counter() - start < 2
    assert "did not finish" in caplog.text
    gate.set()
    recorder.close()
    assert recorder.recorded == count_cards(store) == 2


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # 3.12+: fork() with threads running
def test_a_forked_worker_records_with_its_own_thread_and_connections(tmp_path, clock):
    audit = Store.from_url(f"sqlite:///{tmp_path}/audit.sqlite3")
    audit.migrate()
    recorder = CardRecorder(audit)
    recorder.submit([card()], **fields(clock.now))  # starts the parent's thread and pool
    recorder.flush()
    pid = os.fork()
    if pid == 0:  # the child: a gunicorn worker
        code = 1
        try:
            recorder.submit([card(), card()], **fields(clock.now))
            recorder.flush()
            code = 0 if recorder.recorded == 3 else 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert count_cards(audit) == 3
    recorder.close()
    audit.dispose()

"""2,000 feedback items from 8 threads at once, with repeats racing each other: every item is stored exactly once."""

import datetime
import threading
from collections import Counter

from audit_fixtures import card
from audit_fixtures import clock  # noqa: F401
from audit_fixtures import database  # noqa: F401
from audit_fixtures import record
from audit_fixtures import store  # noqa: F401
from sqlalchemy import func
from sqlalchemy import select

from cds_service.audit import DUPLICATE
from cds_service.audit import STORED
from cds_service.audit import UNMATCHED
from cds_service.audit import FeedbackItem
from cds_service.audit.models import FEEDBACK

THREADS, ITEMS, BATCH = 8, 2_000, 5
UTC = datetime.timezone.utc


def test_2000_feedback_items_from_8_threads_are_all_stored_once(store):
    cards = [card(suggestions={f"s-{n}": "Change dose"}) for n in range(900)]
    for start in range(0, len(cards), 3):  # as responses of three cards
        record(store, cards[start:start + 3])
    base = datetime.datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    items = []
    for n in range(ITEMS):
        if n < 1_800:  # two items per recorded card: accepted, then overridden a minute later
            issued = cards[n // 2]
            items.append(FeedbackItem(card=issued.card_uuid, outcome="accepted", accepted_suggestions=(f"s-{n // 2}",),
                                      outcome_timestamp=base) if n % 2 == 0 else
                         FeedbackItem(card=issued.card_uuid, outcome="overridden", reason_system="https://example.org",
                                      reason_code="benefit", outcome_timestamp=base + datetime.timedelta(minutes=1)))
        else:  # cards this server never issued
            items.append(FeedbackItem(card=f"unknown-{n}", outcome="overridden", outcome_timestamp=base))
    shares = [items[t::THREADS] for t in range(THREADS)]
    results: list[Counter] = [Counter() for _ in range(THREADS)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(THREADS)

    def post(t: int) -> None:
        try:
            barrier.wait()
            mine, neighbours = shares[t], shares[(t + 1) % THREADS]
            for start in range(0, len(mine), BATCH):
                # each POST repeats one item of the next thread's share: repeats race the originals
                batch = mine[start:start + BATCH] + neighbours[start // BATCH:start // BATCH + 1]
                results[t].update(store.record_feedback(batch))
        except BaseException as error:  # noqa: BLE001 - reported by the main thread
            errors.append(error)

    threads = [threading.Thread(target=post, args=(t,)) for t in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert errors == []
    total = sum(results, Counter())
    repeats = sum(len(range(0, len(shares[t]), BATCH)) for t in range(THREADS))
    assert total[STORED] == 1_800 and total[UNMATCHED] == 200 and total[DUPLICATE] == repeats

    with store.engine.connect() as connection:
        keys = set(connection.execute(select(FEEDBACK.c.dedupe_key)).scalars())
        linked = connection.execute(select(func.count()).where(FEEDBACK.c.card_id.is_not(None))).scalar_one()
    assert keys == {item.dedupe_key for item in items}
    assert linked == 1_800
    report = store.report()
    assert (report.totals["issued"], report.totals["overridden"], report.totals["unmatchedFeedback"]) == (900, 900, 200)

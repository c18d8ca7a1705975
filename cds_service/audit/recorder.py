"""Recording cards off the request thread: the hook response never waits for, or fails on, the database.

``CardRecorder.submit(cards, **fields)`` puts the cards of one response on a bounded queue and
returns at once; one background thread per process writes them with ``Store.record_responses``,
the responses that arrive within ``BATCH_WAIT_SECONDS`` of each other (at most ``MAX_BATCH``) in
one transaction. A full queue drops the record, a database error skips it: both are counted (for
/metrics) and logged without any patient data; when a batch fails, its responses are retried one
by one, so that one unwritable response costs no other its record. ``close()`` (also run at
process exit) writes what is queued before the thread stops. After a fork (gunicorn workers) the
first ``submit`` in the child starts a fresh thread and queue and resets the inherited connection pool.
"""

import atexit
import logging
import os
import queue
import threading
import time
from collections.abc import Sequence

from cds_service.audit.store import AuditError
from cds_service.audit.store import IssuedCard
from cds_service.audit.store import Store
from cds_service.metrics import metrics

log = logging.getLogger("cds_service.audit")
_STOP = object()
BATCH_WAIT_SECONDS = 0.05  # how long the first response of a batch waits for others to share its transaction
MAX_BATCH = 200            # responses per transaction


class CardRecorder:
    def __init__(self, store: Store, max_pending: int = 10_000):
        self.store = store
        self.max_pending = max_pending
        self.recorded = 0   # cards written
        self.failed = 0     # responses whose cards could not be written (database error)
        self.dropped = 0    # responses not queued because the queue was full
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._queue: queue.Queue = queue.Queue(max_pending)
        self._thread: threading.Thread | None = None

    def _ensure_worker(self) -> None:
        if self._pid == os.getpid() and self._thread is not None and self._thread.is_alive():
            return
        with self._lock:
            if self._pid == os.getpid() and self._thread is not None and self._thread.is_alive():
                return
            if self._pid is None:  # the first thread of this recorder (a forked child inherits the hook)
                atexit.register(self.close)
            elif self._pid != os.getpid():
                self.store.after_fork()
                self._queue = queue.Queue(self.max_pending)
            self._pid = os.getpid()
            self._thread = threading.Thread(target=self._work, name="cds-audit-recorder", daemon=True)
            self._thread.start()

    def submit(self, cards: Sequence[IssuedCard], **fields) -> bool:
        """Queue the cards of one response (``fields`` as for ``Store.record_responses``, with ``issued_at``)."""
        if not cards:
            return True
        self._ensure_worker()
        try:
            self._queue.put_nowait((tuple(cards), fields))
        except queue.Full:
            with self._lock:
                self.dropped += 1
            metrics().database_errors.labels("audit-queue-full").inc()
            log.error("audit queue full: cards not recorded", extra={"fields": {"cards": len(cards)}})
            return False
        return True

    def _work(self) -> None:
        while True:
            batch = self._next_batch()
            try:
                self._write([job for job in batch if job is not _STOP])
            finally:
                for _ in batch:
                    self._queue.task_done()
            if batch[-1] is _STOP:
                return

    def _next_batch(self) -> list:
        """The next queued jobs: one waited for, then those queued within ``BATCH_WAIT_SECONDS``; ``_STOP`` ends it."""
        batch = [self._queue.get()]
        if batch[0] is not _STOP:
            time.sleep(BATCH_WAIT_SECONDS)
        while len(batch) < MAX_BATCH and batch[-1] is not _STOP:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return batch

    def _write(self, jobs: list) -> None:
        if not jobs:
            return
        try:
            written = self.store.record_responses(jobs)
        except (AuditError, ValueError) as error:
            if len(jobs) > 1:  # retried one by one: only the responses that cannot be written are lost
                for job in jobs:
                    self._write([job])
                return
            with self._lock:
                self.failed += 1
            metrics().database_errors.labels("audit-record").inc()
            log.error("audit: cards not recorded", extra={"fields": {"error": str(error), "cards": len(jobs[0][0])}})
        else:
            with self._lock:
                self.recorded += written

    def flush(self) -> None:
        """Wait until every queued record has been written or has failed (tests, shutdown)."""
        if self._thread is not None and self._pid == os.getpid():
            self._queue.join()

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued, then stop the thread; gives up after about ``timeout`` seconds (logged)."""
        if self._thread is not None and self._pid == os.getpid() and self._thread.is_alive():
            try:
                self._queue.put(_STOP, timeout=timeout)
            except queue.Full:
                pass
            self._thread.join(timeout=timeout)
            if self._thread.is_alive():
                log.error("audit: the writer did not finish in time; queued cards not recorded",
                          extra={"fields": {"responses": self._queue.qsize()}})

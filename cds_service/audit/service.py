"""The audit as the HTTP views use it: record each response's cards, filter repeated alerts, store feedback.

``Audit`` joins the ``Store`` (the database), the ``CardRecorder`` (writes off the request thread)
and the site's choices (patient key secret, repeated-alerts filter). A database failure never fails
a hook response: recording failures are counted in ``AuditCounters`` (which /metrics can export)
and logged without patient data. Feedback is written synchronously, so that the EHR learns of an
outage (``AuditUnavailable``, answered 503) and retries.
"""

import dataclasses
import logging
import threading
from collections.abc import Mapping
from collections.abc import Sequence

from cds_service.audit.feedback import FeedbackItem
from cds_service.audit.recorder import CardRecorder
from cds_service.audit.store import DUPLICATE
from cds_service.audit.store import SEVERITY
from cds_service.audit.store import STORED
from cds_service.audit.store import UNMATCHED
from cds_service.audit.store import AuditUnavailable
from cds_service.audit.store import IssuedCard
from cds_service.audit.store import Store
from cds_service.audit.store import pseudonymise
from cds_service.metrics import metrics
from cds_service.policy import PolicyIdentity

log = logging.getLogger("cds_service.audit")
FIRST_HOOK, SECOND_HOOK = "order-select", "order-sign"


class AuditCounters:
    """Thread-safe counts of what the audit did; ``as_dict()`` for /metrics and the tests."""

    NAMES = ("cards_submitted", "cards_suppressed", "feedback_stored", "feedback_duplicate", "feedback_unmatched",
             "feedback_invalid", "feedback_failed", "repeat_lookup_failed", "record_failed")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(self.NAMES, 0)

    def add(self, name: str, amount: int = 1) -> None:
        with self._lock:
            self._counts[name] += amount
        if name.endswith("_failed"):  # a database error: on the dashboards too
            metrics().database_errors.labels(f"audit-{name.removesuffix('_failed').replace('_', '-')}").inc(amount)

    def as_dict(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)


@dataclasses.dataclass(frozen=True)
class HookCall:
    """What the audit needs to know about one hook call (no FHIR data, no token)."""

    service_id: str
    hook: str
    hook_instance: str | None
    patient_id: str
    order_references: tuple[str, ...]


class Audit:
    def __init__(self, store: Store, *, knowledge_version: str, policy: PolicyIdentity,
                 patient_key_secret: str | None, filter_repeated_alerts: bool = False,
                 recorder: CardRecorder | None = None):
        if filter_repeated_alerts and not patient_key_secret:
            raise ValueError("the repeated-alerts filter needs CDS_AUDIT_PATIENT_KEY_SECRET "
                             "(cards are matched by a keyed hash of patient and draft order)")
        self.store = store
        self.recorder = recorder or CardRecorder(store)
        self.counters = AuditCounters()
        self.knowledge_version = knowledge_version
        self.policy = policy
        self._secret = patient_key_secret
        self.filter_repeated_alerts = filter_repeated_alerts

    def counts(self) -> dict[str, int]:
        """The audit's counters and the recorder's (cards written, failed and dropped responses)."""
        return {**self.counters.as_dict(), "cards_recorded": self.recorder.recorded,
                "cards_record_failed": self.recorder.failed, "cards_dropped": self.recorder.dropped}

    def _key(self, *parts: str) -> str | None:
        return pseudonymise("\x00".join(parts), self._secret) if self._secret else None

    def record_response(self, call: HookCall, cards: Sequence[Mapping], rule_ids: Sequence[Sequence[str]]) -> list:
        """Record the cards of one response; returns the cards to show (all of them unless the
        repeated-alerts filter suppressed some, which are recorded as suppressed). Never raises."""
        if not cards:
            return list(cards)
        try:
            return self._record(call, cards, rule_ids)
        except Exception:  # noqa: BLE001 - the hook response must not fail on the audit
            self.counters.add("record_failed")
            log.exception("audit: cards not recorded", extra={"fields": {"hookInstance": call.hook_instance}})
            return list(cards)

    def _record(self, call: HookCall, cards: Sequence[Mapping], rule_ids: Sequence[Sequence[str]]) -> list:
        order_key = self._key("order", call.patient_id, *sorted(call.order_references)) \
            if call.order_references else None
        hidden = self._repeats(call, cards, order_key)
        issued = [IssuedCard.from_card(card, ids, suppressed=index in hidden)
                  for index, (card, ids) in enumerate(zip(cards, rule_ids, strict=True))]
        self.recorder.submit(issued, service_id=call.service_id, hook=call.hook, hook_instance=call.hook_instance,
                             patient_key=self._key(call.patient_id), order_key=order_key,
                             knowledge_version=self.knowledge_version, policy=self.policy,
                             issued_at=self.store.clock())
        self.counters.add("cards_submitted", len(issued))
        if hidden:
            self.counters.add("cards_suppressed", len(hidden))
            log.info("repeated alerts suppressed", extra={"fields": {
                "hookInstance": call.hook_instance, "topics": [cards[i]["source"]["topic"]["code"] for i in hidden]}})
        return [card for index, card in enumerate(cards) if index not in hidden]

    def _repeats(self, call: HookCall, cards: Sequence[Mapping], order_key: str | None) -> set[int]:
        """Indexes of the cards already shown at order-select for this draft order and patient, no less severe.

        Only at order-sign and only with the option on. If the database cannot answer, nothing is
        suppressed: showing a card twice is safer than hiding one.
        """
        if not (self.filter_repeated_alerts and call.hook == SECOND_HOOK and order_key):
            return set()
        try:
            shown = self.store.shown_severity(order_key, FIRST_HOOK)
        except AuditUnavailable as error:
            self.counters.add("repeat_lookup_failed")
            log.error("audit: repeated-alerts lookup failed; no card suppressed", extra={"fields": {"error": str(error)}})
            return set()
        return {index for index, card in enumerate(cards)
                if (topic := card["source"]["topic"]["code"]) in shown
                and SEVERITY[card["indicator"]] <= SEVERITY[shown[topic]]}

    def store_feedback(self, service_id: str, items: Sequence[FeedbackItem]) -> list[str]:
        """Store the items (``stored``, ``duplicate`` or ``unmatched`` each); ``AuditUnavailable`` on an outage."""
        if not items:
            return []
        try:
            outcomes = self.store.record_feedback(items, service_id=service_id)
        except AuditUnavailable as error:
            self.counters.add("feedback_failed", len(items))
            log.error("audit: feedback not stored", extra={"fields": {"error": str(error), "items": len(items)}})
            raise
        for outcome, name in ((STORED, "feedback_stored"), (DUPLICATE, "feedback_duplicate"),
                              (UNMATCHED, "feedback_unmatched")):
            self.counters.add(name, outcomes.count(outcome))
        return outcomes

    def close(self) -> None:
        self.recorder.flush()
        self.recorder.close()

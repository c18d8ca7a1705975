"""The one-way check of a hook request: envelope -> orders -> chart -> snapshot -> rules -> composition -> cards.

``OrderCheck`` holds what is loaded once at start-up (knowledge, policy, medication matcher,
chart source) and is shared by the HTTP view and the ``evaluate`` command. A crash anywhere
after the envelope was understood becomes a visible "check could not run" card, never a 500
and never an empty card list.
"""

import dataclasses
import datetime
import logging
import zoneinfo
from collections.abc import Callable

from cds_service.cards import cards_for
from cds_service.chart.prefetch import prefetch_templates
from cds_service.chart.source import ChartSource
from cds_service.chart.source import RequestScope
from cds_service.chart.source import ServerAllowList
from cds_service.errors import CdsError
from cds_service.errors import PreconditionFailed
from cds_service.fhir.dates import shown_in
from cds_service.fhir.read import child
from cds_service.fhir.read import items
from cds_service.fhir.read import text
from cds_service.findings import Finding
from cds_service.metrics import metrics
from cds_service.orders.milnacipran_orders import MilnacipranOrder
from cds_service.orders.milnacipran_orders import find_milnacipran_orders
from cds_service.orders.products import MedicationMatcher
from cds_service.orders.products import medication_index
from cds_service.policy import Policy
from cds_service.request.envelope import Envelope
from cds_service.rules.engine import evaluate_rules
from cds_service.snapshot import build_snapshot

log = logging.getLogger(__name__)

CHECK_FAILED = Finding(
    indicator="warning",
    summary="Milnacipran order check could not run: review this order against the label yourself.",
    detail="An internal error stopped the automated milnacipran check, so **no** interaction, renal, "
           "blood-pressure or dose check was done for this order. The error was logged for the CDS team.",
    label_section="Savella prescribing information (all sections)",
    topic="data-availability",
    rule_id="check-failed",
)


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


@dataclasses.dataclass(frozen=True)
class Assessment:
    """The response to one request, and the rule ids behind each of its cards (same order), for the audit."""

    response: dict
    rule_ids: tuple[tuple[str, ...], ...] = ()
    order_references: tuple[str, ...] = ()  # "MedicationRequest/<id>" of the milnacipran drafts that have an id


class OrderCheck:
    def __init__(self, policy: Policy, chart_source: ChartSource, clock: Callable[[], datetime.datetime] = utc_now,
                 time_zone: zoneinfo.ZoneInfo = zoneinfo.ZoneInfo("UTC")):
        self.time_zone = time_zone  # cards show dates and times in the site's zone
        self.policy = policy
        self.knowledge = policy.knowledge
        self.matcher = MedicationMatcher(self.knowledge)
        self.templates = prefetch_templates(self.knowledge)
        self.chart_source = chart_source
        self.clock = clock

    def evaluate(self, envelope: Envelope, fhir_servers: ServerAllowList | None = None) -> dict:
        """The CDS Hooks response for one request."""
        return self.assess(envelope, fhir_servers).response

    def assess(self, envelope: Envelope, fhir_servers: ServerAllowList | None = None) -> Assessment:
        """The CDS Hooks response for one request, with the rule ids of each card (for the audit).

        ``fhir_servers``: the FHIR servers the calling client may name (None: the settings' default).
        Every gathering of the request shares one scope: one deadline, one byte budget.
        """
        with shown_in(self.time_zone), self.chart_source.scope(fhir_servers) as scope:
            try:
                orders, findings = self.findings(envelope, scope)
            except CdsError:
                raise
            except Exception:
                log.exception("order check failed", extra={"fields": {"hookInstance": envelope.hook_instance}})
                orders, findings = (), [CHECK_FAILED]
            drafts = tuple(order.reference for order in orders if order.has_id)
            with metrics().phase_seconds.labels("render").time():
                answer = cards_for(findings, drafts, self.policy, envelope.hook)
            return Assessment({"cards": answer.cards}, answer.rule_ids, drafts)

    def findings(self, envelope: Envelope, scope: RequestScope | None = None
                 ) -> tuple[tuple[MilnacipranOrder, ...], list[Finding]]:
        """The milnacipran drafts and the rules' findings for them (none: not a milnacipran order)."""
        if scope is None:
            with self.chart_source.scope(None) as scope:
                return self.findings(envelope, scope)
        orders = find_milnacipran_orders(envelope, self.matcher)
        unresolved = self._unresolved_medication_references(envelope, orders)
        if unresolved:  # read only those Medications first: most such orders are not milnacipran
            fetched = self.chart_source.gather(envelope, {}, unresolved, scope).medications
            orders = find_milnacipran_orders(envelope, self.matcher, fetched)
        if not orders:
            return (), []
        with metrics().phase_seconds.labels("gather").time():
            chart = self.chart_source.gather(envelope, self.templates, (), scope)
        if chart.patient is None:
            raise PreconditionFailed("The Patient resource could not be had from prefetch or the FHIR server, "
                                     "so no milnacipran check could be made.")
        with metrics().phase_seconds.labels("rules").time():  # the snapshot, then the rules on it
            snapshot = build_snapshot(chart, orders, envelope.draft_entries(), self.matcher, self.clock(),
                                      self.policy.thresholds)
            return orders, evaluate_rules(orders, snapshot, self.policy)

    def _unresolved_medication_references(self, envelope: Envelope, orders) -> list[str]:
        """medicationReferences of unidentified drafts that neither the Bundle nor a contained resource holds."""
        if orders:
            return []
        known = medication_index(items(envelope.draft_orders, "entry"))
        references = [text(child(resource, "medicationReference"), "reference") for resource in envelope.draft_entries()]
        return [reference for reference in references
                if reference and not reference.startswith("#") and reference not in known]

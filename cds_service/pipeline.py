"""The one-way check of a hook request: envelope -> orders -> chart -> snapshot -> rules -> cards.

``OrderCheck`` holds what is loaded once at start-up (knowledge, policy, medication matcher)
and is shared by the HTTP view and the ``evaluate`` command. A crash anywhere after the
envelope was understood becomes a visible "check could not run" card, never a 500 and never
an empty card list.
"""

import logging

from cds_service.cards import render_cards
from cds_service.envelope import Envelope
from cds_service.errors import CdsError
from cds_service.findings import Finding
from cds_service.knowledge import Knowledge
from cds_service.medications import MedicationMatcher
from cds_service.orders import find_milnacipran_orders

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


class OrderCheck:
    def __init__(self, knowledge: Knowledge):
        self.knowledge = knowledge
        self.matcher = MedicationMatcher(knowledge)

    def evaluate(self, envelope: Envelope) -> dict:
        """The CDS Hooks response for one request."""
        try:
            orders = find_milnacipran_orders(envelope, self.matcher)
            if not orders:
                return {"cards": []}
            return {"cards": self._cards(self._findings(envelope, orders))}
        except CdsError:
            raise
        except Exception:
            log.exception("order check failed", extra={"fields": {"hookInstance": envelope.hook_instance}})
            return {"cards": self._cards([CHECK_FAILED])}

    def _findings(self, envelope: Envelope, orders) -> list[Finding]:
        """Findings of the rules for these orders (the clinical rules come in their own change)."""
        return []

    def _cards(self, findings: list[Finding]) -> list[dict]:
        return render_cards(findings, self.knowledge.version, self.knowledge.override_reasons)

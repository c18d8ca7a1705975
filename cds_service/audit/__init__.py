"""Audit log of the cards issued and the feedback on them, in SQLite or PostgreSQL (SQLAlchemy 2 + Alembic).

The pieces, each usable without Flask:
- ``Store``: ``from_url``, ``migrate``, ``record_cards`` (``record_responses`` for several), ``record_feedback``,
  ``purge``, ``report``, ``claim_once``;
- ``parse_feedback_items``: CDS Hooks feedback validated item by item;
- ``CardRecorder``: records cards on a background thread, so a hook response never waits for the database;
- ``Audit``: what the HTTP views use (record a response's cards, filter repeated alerts, store feedback, counters);
- ``pseudonymise``: the patient key stored instead of the patient id;
- ``report``: the committee's report and its text, CSV, JSON and HTML renderers;
- ``commands.add_commands``: the ``migrate``, ``report`` and ``purge`` sub-commands.
"""

from cds_service.audit.feedback import FeedbackError
from cds_service.audit.feedback import FeedbackItem
from cds_service.audit.feedback import parse_feedback_items
from cds_service.audit.recorder import CardRecorder
from cds_service.audit.service import Audit
from cds_service.audit.service import AuditCounters
from cds_service.audit.service import HookCall
from cds_service.audit.store import DUPLICATE
from cds_service.audit.store import STORED
from cds_service.audit.store import UNMATCHED
from cds_service.audit.store import AuditConfigError
from cds_service.audit.store import AuditError
from cds_service.audit.store import AuditUnavailable
from cds_service.audit.store import IssuedCard
from cds_service.audit.store import PolicyIdentity
from cds_service.audit.store import Store
from cds_service.audit.store import pseudonymise

__all__ = ["DUPLICATE", "STORED", "UNMATCHED", "Audit", "AuditConfigError", "AuditCounters", "AuditError",
           "AuditUnavailable", "CardRecorder", "FeedbackError", "FeedbackItem", "HookCall", "IssuedCard",
           "PolicyIdentity", "Store", "parse_feedback_items", "pseudonymise"]

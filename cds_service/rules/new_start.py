"""Whether this order starts milnacipran (kb §1b D3), and which active order it renews or changes.

The titration, suicidality and renal rules ask whether an order is a new start. A draft that
points at the patient's active milnacipran order (its ``priorPrescription`` or a ``basedOn``, by id
or identifier, or a shared ``groupIdentifier``: code-families.md §6) is the same course at a new
dose: not a duplicate, not a new start.
"""

from cds_service.policy import Policy
from cds_service.snapshot import Snapshot


def is_new_start(snapshot: Snapshot, policy: Policy) -> bool:
    """No milnacipran other than these drafts active, or stopped within the look-back."""
    days = policy.threshold("new_start_lookback_days")
    for use in snapshot.medications_in("milnacipran"):
        if use.status == "active":
            return False
        if use.status == "stopped" and (use.stopped_at is None or snapshot.days_since(use.stopped_at) <= days):
            return False
    return True


def renewed_uses(order, snapshot: Snapshot) -> list:
    """The patient's active milnacipran orders that this draft renews or changes."""
    found = []
    for use in snapshot.medications_in("milnacipran"):
        if use.status != "active" or not use.reference.startswith("MedicationRequest/"):
            continue
        by_reference = use.reference in order.links
        by_identifier = any(f"id:{identifier}" in order.links for identifier in use.identifiers)
        by_group = order.group_identifier is not None and use.group_identifier == order.group_identifier
        if by_reference or by_identifier or by_group:
            found.append(use)
    return found


def dose_change(order, snapshot: Snapshot) -> tuple[float, float] | None:
    """(old, new) mg/day when this draft renews an active order at another readable daily dose."""
    new = order.dosing.max_daily_mg if order.dosing else None
    old = [use.daily_mg for use in renewed_uses(order, snapshot) if use.daily_mg is not None]
    if new is None or not old or max(old) == new:
        return None
    return max(old), new

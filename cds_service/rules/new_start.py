"""Whether this order starts milnacipran (kb §1b D3): the titration, suicidality and renal rules ask."""

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

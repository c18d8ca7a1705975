"""Duplicate therapy (kb §1b D5): another milnacipran order, or levomilnacipran (its enantiomer)."""

from cds_service.findings import Finding
from cds_service.findings.suggestions import remove_drafts
from cds_service.rules.new_start import renewed_uses
from cds_service.rules.wording import bullet_list
from cds_service.rules.wording import describe_use

SECTION = "Savella PI §2.1 Dosing (same moiety: therapeutic duplication)"


def duplicate_milnacipran(orders, snapshot, policy):
    """D5: milnacipran active or on another draft, levomilnacipran active, or two milnacipran drafts (warning).

    Not for the active order a draft renews or changes (priorPrescription, basedOn, groupIdentifier).
    """
    renewed = {use.reference for order in orders for use in renewed_uses(order, snapshot)}
    uses = [u for u in snapshot.medications_in("milnacipran", "levomilnacipran")
            if u.is_current and u.reference not in renewed]
    drafts = [u for u in uses if u.status == "draft"]
    lines = [describe_use(u, snapshot.now) for u in uses]
    if len(orders) > 1:
        lines += [f"**milnacipran** — {order.display} (draft order {order.reference})" for order in orders[1:]]
    if not lines:
        return []
    kept = orders[0].reference  # the draft being checked stays; drafts sharing its id cannot be told apart
    removable = list(dict.fromkeys(r for r in [u.reference for u in drafts] + [o.reference for o in orders[1:] if o.has_id]
                                   if r != kept))
    return [Finding("warning", "Milnacipran is already ordered or active (or levomilnacipran): avoid duplicate therapy.",
                    "If this order replaces the existing one, discontinue the old order.\n\n" + bullet_list(lines),
                    SECTION, remove_drafts("Remove the other milnacipran draft", removable), rule_id="D5")]


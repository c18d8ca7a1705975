"""What several rule families share: one-click fixes to the draft, medication wording, new start."""

import copy
import datetime
from collections.abc import Sequence

from cds_service.cards.render import prune
from cds_service.fhir.read import child
from cds_service.fhir.read import items
from cds_service.fhir.dates import show_date
from cds_service.findings import Action
from cds_service.findings import Suggestion
from cds_service.snapshot.medication_history import MedicationUse
from cds_service.orders.milnacipran_orders import MilnacipranOrder
from cds_service.orders.milnacipran_orders import is_valid_r4
from cds_service.policy import Policy
from cds_service.snapshot import Snapshot

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
KEPT_DOSAGE_FIELDS = ("route", "method", "site", "additionalInstruction", "patientInstruction")
# Quantity, supply and refills were for the old sig: they are dropped for the prescriber to re-enter,
# not silently carried over to a new dose (a 30-tablet fill of a new BID sig is not 30 days).
DROPPED_DISPENSE_FIELDS = ("quantity", "expectedSupplyDuration", "numberOfRepeatsAllowed", "initialFill")


def cancel_orders(orders: Sequence[MilnacipranOrder]) -> tuple[Suggestion, ...]:
    """One suggestion deleting every milnacipran draft (kb §0.5 Decision 10); none if no draft has an id."""
    actions = tuple(Action("delete", f"Remove the draft order {order.display}", resource_id=order.reference)
                    for order in orders if order.has_id)
    return (Suggestion("Cancel the milnacipran order", actions),) if actions else ()


def _tablet_code(policy: Policy, strength_mg: float):
    return next((code for code in policy.knowledge.milnacipran_codes.values()
                 if code.tty == "SCD" and code.strength_mg == strength_mg and "tablet" in code.name.lower()), None)


def dosage(mg: float, per_day: int, text: str) -> dict:
    return {
        "text": text,
        "timing": {"repeat": {"frequency": per_day, "period": 1, "periodUnit": "d"}},
        "doseAndRate": [{"doseQuantity": {"value": mg, "unit": "mg", "system": UCUM, "code": "mg"}}],
    }


def replaced_order(order: MilnacipranOrder, medication: dict, dosage_instructions: list[dict],
                   dispense: dict | None = None) -> dict:
    """A copy of the draft with a new medication and sig; same id, the original never mutated.

    The new sig keeps the old one's route, method, site and instructions and its start date;
    the narrative ``text`` and the old quantity/supply/refills are dropped (``dispense`` adds new ones).
    """
    draft = copy.deepcopy(dict(order.resource))
    draft.pop("medicationReference", None)
    draft.pop("text", None)
    old = next(iter(items(draft, "dosageInstruction")), {})
    start = child(child(child(old, "timing"), "repeat"), "boundsPeriod").get("start")
    for instruction in dosage_instructions:
        instruction.update({key: old[key] for key in KEPT_DOSAGE_FIELDS if key in old})
    if start and len(dosage_instructions) == 1:
        dosage_instructions[0]["timing"]["repeat"]["boundsPeriod"] = {"start": start}
    draft["medicationCodeableConcept"] = medication
    draft["dosageInstruction"] = dosage_instructions
    request = {k: v for k, v in child(draft, "dispenseRequest").items() if k not in DROPPED_DISPENSE_FIELDS}
    request.update(dispense or {})
    if request:
        draft["dispenseRequest"] = request
    else:
        draft.pop("dispenseRequest", None)
    return draft


def for_order(label: str, order: MilnacipranOrder, orders: Sequence[MilnacipranOrder]) -> str:
    """A suggestion label that names the draft when the session has several."""
    return label if len(orders) == 1 else f"{label}: {order.display} ({order.id})"


def change_dose(order: MilnacipranOrder, policy: Policy, mg: float, per_day: int, label: str,
                recommended: bool = False) -> Suggestion | None:
    """Update the draft (same id) to ``mg`` tablets ``per_day`` times a day.

    None when the draft cannot be echoed back as valid R4, no tablet has that strength, or the
    draft is a titration pack (its steps are not replaced by a flat dose; the card says why).
    """
    code = _tablet_code(policy, mg)
    if code is None or order.match.titration_pack:
        return None
    medication = {"coding": [{"system": RXNORM, "code": code.rxcui, "display": code.name}], "text": code.name}
    times = {1: "once", 2: "twice"}.get(per_day, f"{per_day} times")
    resource = replaced_order(order, medication, [dosage(mg, per_day, f"{mg:g} mg by mouth {times} a day")])
    return update_draft(order, label, f"Change {order.display} to {mg:g} mg {times} a day "
                        "(dispense quantity to re-enter)", resource, recommended)


def update_draft(order: MilnacipranOrder, label: str, description: str, resource: dict,
                 recommended: bool = False) -> Suggestion | None:
    """An ``update`` of the draft, or None when the draft has no id or the new resource, exactly as it
    will be sent (empty values pruned), is not valid R4: the card then explains, without a button."""
    resource = prune(resource)
    if not order.has_id or not is_valid_r4(resource):
        return None
    return Suggestion(label, (Action("update", description, resource=resource),), recommended)


def order_observation(policy: Policy, kinds: Sequence[str], patient_id: str, label: str, why: str) -> Suggestion:
    """Create ServiceRequests for the observations of ``kinds`` (e.g. a serum creatinine)."""
    actions = []
    for kind in kinds:
        loinc = policy.knowledge.loinc_of(kind)
        display = policy.knowledge.observation_displays[loinc]
        actions.append(Action("create", f"Order {display}", resource={
            "resourceType": "ServiceRequest",
            "status": "draft",
            "intent": "order",
            "code": {"coding": [{"system": LOINC, "code": loinc, "display": display}], "text": display},
            "subject": {"reference": f"Patient/{patient_id}"},
            "reasonCode": [{"text": why}],
        }))
    return Suggestion(label, tuple(actions))


def patient_id(orders: Sequence[MilnacipranOrder]) -> str:
    return orders[0].patient_id


def describe_use(use: MedicationUse, now: datetime.datetime) -> str:
    """e.g. 'phenelzine — Nardil 15 mg (MedicationRequest, stopped 2026-11-15)'."""
    if use.status == "draft":
        state = "another draft order in this session"
    elif use.status == "active":
        state = f"active since {show_date(use.start)}" if use.start else "active"
    else:
        stopped = use.stopped_on or (show_date(use.stopped_at) if use.stopped_at else None)
        state = f"stopped {stopped}" if stopped else "stopped, stop date not recorded"
    route = f", {' / '.join(sorted(use.routes))}" if use.routes else ""
    return f"**{use.ingredient.name}** — {use.display} ({use.reference.split('/')[0]}, {state}{route})"


def name_list(names, limit: int = 3) -> str:
    """'a, b, c' or 'a, b, c and 2 more': short enough for a card summary."""
    names = sorted(set(names))
    shown = ", ".join(names[:limit])
    return shown if len(names) <= limit else f"{shown} and {len(names) - limit} more"


def bullet_list(lines: Sequence[str]) -> str:
    return "\n".join(f"- {line}" for line in lines)


def is_new_start(snapshot: Snapshot, policy: Policy) -> bool:
    """No milnacipran other than these drafts active, or stopped within the look-back (kb §1b D3)."""
    days = policy.threshold("new_start_lookback_days")
    for use in snapshot.medications_in("milnacipran"):
        if use.status == "active":
            return False
        if use.status == "stopped" and (use.stopped_at is None or snapshot.days_since(use.stopped_at) <= days):
            return False
    return True

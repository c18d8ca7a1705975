"""The one-click fixes a card offers, built and validated in one place.

Each builder returns a ``Suggestion`` whose actions change the draft order (a new sig on the same
id, a cancel by ``resourceId``) or create a new order (a ServiceRequest for a missing lab). An
``update`` is pruned of empty values; a draft whose kept part is not valid R4 (so cannot be
echoed back validly) gets no button (the card's text still explains). The incoming draft
is never mutated: updates are built on a copy.
"""

import copy
from collections.abc import Sequence

from cds_service.fhir.r4 import is_valid_medication_request
from cds_service.fhir.r4 import prune
from cds_service.fhir.read import child
from cds_service.fhir.read import items
from cds_service.fhir.vocabulary import LOINC
from cds_service.fhir.vocabulary import RXNORM
from cds_service.fhir.vocabulary import UCUM
from cds_service.findings import Action
from cds_service.findings import Suggestion
from cds_service.knowledge import Knowledge
from cds_service.orders.milnacipran_orders import MilnacipranOrder

KEPT_DOSAGE_FIELDS = ("route", "method", "site", "additionalInstruction", "patientInstruction")
# Quantity, supply and refills were for the old sig: they are dropped for the prescriber to re-enter,
# not silently carried over to a new dose (a 30-tablet fill of a new BID sig is not 30 days).
DROPPED_DISPENSE_FIELDS = ("quantity", "expectedSupplyDuration", "numberOfRepeatsAllowed", "initialFill")


def for_order(label: str, order: MilnacipranOrder, orders: Sequence[MilnacipranOrder]) -> str:
    """A suggestion label that names the draft when the session has several."""
    return label if len(orders) == 1 else f"{label}: {order.display} ({order.id})"


def cancel_orders(orders: Sequence[MilnacipranOrder]) -> tuple[Suggestion, ...]:
    """One suggestion deleting every milnacipran draft (kb §0.5 Decision 10); none if no draft has an id."""
    actions = tuple(Action("delete", f"Remove the draft order {order.display}", resource_id=order.reference)
                    for order in orders if order.has_id)
    return (Suggestion("Cancel the milnacipran order", actions),) if actions else ()


def remove_drafts(label: str, references: Sequence[str]) -> tuple[Suggestion, ...]:
    """One suggestion deleting other draft orders of the session by reference; none without any."""
    actions = tuple(Action("delete", f"Remove the duplicate draft {reference}", resource_id=reference)
                    for reference in references)
    return (Suggestion(label, actions),) if actions else ()


def dosage(mg: float, per_day: int, text: str) -> dict:
    return {
        "text": text,
        "timing": {"repeat": {"frequency": per_day, "period": 1, "periodUnit": "d"}},
        "doseAndRate": [{"doseQuantity": {"value": mg, "unit": "mg", "system": UCUM, "code": "mg"}}],
    }


def titration_schedule(thresholds, up_to_daily_mg: float | None = None) -> list[dict]:
    """The label's titration: day 1 12.5 mg once; days 2-3 12.5 mg BID; days 4-7 25 mg BID; then 50 mg BID.

    ``up_to_daily_mg`` stops it at a lower daily dose, the last step open-ended: in severe renal
    impairment the titration ends at the renal starting maximum (12.5 mg once, 12.5 mg BID, then 25 mg BID).
    """
    day1 = thresholds["titration_day1_mg"]
    steps = [(day1, 1, 1, "Day 1"), (thresholds["titration_days2_3_daily_mg"] / 2, 2, 2, "Days 2-3"),
             (thresholds["titration_days4_7_daily_mg"] / 2, 2, 4, "Days 4-7"),
             (thresholds["titration_day8_daily_mg"] / 2, 2, None, "Day 8 onward")]
    if up_to_daily_mg is not None:
        last = next(index for index, (mg, per_day, _, _) in enumerate(steps) if mg * per_day >= up_to_daily_mg)
        first_day = 1 + sum(days for _, _, days, _ in steps[:last])
        steps = steps[:last] + [(steps[last][0], steps[last][1], None, f"Day {first_day} onward")]
    instructions = []
    for sequence, (mg, per_day, days, label) in enumerate(steps, start=1):
        instruction = dosage(mg, per_day, f"{label}: {mg:g} mg {'once' if per_day == 1 else 'twice'} a day")
        instruction["sequence"] = sequence
        if days:
            instruction["timing"]["repeat"]["boundsDuration"] = {"value": days, "unit": "d", "system": UCUM, "code": "d"}
        instructions.append(instruction)
    return instructions


def _replaced_order(order: MilnacipranOrder, medication: dict, dosage_instructions: list[dict],
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


def _update_draft(order: MilnacipranOrder, label: str, description: str, resource: dict,
                  recommended: bool = False) -> Suggestion | None:
    """An ``update`` of the draft (empty values pruned), or None when the draft has no id or what an
    update keeps of it is not valid R4: the card then explains, without a button."""
    if not order.has_id or not _keeps_valid_r4(order):
        return None
    return Suggestion(label, (Action("update", description, resource=prune(resource)),), recommended)


def _keeps_valid_r4(order: MilnacipranOrder) -> bool:
    """Whether what every update keeps of the draft is valid R4: the draft with its medication, sig and
    fill replaced by plain valid ones. What the builders put there instead is valid R4 by construction
    (the tests check each builder), so only the draft's own part is validated: the R4 models are slow
    on a four-step titration sig, and a draft whose only slip is in the part replaced (an old-style
    sig, say) still gets its button."""
    plain = _replaced_order(order, {"text": order.display}, [dosage(1, 1, "1 mg by mouth once a day")])
    return is_valid_medication_request(prune(plain))


def _medication(code) -> dict:
    return {"coding": [{"system": RXNORM, "code": code.rxcui, "display": code.name}], "text": code.name}


def change_dose(order: MilnacipranOrder, knowledge: Knowledge, mg: float, per_day: int, label: str,
                recommended: bool = False) -> Suggestion | None:
    """Update the draft (same id) to ``mg`` tablets ``per_day`` times a day.

    None when the draft cannot be echoed back as valid R4, no tablet has that strength, or the
    draft is a titration pack (its steps are not replaced by a flat dose; the card says why).
    """
    code = next((code for code in knowledge.milnacipran_codes.values()
                 if code.tty == "SCD" and code.strength_mg == mg and "tablet" in code.name.lower()), None)
    if code is None or order.match.titration_pack:
        return None
    times = {1: "once", 2: "twice"}.get(per_day, f"{per_day} times")
    resource = _replaced_order(order, _medication(code), [dosage(mg, per_day, f"{mg:g} mg by mouth {times} a day")])
    return _update_draft(order, label, f"Change {order.display} to {mg:g} mg {times} a day "
                         "(dispense quantity to re-enter)", resource, recommended)


def switch_to_titration_pack(order: MilnacipranOrder, knowledge: Knowledge, thresholds, label: str
                             ) -> Suggestion | None:
    """Update the draft to the Savella titration pack with the label's titration sig."""
    pack = next(code for code in knowledge.milnacipran_codes.values() if code.titration_pack and code.tty == "BPCK")
    resource = _replaced_order(order, _medication(pack), titration_schedule(thresholds),
                               {"quantity": {"value": 1, "unit": "pack"}, "numberOfRepeatsAllowed": 0})
    return _update_draft(order, label, f"Replace {order.display} with the titration pack and sig", resource)


def titrate_to(order: MilnacipranOrder, knowledge: Knowledge, thresholds, daily_mg: float, label: str,
              recommended: bool = False) -> Suggestion | None:
    """Update the draft to the label's titration on 12.5 mg tablets, stopping at ``daily_mg`` a day."""
    tablet = next((code for code in knowledge.milnacipran_codes.values() if code.tty == "SCD"
                   and code.strength_mg == thresholds["titration_day1_mg"] and "tablet" in code.name.lower()), None)
    if tablet is None or order.match.titration_pack:
        return None
    resource = _replaced_order(order, _medication(tablet), titration_schedule(thresholds, daily_mg))
    return _update_draft(order, label, f"Replace the sig of {order.display} with a titration up to {daily_mg:g} mg/day "
                         "(dispense quantity to re-enter)", resource, recommended)


def order_observation(knowledge: Knowledge, kinds: Sequence[str], patient_id: str, label: str, why: str) -> Suggestion:
    """Create ServiceRequests for the observations of ``kinds`` (e.g. a serum creatinine)."""
    actions = []
    for kind in kinds:
        loinc = knowledge.loinc_of(kind)
        display = knowledge.observation_displays[loinc]
        actions.append(Action("create", f"Order {display}", resource=prune({
            "resourceType": "ServiceRequest",
            "status": "draft",
            "intent": "order",
            "code": {"coding": [{"system": LOINC, "code": loinc, "display": display}], "text": display},
            "subject": {"reference": f"Patient/{patient_id}"},
            "reasonCode": [{"text": why}],
        })))
    return Suggestion(label, tuple(actions))

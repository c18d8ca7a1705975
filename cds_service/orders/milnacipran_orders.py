"""Find the milnacipran MedicationRequests among the draft orders, with their dosing.

For ``order-select`` only the ``selections`` are checked (all drafts when a client sends
none). Every draft is normalised for the sandbox's known R4 slips (``category`` as an object,
no ``intent``, no ``subject``) so that an ``update`` suggestion built from it can be valid R4.
"""

import dataclasses
from collections.abc import Mapping
from typing import Any

from cds_service.errors import BadRequest
from cds_service.fhir.read import child
from cds_service.fhir.read import items
from cds_service.fhir.read import show_value
from cds_service.fhir.read import text
from cds_service.orders.dose import Dosing
from cds_service.orders.dose import extract_dosing
from cds_service.orders.products import MedicationMatch
from cds_service.orders.products import MedicationMatcher
from cds_service.orders.products import medication_index
from cds_service.request.envelope import Envelope

STOPPING_STATUSES = {"stopped", "cancelled", "completed", "entered-in-error"}  # a draft entry that ends an order


@dataclasses.dataclass(frozen=True)
class MilnacipranOrder:
    """One draft milnacipran order: the normalised resource and what the rules need of it."""

    resource: Mapping[str, Any]     # normalised draft, never mutated; suggestions copy it
    reference: str                  # "MedicationRequest/<id>"
    patient_id: str                 # context.patientId
    display: str
    match: MedicationMatch
    dosing: Dosing | None
    has_id: bool                    # False: no suggestion can name this draft
    entry_index: int                # position among envelope.draft_entries()
    links: frozenset[str] = frozenset()     # orders it renews or changes: "MedicationRequest/<id>" or "id:<system>|<value>"
    group_identifier: str | None = None     # "system|value" of its groupIdentifier
    implausible_dose: str | None = None   # the dose as ordered when it is implausible (then ``dosing`` is None)

    @property
    def dose_unread(self) -> bool:
        """The order has dosage instructions, but no daily dose could be read from them: its dose is unchecked."""
        return self.dosing is not None and self.dosing.max_daily_mg is None

    @property
    def instructions(self) -> str:
        """The dosage instructions' text as the prescriber wrote it ("" if none)."""
        return "; ".join(t for t in (text(d, "text") for d in items(self.resource, "dosageInstruction")) if t)

    @property
    def id(self) -> str:
        return self.reference.split("/", 1)[1]



def _is_selected(resource: Mapping, selections: tuple[str, ...] | None) -> bool:
    if selections is None:
        return True
    resource_id = text(resource, "id")
    return resource_id is not None and (f"{text(resource, 'resourceType')}/{resource_id}" in selections
                                        or resource_id in selections)


def normalise_draft(resource: Mapping, patient_id: str) -> dict:
    """A copy of a draft MedicationRequest with the sandbox's R4 slips repaired."""
    draft = dict(resource)
    if isinstance(draft.get("category"), dict):
        draft["category"] = [draft["category"]]
    draft.setdefault("status", "draft")
    draft.setdefault("intent", "order")
    draft.setdefault("subject", {"reference": f"Patient/{patient_id}"})
    return draft



def _reference_key(reference: str) -> str:
    """'https://x/fhir/MedicationRequest/a1/_history/2' -> 'MedicationRequest/a1'."""
    return "/".join(reference.split("/_history/", 1)[0].rstrip("/").rsplit("/", 2)[-2:])


def _identifier(value: Mapping) -> str | None:
    return f"{text(value, 'system') or ''}|{text(value, 'value')}" if text(value, "value") else None


def renewal_links(resource: Mapping) -> frozenset[str]:
    """What a draft renews or changes (code-families.md §6): its priorPrescription and basedOn references,
    by resource id ("MedicationRequest/<id>") or by ``Reference.identifier`` ("id:<system>|<value>")."""
    references = [child(resource, "priorPrescription")] + items(resource, "basedOn")
    links = {_reference_key(text(r, "reference")) for r in references if text(r, "reference")}
    links |= {f"id:{key}" for r in references if (key := _identifier(child(r, "identifier")))}
    return frozenset(links)


def find_milnacipran_orders(envelope: Envelope, matcher: MedicationMatcher,
                            fetched_medications: Mapping[str, Mapping] | None = None) -> tuple[MilnacipranOrder, ...]:
    """The selected draft orders that are milnacipran, in Bundle order.

    ``fetched_medications`` are Medication resources read from the FHIR server for references
    the Bundle does not hold.
    """
    known = {**(fetched_medications or {}), **medication_index(items(envelope.draft_orders, "entry"))}
    orders = []
    for index, resource in enumerate(envelope.draft_entries()):
        resource_type = resource.get("resourceType")
        if resource_type not in ("MedicationRequest", "MedicationOrder") or not _is_selected(resource, envelope.selections):
            continue
        if text(resource, "status") in STOPPING_STATUSES:
            continue  # the session stops this order: nothing to check (the snapshot counts it as stopped)
        medication = matcher.identify(resource, known)
        match = next((m for m in medication.matches if m.ingredient.group == "milnacipran"), None)
        if match is None:
            continue
        if resource_type == "MedicationOrder":
            raise BadRequest("The draft milnacipran order is a DSTU2 MedicationOrder; this service reads FHIR R4 "
                             "MedicationRequest. Point the client (e.g. the CDS Hooks sandbox) at an R4 FHIR server.")
        draft = normalise_draft(resource, envelope.patient_id)
        dosing = extract_dosing(draft, match.strength_mg)
        implausible = implausible_dose(dosing, matcher.knowledge)
        orders.append(MilnacipranOrder(
            resource=draft,
            reference=f"MedicationRequest/{text(resource, 'id') or f'draft-{index}'}",
            patient_id=envelope.patient_id,
            display=medication.display,
            match=match,
            dosing=None if implausible else dosing,
            has_id=text(resource, "id") is not None,
            entry_index=index,
            links=renewal_links(resource),
            group_identifier=_identifier(child(resource, "groupIdentifier")),
            implausible_dose=implausible,
        ))
    return tuple(orders)


def implausible_dose(dosing, knowledge) -> str | None:
    """What is implausible about the ordered dose (1e308 mg, 0 mg, 1,000 doses a day), or None.

    An implausible dose is never used in arithmetic: the dose checks show it instead.
    """
    if dosing is None:
        return None
    problems = []
    for step in dosing.steps:
        for kind, value, unit in (("dose_mg", step.mg_per_dose, "mg a dose"),
                                  ("doses_per_day", step.doses_per_day, "doses a day"),
                                  ("dose_mg_per_day", step.mg_per_day, "mg a day")):
            if value is not None and not knowledge.plausible(kind, value):
                problems.append(f"{show_value(value)} {unit} ({knowledge.plausible_range_text(kind)})")
    return "; ".join(dict.fromkeys(problems)) or None

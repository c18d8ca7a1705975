"""The patient's chart for one request, gathered per prefetch key.

For each key the service declares: a resource or Bundle is used as sent; ``null`` means known
empty; a key that is absent or holds an OperationOutcome is fetched from ``fhirServer`` when
the request has one (see ``fhir_fetch``), and otherwise reported as unavailable. What could not
be had is listed in ``Chart.unavailable`` so that a card can say which checks did not run.
"""

import dataclasses
from collections.abc import Mapping
from typing import Any


@dataclasses.dataclass(frozen=True)
class Unavailable:
    """Chart data the service could not obtain, and why (no PHI: key and reason only)."""

    key: str
    reason: str


@dataclasses.dataclass(frozen=True)
class Chart:
    patient: Mapping[str, Any] | None
    resources: tuple[Mapping[str, Any], ...]          # every resource of every key, Patient excluded
    unavailable: tuple[Unavailable, ...] = ()

    def of_type(self, resource_type: str) -> list[Mapping[str, Any]]:
        return [resource for resource in self.resources if resource.get("resourceType") == resource_type]


def is_operation_outcome(value: Any) -> bool:
    """An OperationOutcome, alone or as the only kind of entry in a Bundle."""
    if not isinstance(value, Mapping):
        return False
    if value.get("resourceType") == "OperationOutcome":
        return True
    entries = [e.get("resource") for e in value.get("entry") or [] if isinstance(e, Mapping)]
    return value.get("resourceType") == "Bundle" and bool(entries) and all(
        isinstance(r, Mapping) and r.get("resourceType") == "OperationOutcome" for r in entries)


def bundle_resources(value: Any) -> list[Mapping[str, Any]]:
    """The resources of a Bundle (OperationOutcome entries dropped), or the resource itself."""
    if not isinstance(value, Mapping):
        return []
    if value.get("resourceType") != "Bundle":
        return [value]
    return [e["resource"] for e in value.get("entry") or []
            if isinstance(e, Mapping) and isinstance(e.get("resource"), Mapping)
            and e["resource"].get("resourceType") != "OperationOutcome"]


def usable_prefetch(prefetch: Mapping[str, Any], key: str) -> tuple[bool, list[Mapping[str, Any]]]:
    """(True, resources) when the key's prefetch can be used as sent, else (False, [])."""
    if key not in prefetch:
        return False, []
    value = prefetch[key]
    if value is None:
        return True, []
    if not isinstance(value, Mapping) or is_operation_outcome(value):
        return False, []
    return True, bundle_resources(value)


def assemble_chart(resources_by_key: Mapping[str, list[Mapping[str, Any]]], unavailable: list[Unavailable]) -> Chart:
    """One Chart from the resources of each key; the Patient comes from the ``patient`` key."""
    patients = [r for r in resources_by_key.get("patient", []) if r.get("resourceType") == "Patient"]
    resources = tuple(r for key, items in resources_by_key.items() if key != "patient" for r in items)
    return Chart(patient=patients[0] if patients else None, resources=resources, unavailable=tuple(unavailable))


def chart_from_prefetch(prefetch: Mapping[str, Any], keys: list[str]) -> Chart:
    """The chart when there is no FHIR server to ask: unusable keys are unavailable."""
    resources_by_key, unavailable = {}, []
    for key in keys:
        usable, resources = usable_prefetch(prefetch, key)
        if usable:
            resources_by_key[key] = resources
        else:
            reason = "the EHR sent an error for it" if key in prefetch else "the EHR did not send it"
            unavailable.append(Unavailable(key, f"{reason} and gave no FHIR server to ask"))
    return assemble_chart(resources_by_key, unavailable)

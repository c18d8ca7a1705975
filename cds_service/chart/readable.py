"""Can a prefetch value or a search answer be read as what its key promises? Unreadable is not empty.

A key promises resources of one type (its template's: ``Observation?patient=...`` promises
Observations, ``Patient/{{context.patientId}}`` a Patient). A Bundle is readable when every
entry holds a resource, every resource is of the promised type (or an ``include``d resource, a
Medication beside medication orders, or an informational OperationOutcome), and its ``total``,
if any, is a count that the entries do not contradict. Anything else (Observations answering a
medication search, entries without ``resource``, DSTU2 ``MedicationOrder``s, a ``total`` of 3
with no entries, an error OperationOutcome among the results) makes the whole key *unavailable*
with the reason: reading it as "none" would hide a contraindication. Only a readable empty
Bundle or ``null`` means "none".
"""

import functools
import pkgutil
from collections.abc import Mapping
from typing import Any

from cds_service.fhir.read import child
from cds_service.fhir.read import text

MEDICATION_ORDERS = ("MedicationRequest", "MedicationStatement")
ERROR_SEVERITIES = ("error", "fatal")


def _short(name: Any) -> str:
    """A resource type for a card: only a FHIR resource type name (R4, or DSTU2's MedicationOrder), never other text."""
    return name if isinstance(name, str) and name.lower() in _resource_types() else "resource of another type"


@functools.cache
def _resource_types() -> frozenset[str]:
    import fhir.resources.R4B as r4b
    return frozenset(m.name for m in pkgutil.iter_modules(r4b.__path__) if not m.name.startswith(("fhir", "_"))) | {
        "medicationorder"}


def is_error_outcome(resource: Any) -> bool:
    """An OperationOutcome with an error or fatal issue (or no readable issue at all)."""
    if not isinstance(resource, Mapping) or resource.get("resourceType") != "OperationOutcome":
        return False
    issues = resource.get("issue")
    if not isinstance(issues, list) or not issues:
        return True
    return any(not isinstance(issue, Mapping) or issue.get("severity") in ERROR_SEVERITIES for issue in issues)


def search_resources(bundle: Any, entry_type: str | None) -> tuple[list[Mapping[str, Any]], str | None, int]:
    """(resources, why it cannot be read or None, number of matches) of a search Bundle.

    ``entry_type`` is the resource type the search promises (None: any type).
    """
    if not isinstance(bundle, Mapping) or bundle.get("resourceType") != "Bundle":
        kind = bundle.get("resourceType") if isinstance(bundle, Mapping) else None
        return [], f"a {_short(kind)} where a Bundle was expected", 0
    entries = bundle.get("entry", [])
    if entries is None:
        entries = []
    if not isinstance(entries, list):
        return [], "a Bundle whose entries are not a list", 0
    resources, matches = [], 0
    for entry in entries:
        resource = child(entry, "resource")
        if not isinstance(resource.get("resourceType"), str):
            return [], "a Bundle with an entry that holds no resource", 0
        kind = resource["resourceType"]
        mode = text(child(entry, "search"), "mode")
        if kind == "OperationOutcome":
            if is_error_outcome(resource):
                return [], "an error (OperationOutcome) among the results", 0
            continue
        if entry_type is None or kind == entry_type:
            resources.append(resource)
            matches += mode != "include"
        elif mode == "include" or (kind == "Medication" and entry_type in MEDICATION_ORDERS):
            resources.append(resource)
        else:
            return [], f"a {_short(kind)} among the {entry_type} results", 0
    total = bundle.get("total")
    if total is not None and (not isinstance(total, int) or isinstance(total, bool) or total < 0):
        return [], "a Bundle whose total is not a count", 0
    return resources, None, matches


def total_contradicts(bundle: Mapping[str, Any], matches: int, has_next: bool) -> str | None:
    """Why the Bundle's ``total`` disagrees with the results it holds (all pages read), or None."""
    total = bundle.get("total")
    if isinstance(total, int) and not isinstance(total, bool) and not has_next and total != matches:
        return f"the Bundle says {total} results but holds {matches}"
    return None


def read_value(value: Any, resource_type: str) -> tuple[list[Mapping[str, Any]], str | None]:
    """(resources, why it cannot be read or None) of a prefetch value for a key promising ``resource_type``.

    A Bundle's ``total`` is checked against its entries by the caller, which knows about ``next`` pages.
    """
    if not isinstance(value, Mapping) or not isinstance(value.get("resourceType"), str):
        return [], "the prefetched value is not a FHIR resource"
    if value["resourceType"] == "Bundle":
        resources, why, _ = search_resources(value, resource_type)
        return resources, why
    if value["resourceType"] != resource_type:
        return [], f"the prefetched value is a {_short(value['resourceType'])} where a {resource_type} was expected"
    return [value], None

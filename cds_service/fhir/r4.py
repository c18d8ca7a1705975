"""Resources sent back to the EHR: pruned of empty values and valid R4 (``fhir.resources`` R4B models)."""

from collections.abc import Mapping
from typing import Any

from fhir.resources.R4B.medicationrequest import MedicationRequest
from pydantic import ValidationError


def prune(value: Any) -> Any:
    """``value`` without None, empty strings, empty lists or empty objects, at any depth."""
    if type(value) is dict or isinstance(value, Mapping):  # plain dicts first: the abstract check is slow
        pruned = {key: prune(item) for key, item in value.items()}
        return {key: item for key, item in pruned.items() if item not in (None, "", [], {})}
    if type(value) is list or isinstance(value, tuple):
        pruned = [prune(item) for item in value]
        return [item for item in pruned if item not in (None, "", [], {})]
    return value


def is_valid_medication_request(resource: Mapping) -> bool:
    """Whether ``resource`` is a valid R4 MedicationRequest (what an ``update`` suggestion must send)."""
    try:
        MedicationRequest.model_validate(resource)
    except (ValidationError, TypeError, KeyError, ValueError):  # the R4B models raise more than ValidationError on odd input
        return False
    return True

"""Lenient parse of a CDS Hooks request body into an ``Envelope``.

Lenient where real clients differ (unknown fields are ignored, ``selections`` may be absent,
``Bundle.type`` may be missing) and strict where a wrong guess would mislead: every problem
that makes the request unusable raises ``BadRequest`` with a message naming the field.
"""

import dataclasses
import json
import math
import re
import sys
from collections.abc import Mapping
from typing import Any

from cds_service.errors import BadRequest


@dataclasses.dataclass(frozen=True)
class Envelope:
    hook: str
    hook_instance: str
    patient_id: str
    user_id: str | None
    encounter_id: str | None
    draft_orders: Mapping[str, Any]
    selections: tuple[str, ...] | None
    prefetch: Mapping[str, Any]
    fhir_server: str | None
    access_token: str | None = dataclasses.field(repr=False)

    def draft_entries(self) -> list[dict]:
        """The resources in ``draftOrders`` (entries without a resource object are skipped)."""
        entries = self.draft_orders.get("entry") or []
        return [entry["resource"] for entry in entries
                if isinstance(entry, dict) and isinstance(entry.get("resource"), dict)]


def _not_json(constant: str):
    raise ValueError(f"{constant} is not a JSON number")


MAX_INTEGER_DIGITS = 18     # FHIR integers are 32-bit, decimals have 18 significant digits at most


def finite_float(text: str) -> float:
    """A JSON number with a fraction or exponent: overflow (1e309) and underflow (1e-400, subnormals) refused."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:40]} is too large")
    mantissa = text.lower().split("e")[0]
    if (value == 0 and any(c in "123456789" for c in mantissa)) or 0 < abs(value) < sys.float_info.min:
        raise ValueError(f"the number {text[:40]} is too small to be represented")
    return value


def bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INTEGER_DIGITS:
        raise ValueError(f"the integer {text[:40]}... has more than {MAX_INTEGER_DIGITS} digits")
    return int(text)


def parse_json_object(body: bytes) -> dict:
    """Decode a JSON object body, or raise ``BadRequest`` saying what is wrong.

    NaN/Infinity, numbers that overflow or underflow a double, and integers over 18 digits are
    refused here (issue 13), so that no rule ever computes with them.
    """
    try:
        data = json.loads(body, parse_constant=_not_json, parse_float=finite_float, parse_int=bounded_int)
    except (UnicodeDecodeError, ValueError) as error:
        raise BadRequest(f"Request body is not valid JSON: {error}") from None
    except RecursionError:
        raise BadRequest("Request body is nested too deeply to be a CDS Hooks request.") from None
    if not isinstance(data, dict):
        raise BadRequest(f"Request body must be a JSON object, not {type(data).__name__}.")
    return data


def _required_text(container: Mapping, key: str, where: str) -> str:
    value = container.get(key)
    if value is None:
        raise BadRequest(f"Missing required field '{where}{key}'.")
    if not isinstance(value, str) or not value.strip():
        raise BadRequest(f"Field '{where}{key}' must be a non-empty string.")
    return value.strip()


MAX_HOOK_INSTANCE_LENGTH = 100     # what is kept of a hookInstance (the audit's column)
FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")


def _fhir_id(value: str, where: str) -> str:
    """A FHIR resource id (it goes into FHIR query URLs, so nothing else is let through)."""
    if not FHIR_ID.fullmatch(value):
        raise BadRequest(f"Field '{where}' must be a FHIR id (letters, digits, '-' and '.', at most 64).")
    return value


def _optional_text(container: Mapping, key: str, where: str) -> str | None:
    value = container.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadRequest(f"Field '{where}{key}' must be a string.")
    return value.strip() or None


def _object(container: Mapping, key: str, where: str, required: bool) -> dict:
    value = container.get(key)
    if value is None:
        if required:
            raise BadRequest(f"Missing required field '{where}{key}'.")
        return {}
    if not isinstance(value, dict):
        raise BadRequest(f"Field '{where}{key}' must be a JSON object.")
    return value


def _draft_orders(context: Mapping) -> dict:
    bundle = _object(context, "draftOrders", "context.", required=True)
    if bundle.get("resourceType") != "Bundle":
        raise BadRequest("Field 'context.draftOrders' must be a FHIR Bundle (resourceType 'Bundle').")
    entries = bundle.get("entry", [])
    if not isinstance(entries, list):
        raise BadRequest("Field 'context.draftOrders.entry' must be an array.")
    return bundle


def _selections(context: Mapping) -> tuple[str, ...] | None:
    value = context.get("selections")
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise BadRequest("Field 'context.selections' must be an array of strings such as 'MedicationRequest/123'.")
    return tuple(item.strip() for item in value)


def _access_token(data: Mapping) -> str | None:
    authorization = data.get("fhirAuthorization")
    if not isinstance(authorization, dict):
        return None
    token = authorization.get("access_token")
    return token if isinstance(token, str) and token else None


def _hook_instance(data: Mapping) -> str:
    """The call's ``hookInstance``, a UUID in the spec (36 characters). A longer one is no reason to
    withhold the cards: its first 100 characters are kept, which is what the audit and the logs hold."""
    return _required_text(data, "hookInstance", "")[:MAX_HOOK_INSTANCE_LENGTH]


def parse_envelope(data: Mapping, expected_hook: str) -> Envelope:
    """Check the request object ``data`` and return its ``Envelope``."""
    hook = _required_text(data, "hook", "")
    if hook != expected_hook:
        raise BadRequest(f"This service answers the '{expected_hook}' hook, but the request is for '{hook}'.")
    context = _object(data, "context", "", required=True)
    prefetch = _object(data, "prefetch", "", required=False)
    return Envelope(
        hook=hook,
        hook_instance=_hook_instance(data),
        patient_id=_fhir_id(_required_text(context, "patientId", "context."), "context.patientId"),
        user_id=_optional_text(context, "userId", "context."),
        encounter_id=_optional_text(context, "encounterId", "context."),
        draft_orders=_draft_orders(context),
        selections=_selections(context),
        prefetch=prefetch,
        fhir_server=_optional_text(data, "fhirServer", ""),
        access_token=_access_token(data),
    )

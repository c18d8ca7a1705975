"""Service settings, read once from ``CDS_*`` environment variables and cast strictly.

Every setting is declared in ``FIELDS`` with its variable name, type, default and meaning; the
README's configuration table lists the same names (a test keeps the two in step). A value that
cannot be cast stops the service at start-up with a message naming the variable.
"""

import dataclasses
import math
import os
from collections.abc import Mapping
from typing import Any

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class SettingsError(ValueError):
    """A ``CDS_*`` variable (or an override) has a value that cannot be used."""


def _boolean(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("true", "1"):
        return True
    if lowered in ("false", "0"):
        return False
    raise ValueError("expected true or false")


def _whole_number(low: int, high: int):
    def cast(text: str) -> int:
        value = int(text)
        if not low <= value <= high:
            raise ValueError(f"expected a whole number from {low} to {high}")
        return value
    return cast


def _seconds(low: float, high: float, zero_allowed: bool):
    """A finite number of seconds in [low, high] (above 0 unless ``zero_allowed``); nan/inf refused."""
    def cast(text: str) -> float:
        value = float(text)
        if not (math.isfinite(value) and low <= value <= high and (zero_allowed or value > 0)):
            raise ValueError(f"expected a number of seconds from {low:g}{'' if zero_allowed else ' (exclusive)'} "
                             f"to {high:g}")
        return value
    return cast


def _log_level(text: str) -> str:
    level = text.strip().upper()
    if level not in LOG_LEVELS:
        raise ValueError(f"expected one of {', '.join(LOG_LEVELS)}")
    return level


def _optional_text(text: str) -> str | None:
    return text.strip() or None


def _base_url(text: str) -> str:
    text = text.strip().rstrip("/")
    if not text.startswith(("http://", "https://")):
        raise ValueError("expected an http(s) URL")
    return text


@dataclasses.dataclass(frozen=True)
class Field:
    name: str
    cast: Any
    default: str
    doc: str

    @property
    def variable(self) -> str:
        return "CDS_" + self.name.upper()


FIELDS = (
    Field("host", str, "127.0.0.1", "Address `cds-service serve` listens on (the container uses 0.0.0.0)."),
    Field("port", _whole_number(1, 65535), "8080", "Port `cds-service serve` listens on."),
    Field("workers", _whole_number(1, 64), "2", "gunicorn worker processes."),
    Field("threads", _whole_number(1, 256), "4", "Threads per gunicorn worker."),
    Field("public_base_url", _base_url, "http://localhost:8080",
          "The service's URL as EHRs call it; JWT audiences are this plus the endpoint path."),
    Field("require_jwt", _boolean, "true",
          "Verify the client's JWT on every request. `false` is for local use only and is logged loudly."),
    Field("trusted_clients_file", _optional_text, "",
          "JSON file of trusted EHR issuers and their keys (see Connecting an EHR)."),
    Field("jwt_leeway_seconds", _seconds(0, 300, zero_allowed=True), "60", "Clock leeway for `exp`/`nbf`."),
    Field("jwks_refetch_seconds", _seconds(0, 86400, zero_allowed=True), "5",
          "Least time between two fetches of a client's JWKS for an unknown `kid`."),
    Field("max_body_bytes", _whole_number(1, 100_000_000), "5000000", "Largest request body accepted; larger ones get 413."),
    Field("policy_file", _optional_text, "",
          "Site policy JSON overriding thresholds, look-back windows, card indicators, override reasons."),
    Field("fhir_deadline_seconds", _seconds(0, 30, zero_allowed=False), "1.5",
          "Overall time allowed for fetching chart data from the EHR's FHIR server."),
    Field("fhir_timeout_seconds", _seconds(0, 30, zero_allowed=False), "1.0", "Connect and read timeout of one FHIR query."),
    Field("fhir_max_pages", _whole_number(1, 100), "5", "Most `next` pages followed for one FHIR search."),
    Field("chart_cache_seconds", _seconds(0, 3600, zero_allowed=True), "0",
          "Reuse fetched chart data for the same patient and FHIR server for this long (0 = off)."),
    Field("cors_allow_origin", str, "*", "Value of Access-Control-Allow-Origin."),
    Field("log_level", _log_level, "INFO", "Python log level of the JSON logs."),
    # issue 13: robustness (FHIR allow-list, bulkheads, memory budgets)
    Field("fhir_allowed_servers", str, "",
          "FHIR servers (origins, comma-separated) a request may name when JWT authentication is off, besides "
          "loopback; `*` = any. With authentication on, the trusted-clients file's `fhir_servers` decides."),
    Field("fhir_max_concurrent_per_server", _whole_number(1, 64), "8",
          "Most queries running at once against one FHIR server origin (its bulkhead)."),
    Field("fhir_max_body_bytes", _whole_number(1000, 20_000_000), "4000000",
          "Largest FHIR response body read for one page of one query (decoded); more makes the key unavailable."),
    Field("fhir_request_budget_bytes", _whole_number(1000, 100_000_000), "8000000",
          "Most bytes of FHIR response bodies one request may hold."),
    Field("fhir_process_budget_bytes", _whole_number(1000, 1_000_000_000), "32000000",
          "Most bytes of FHIR response bodies all requests of one worker process may hold at once."),
)


@dataclasses.dataclass(frozen=True)
class Settings:
    host: str
    port: int
    workers: int
    threads: int
    public_base_url: str
    require_jwt: bool
    trusted_clients_file: str | None
    jwt_leeway_seconds: float
    jwks_refetch_seconds: float
    max_body_bytes: int
    policy_file: str | None
    fhir_deadline_seconds: float
    fhir_timeout_seconds: float
    fhir_max_pages: int
    chart_cache_seconds: float
    cors_allow_origin: str
    log_level: str
    fhir_allowed_servers: str
    fhir_max_concurrent_per_server: int
    fhir_max_body_bytes: int
    fhir_request_budget_bytes: int
    fhir_process_budget_bytes: int


def load_settings(environ: Mapping[str, str] | None = None, overrides: Mapping[str, Any] | None = None) -> Settings:
    """Build the settings from ``environ`` (default ``os.environ``), then apply ``overrides``.

    Overrides use the field names (``require_jwt=False``) and are taken as already typed.
    """
    environ = os.environ if environ is None else environ
    overrides = dict(overrides or {})
    unknown = set(overrides) - {field.name for field in FIELDS}
    if unknown:
        raise SettingsError(f"unknown setting(s): {', '.join(sorted(unknown))}")
    values = {}
    for field in FIELDS:
        if field.name in overrides:
            values[field.name] = overrides[field.name]
            continue
        raw = environ.get(field.variable, field.default)
        try:
            values[field.name] = field.cast(raw)
        except ValueError as error:
            raise SettingsError(f"{field.variable}={raw!r}: {error}") from None
    return Settings(**values)

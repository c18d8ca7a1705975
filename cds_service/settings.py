"""Service settings, read once from ``CDS_*`` environment variables and cast strictly.

Every setting is declared in ``FIELDS`` with its variable name, type, default and meaning; the
README's configuration table lists the same names (a test keeps the two in step). A value that
cannot be cast stops the service at start-up with a message naming the variable.
"""

import dataclasses
import math
import os
import zoneinfo
from collections.abc import Mapping
from pathlib import Path
from typing import Any

DATABASE_FILE = "cds-audit.sqlite3"
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


def _database_url(text: str) -> str | None:
    """Empty (the default SQLite file in the data folder), ``sqlite:///PATH`` or ``postgresql://...``."""
    text = text.strip()
    if text and not text.startswith(("sqlite:///", "postgresql://", "postgres://", "postgresql+psycopg://")):
        raise ValueError("expected sqlite:///PATH or postgresql://USER:PASSWORD@HOST:PORT/DB")
    return text or None
def _choice(*choices: str):
    def cast(text: str) -> str:
        value = text.strip().lower()
        if value not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}")
        return value
    return cast


def _base_url(text: str) -> str:
    text = text.strip().rstrip("/")
    if not text.startswith(("http://", "https://")):
        raise ValueError("expected an http(s) URL")
    return text


def _time_zone(text: str) -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(text.strip())
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError("expected an IANA time zone name such as UTC or America/Chicago") from None


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
    Field("time_zone", _time_zone, "UTC",
          "IANA time zone in which cards show dates and times (e.g. America/Chicago); the zone is named."),
    # -- audit database, feedback and repeated alerts (issue 11) --
    Field("database_url", _database_url, "",
          "Audit and feedback database: `sqlite:///PATH` or `postgresql://USER:PASSWORD@HOST:5432/DB` "
          "(default: the SQLite file `cds-audit.sqlite3` in CDS_DATA_DIR). Secret: never logged with its password."),
    Field("data_dir", str, "./var", "Folder of the default SQLite database (created if missing)."),
    Field("audit_retention_days", _whole_number(1, 36_500), "400",
          "What `cds-service purge` keeps when `--older-than` is not given."),
    Field("audit_patient_key_secret", _optional_text, "",
          "Secret of the pseudonymised patient key stored in the audit (HMAC-SHA256 of the patient id). "
          "Unset: no patient key is stored. Secret: never logged."),
    Field("audit_enabled", _boolean, "true",
          "Record every card returned and store feedback in the database. `false`: nothing is recorded and "
          "feedback is answered 503."),
    Field("filter_repeated_alerts", _boolean, "false",
          "Do not show again at order-sign a card already shown at order-select for the same draft order and "
          "patient, unless it became more severe (recorded as suppressed). Needs CDS_AUDIT_PATIENT_KEY_SECRET."),
    # operations at scale (issue 12)
    Field("replay_cache", _choice("database", "memory"), "database",
          "Where JWT ids are remembered against replay: `database` (shared by every worker and replica, "
          "in the audit database) or `memory` (this process only)."),
    Field("require_database", _boolean, "false",
          "`/readyz` answers 503 while the database cannot be reached (set it where audit is required)."),
    Field("worker_class", _choice("gthread", "sync"), "gthread",
          "gunicorn worker type of `cds-service serve`: `gthread` (threads, keep-alive) or `sync`."),
    Field("keepalive_seconds", _whole_number(0, 300), "0",
          "How long a gthread worker keeps an idle client connection open. 0 closes each connection after its "
          "answer, so that new connections spread over the workers (a kept-alive connection stays with one)."),
    # issue 13: robustness (FHIR allow-list, bulkheads, memory budgets)
    Field("fhir_allowed_servers", str, "",
          "FHIR servers (origins, comma-separated) a request may name when JWT authentication is off, besides "
          "loopback; `*` = any. With authentication on, the trusted-clients file's `fhir_servers` decides."),
    Field("fhir_max_concurrent_per_server", _whole_number(1, 64), "10",
          "Most queries running at once against one FHIR server origin (its bulkhead), per worker. The default "
          "lets the ten chart queries of one request run at once."),
    Field("fhir_max_body_bytes", _whole_number(1000, 20_000_000), "4000000",
          "Largest FHIR response body read for one page of one query (decoded); more makes the key unavailable."),
    Field("fhir_request_budget_bytes", _whole_number(1000, 100_000_000), "8000000",
          "Most bytes of FHIR response bodies one request may hold."),
    Field("fhir_process_budget_bytes", _whole_number(1000, 1_000_000_000), "32000000",
          "Most bytes of FHIR response bodies all requests of one worker process may hold at once."),
)

SECRET_FIELDS = ("database_url", "audit_patient_key_secret")


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
    time_zone: zoneinfo.ZoneInfo
    database_url: str | None = dataclasses.field(repr=False)  # may hold a password
    data_dir: str
    audit_retention_days: int
    audit_patient_key_secret: str | None = dataclasses.field(repr=False)
    audit_enabled: bool
    filter_repeated_alerts: bool
    replay_cache: str
    require_database: bool
    worker_class: str
    keepalive_seconds: int
    fhir_allowed_servers: str
    fhir_max_concurrent_per_server: int
    fhir_max_body_bytes: int
    fhir_request_budget_bytes: int
    fhir_process_budget_bytes: int

    @property
    def audit_database_url(self) -> str:
        """``database_url``, or the default SQLite file in ``data_dir``."""
        return self.database_url or "sqlite:///" + str(Path(self.data_dir).expanduser() / DATABASE_FILE)


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
            shown = "(value hidden)" if field.name in SECRET_FIELDS else repr(raw)
            raise SettingsError(f"{field.variable}={shown}: {error}") from None
    return Settings(**values)

"""Prometheus metrics of the service, correct under several gunicorn worker processes.

Every stage counts through ``metrics()``, built on first use. ``prometheus_client`` is imported
lazily, so that ``cds-service serve`` can switch it to multiprocess mode (``enable_multiprocess``:
``PROMETHEUS_MULTIPROC_DIR``, one set of files per worker, summed at scrape time) before any metric
exists. Labels hold only low-cardinality, non-identifying values: service id, status, phase, card
topic and indicator, outcome and reason kinds. Never a patient, an issuer's token or a URL.
"""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
_SECONDS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_lock = threading.Lock()
_metrics: Metrics | None = None

# JWT rejection reasons (``Unauthorized.reason``, free text) -> a fixed set of label values.
_REJECTION_KINDS = (
    ("missing-header", re.compile(r"missing Authorization")),
    ("not-bearer", re.compile(r"scheme is not Bearer|malformed Bearer|token too long")),
    ("malformed", re.compile(r"malformed token|DecodeError|not a number|jti empty|is not a string|Missing")),
    ("algorithm", re.compile(r"\balg\b|InvalidAlgorithm")),
    ("header", re.compile(r"kid missing|typ is not|crit header|jku")),
    ("untrusted-issuer", re.compile(r"iss is not a trusted|InvalidIssuer")),
    ("unknown-key", re.compile(r"unknown kid|key does not match|key unusable")),
    ("signature", re.compile(r"bad signature|InvalidSignature")),
    ("expired", re.compile(r"ExpiredSignature")),
    ("not-yet-valid", re.compile(r"ImmatureSignature|InvalidIssuedAt")),
    ("audience", re.compile(r"InvalidAudience")),
    ("lifetime", re.compile(r"lifetime exceeds")),
    ("tenant", re.compile(r"\btenant\b")),
    ("replay", re.compile(r"jti replayed")),
)


def rejection_kind(reason: str) -> str:
    """The label value of a JWT rejection reason."""
    for kind, pattern in _REJECTION_KINDS:
        if pattern.search(reason):
            return kind
    return "other"


class Metrics:
    """The service's metric families (see the README's Metrics table)."""

    def __init__(self) -> None:
        from prometheus_client import Counter
        from prometheus_client import Histogram

        self.requests = Counter("cds_http_requests", "HTTP requests answered, by service (or endpoint) and status",
                                ["service", "status"])
        self.request_seconds = Histogram("cds_http_request_duration_seconds", "Time to answer, by service",
                                         ["service"], buckets=_SECONDS)
        self.phase_seconds = Histogram("cds_phase_duration_seconds",
                                       "Time spent per phase of a hook request: auth, parse, gather, rules, render",
                                       ["phase"], buckets=_SECONDS)
        self.cards = Counter("cds_cards", "Cards returned, by topic and indicator", ["topic", "indicator"])
        self.fhir_queries = Counter("cds_fhir_queries", "Chart queries to the EHR's FHIR server, by outcome",
                                    ["outcome"])
        self.feedback = Counter("cds_feedback_items", "Feedback items received, by outcome", ["outcome"])
        self.jwt_rejections = Counter("cds_jwt_rejections", "Requests refused for their JWT, by reason", ["reason"])
        self.database_errors = Counter("cds_database_errors", "Database operations that failed, by operation",
                                       ["operation"])


def metrics() -> Metrics:
    """The process's metrics (created on first use)."""
    global _metrics
    if _metrics is None:
        with _lock:
            if _metrics is None:
                _metrics = Metrics()
    return _metrics


def enable_multiprocess(directory: str | Path) -> None:
    """Make every worker write its samples under ``directory``; call before the first metric is used."""
    if _metrics is not None:
        raise RuntimeError("metrics already created in single-process mode")
    os.environ[MULTIPROC_ENV] = str(directory)
    from prometheus_client import values

    values.ValueClass = values.get_value_class()  # in case prometheus_client was imported before


def worker_exited(pid: int) -> None:
    """gunicorn's ``child_exit``: drop the live gauges of a dead worker (counters are kept)."""
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)


def exposition() -> tuple[bytes, str]:
    """(the text format of every metric of every worker, its content type)."""
    from prometheus_client import CONTENT_TYPE_LATEST
    from prometheus_client import REGISTRY
    from prometheus_client import CollectorRegistry
    from prometheus_client import generate_latest

    metrics()  # the families exist (with no samples yet) from the first scrape on
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST

"""Request ids, trace context, request metrics and the operator endpoints: /metrics, /version, /readyz.

Every request gets a request id: the client's ``X-Request-ID`` when it is a plain token (letters,
digits, ``.``, ``_``, ``-``; at most 128 characters), else a new one. It is returned in the
``X-Request-ID`` response header and, with the W3C ``traceparent`` when one was sent, put on every
log line written while the request is handled (``logs.REQUEST_CONTEXT``).

``/metrics``, ``/healthz``, ``/readyz`` and ``/version`` need no JWT: they are for the cluster
(Prometheus, the kubelet), and the Ingress and NetworkPolicy keep them inside it.
"""

import importlib.metadata
import logging
import re
import threading
import time
import uuid

from flask import Blueprint
from flask import Flask
from flask import Response
from flask import g
from flask import jsonify
from flask import request

from cds_service.http.components import components
from cds_service.logs import REQUEST_CONTEXT
from cds_service.metrics import exposition
from cds_service.metrics import metrics

log = logging.getLogger(__name__)

REQUEST_ID_HEADER = "X-Request-ID"
_REQUEST_ID = re.compile(r"[A-Za-z0-9._\-]{1,128}")
_TRACEPARENT = re.compile(r"[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}")
_SERVICE_PATH = re.compile(r"/cds-services/([A-Za-z0-9._\-]{1,64})(/feedback)?")

operator = Blueprint("operator", __name__)
_draining = threading.Event()


def start_draining() -> None:
    """From now on /readyz answers 503 (called on SIGTERM, so the load balancer stops sending)."""
    _draining.set()


def is_draining() -> bool:
    return _draining.is_set()


def package_version() -> str:
    try:
        return importlib.metadata.version("cds-service")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def service_label(path: str) -> str:
    """The ``service`` label of a path: a declared service id (or ``<id>/feedback``), else the endpoint."""
    from cds_service.contract import SERVICES_BY_ID

    match = _SERVICE_PATH.fullmatch(path)
    if match and match.group(1) in SERVICES_BY_ID:
        return match.group(1) + ("/feedback" if match.group(2) else "")
    if path in ("/cds-services", "/metrics", "/healthz", "/readyz", "/version", "/openapi.json"):
        return path.lstrip("/") or "root"
    return "other"


def valid_traceparent(value: str) -> str | None:
    """A W3C ``traceparent`` header value in its canonical form, or None."""
    value = value.strip().lower()
    return value if _TRACEPARENT.fullmatch(value) else None


def install_observability(app: Flask) -> None:
    app.before_request_funcs.setdefault(None, []).insert(0, _begin)
    app.after_request(_finish)
    app.teardown_request(_end)
    app.register_blueprint(operator)


def _begin():
    g.started = time.perf_counter()
    sent = request.headers.get(REQUEST_ID_HEADER, "")
    g.request_id = sent if _REQUEST_ID.fullmatch(sent) else uuid.uuid4().hex
    context = {"requestId": g.request_id}
    traceparent = valid_traceparent(request.headers.get("traceparent", ""))
    if traceparent:
        context["traceparent"] = traceparent
    g.log_context_token = REQUEST_CONTEXT.set(context)


def _finish(response: Response) -> Response:
    response.headers[REQUEST_ID_HEADER] = g.get("request_id", "")
    service = service_label(request.path)
    seconds = time.perf_counter() - g.get("started", time.perf_counter())
    measures = metrics()
    measures.requests.labels(service, str(response.status_code)).inc()
    measures.request_seconds.labels(service).observe(seconds)
    return response


def _end(_error=None) -> None:
    token = g.pop("log_context_token", None)
    if token is not None:
        REQUEST_CONTEXT.reset(token)


@operator.get("/metrics")
def metrics_endpoint():
    body, content_type = exposition()
    return Response(body, content_type=content_type)


def identity() -> dict:
    """What is running: package, knowledge and policy versions."""
    check = components().check
    policy = check.policy
    return {"version": package_version(), "knowledgeVersion": check.knowledge.version,
            "policy": {"name": policy.identity.name, "hash": policy.identity.hash}}


@operator.get("/version")
def version():
    return jsonify(identity())


def readiness() -> tuple[dict, int]:
    """(body, status) of /readyz: 503 while draining, or when a required database cannot be reached."""
    body = {"status": "ready", **identity()}
    parts = components()
    if is_draining():
        return {**body, "status": "draining"}, 503
    database = parts.database
    if database is not None:
        try:
            database.ping()
            body["database"] = "reachable"
        except Exception as error:  # AuditUnavailable, or a driver error: the kind only
            metrics().database_errors.labels("ping").inc()
            body["database"] = f"unreachable ({type(error).__name__})"
            if parts.settings.require_database:
                log.warning("readiness: the database cannot be reached", extra={"fields": {
                    "error": type(error).__name__}})
                return {**body, "status": "database unreachable"}, 503
    return body, 200

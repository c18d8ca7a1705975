"""HTTP endpoints: discovery, the two services, feedback, health; CORS and authentication.

Views are thin: parse, hand over to the order check, the audit or the feedback parser, return JSON.
Collaborators come from ``components()``; errors and CORS are registered by ``create_app``.
"""

import logging
import time

from flask import Blueprint
from flask import current_app
from flask import g
from flask import jsonify
from flask import request
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.wsgi import get_input_stream

from cds_service.audit import AuditUnavailable
from cds_service.audit import HookCall
from cds_service.audit import parse_feedback_items
from cds_service.auth import Unauthorized
from cds_service.chart.source import ServerAllowList
from cds_service.contract import SERVICES_BY_ID
from cds_service.errors import NotFound
from cds_service.errors import ServiceUnavailable
from cds_service.errors import operation_outcome
from cds_service.http.components import components
from cds_service.http.observability import readiness
from cds_service.metrics import metrics
from cds_service.metrics import rejection_kind
from cds_service.request.envelope import parse_envelope
from cds_service.request.envelope import parse_json_object

log = logging.getLogger(__name__)

cds = Blueprint("cds", __name__)
health = Blueprint("health", __name__)


def _body() -> bytes:
    """The request body, or 413 when it is over the limit, with or without a Content-Length
    (a chunked body is otherwise cut at the limit and would read as malformed JSON)."""
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    if request.content_length is not None:
        return request.get_data()  # werkzeug answers 413 for a declared length over the limit
    data = get_input_stream(request.environ, max_content_length=None).read(limit + 1)
    if len(data) > limit:
        raise RequestEntityTooLarge()
    return data


def _fhir_servers() -> ServerAllowList | None:
    """The FHIR servers this client may name: its trusted-clients entry's, or (no JWT) the settings' default."""
    authenticator = components().authenticator
    if authenticator is None or "claims" not in g:
        return None
    return ServerAllowList.of(authenticator.fhir_servers_for(g.claims["iss"]))


def _service(service_id: str):
    try:
        return SERVICES_BY_ID[service_id]
    except KeyError:
        raise NotFound(f"No CDS service with id '{service_id}'. See GET /cds-services.") from None


@cds.before_request
def authenticate():
    """Verify the client's JWT; preflights and unauthenticated local mode pass through."""
    g.started = time.perf_counter()
    if request.method == "OPTIONS":
        return
    authenticator = components().authenticator
    if authenticator is None:
        log.warning("JWT authentication is OFF (CDS_REQUIRE_JWT=false): local use only")
        return
    try:
        with metrics().phase_seconds.labels("auth").time():
            g.claims = authenticator.authenticate(request.headers.get("Authorization"), request.path)
    except Unauthorized as error:
        metrics().jwt_rejections.labels(rejection_kind(error.reason)).inc()
        raise
    except ValueError:  # a path no audience can name (e.g. with spaces): no such service
        raise NotFound(f"No CDS service at '{request.path}'. See GET /cds-services.") from None


@cds.get("/cds-services")
def discovery():
    return jsonify(components().discovery)


@cds.post("/cds-services/<service_id>")
def call_service(service_id: str):
    service = _service(service_id)
    with metrics().phase_seconds.labels("parse").time():
        envelope = parse_envelope(parse_json_object(_body()), service.hook)
    g.hook_instance = envelope.hook_instance
    assessment = components().check.assess(envelope, _fhir_servers())
    response = assessment.response
    audit = components().audit
    if audit is not None:
        call = HookCall(service.id, service.hook, envelope.hook_instance, envelope.patient_id,
                        assessment.order_references)
        response = {**response, "cards": audit.record_response(call, response["cards"], assessment.rule_ids)}
    g.card_topics = [card["source"]["topic"]["code"] for card in response["cards"]]
    g.rule_ids = list(dict.fromkeys(rule_id for ids in assessment.rule_ids for rule_id in ids))
    g.card_ids = [card.get("uuid") for card in response["cards"]]
    for card in response["cards"]:
        metrics().cards.labels(card["source"]["topic"]["code"], card["indicator"]).inc()
    return jsonify(response)


@cds.post("/cds-services/<service_id>/feedback")
def feedback(service_id: str):
    """Store the valid items; 400 naming each malformed item and field (the valid ones are kept)."""
    _service(service_id)
    items, errors = parse_feedback_items(parse_json_object(_body()))
    audit = components().audit
    if audit is None:
        raise ServiceUnavailable("Feedback is not stored: the audit is off (CDS_AUDIT_ENABLED=false).")
    try:
        outcomes = audit.store_feedback(service_id, items)
        for item in items:
            metrics().feedback.labels(item.outcome).inc()
    except AuditUnavailable:
        raise ServiceUnavailable("Feedback could not be stored (audit database unavailable); "
                                 "please retry later.") from None
    log.info("feedback received", extra={"fields": {
        "service": service_id, "items": len(items) + len({error.index for error in errors}),
        "outcomes": [item.outcome for item in items], "stored": outcomes.count("stored"),
        "duplicates": outcomes.count("duplicate"), "unmatched": outcomes.count("unmatched"), "invalid": len(errors)}})
    if errors:
        audit.counters.add("feedback_invalid", len({error.index for error in errors}))
        outcome = operation_outcome(errors[0].as_dict()["message"])
        outcome["issue"] = [{"severity": "error", "code": "invalid", "diagnostics": error.as_dict()["message"],
                             "expression": [error.where]} for error in errors]
        if items:
            outcome["issue"].append({"severity": "information", "code": "informational",
                                     "diagnostics": f"{len(items)} valid item(s) of this request were stored."})
        return jsonify(outcome), 400
    return jsonify({})


@cds.after_request
def log_request(response):
    log.info("request", extra={"fields": {
        "method": request.method, "path": request.path, "status": response.status_code,
        "ms": round((time.perf_counter() - g.get("started", time.perf_counter())) * 1000, 2),
        "hookInstance": g.get("hook_instance"), "cardTopics": g.get("card_topics"),
        "policy": _policy_identity(),
        **_client_fields(), "cardIds": g.get("card_ids"), "ruleIds": g.get("rule_ids"),
    }})
    return response


def _policy_identity() -> dict:
    identity = components().check.policy.identity
    return {"name": identity.name, "hash": identity.hash}


def _client_fields() -> dict:
    """The verified client's issuer and tenant (no subject, no token)."""
    claims = g.get("claims") or {}
    return {"iss": claims.get("iss"), "tenant": claims.get("tenant")}


@health.get("/healthz")
def healthz():
    """The process is alive."""
    return jsonify({"status": "alive"})


@health.get("/readyz")
def readyz():
    """Knowledge is loaded, the service can answer hooks, is not draining, and reaches a required database."""
    body, status = readiness()
    return jsonify(body), status

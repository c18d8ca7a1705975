"""HTTP endpoints: discovery, the two services, feedback, health; CORS and authentication.

Views are thin: parse, hand over to the order check or the feedback parser, return JSON.
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

from cds_service.chart.source import ServerAllowList
from cds_service.contract import SERVICES_BY_ID
from cds_service.errors import NotFound
from cds_service.http.components import components
from cds_service.request.envelope import parse_envelope
from cds_service.request.envelope import parse_json_object
from cds_service.request.feedback import parse_feedback

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
        g.claims = authenticator.authenticate(request.headers.get("Authorization"), request.path)
    except ValueError:  # a path no audience can name (e.g. with spaces): no such service
        raise NotFound(f"No CDS service at '{request.path}'. See GET /cds-services.") from None


@cds.get("/cds-services")
def discovery():
    return jsonify(components().discovery)


@cds.post("/cds-services/<service_id>")
def call_service(service_id: str):
    service = _service(service_id)
    envelope = parse_envelope(parse_json_object(_body()), service.hook)
    g.hook_instance = envelope.hook_instance
    response = components().check.evaluate(envelope, _fhir_servers())
    g.card_topics = [card["source"]["topic"]["code"] for card in response["cards"]]
    return jsonify(response)


@cds.post("/cds-services/<service_id>/feedback")
def feedback(service_id: str):
    _service(service_id)
    items = parse_feedback(parse_json_object(_body()))
    log.info("feedback received", extra={"fields": {
        "service": service_id, "items": len(items), "outcomes": [item.outcome for item in items]}})
    return jsonify({})


@cds.after_request
def log_request(response):
    log.info("request", extra={"fields": {
        "method": request.method, "path": request.path, "status": response.status_code,
        "ms": round((time.perf_counter() - g.get("started", time.perf_counter())) * 1000, 2),
        "hookInstance": g.get("hook_instance"), "cardTopics": g.get("card_topics"),
    }})
    return response


@health.get("/healthz")
def healthz():
    """The process is alive."""
    return jsonify({"status": "alive"})


@health.get("/readyz")
def readyz():
    """Knowledge is loaded and the service can answer hooks."""
    return jsonify({"status": "ready", "knowledgeVersion": components().check.knowledge.version})

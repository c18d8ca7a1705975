"""The OpenAPI 3.1 document of the service's own HTTP API, served at ``GET /openapi.json``.

Built from the contract (service ids, hooks, card topics) so that it cannot drift from them;
``tests/test_openapi.py`` checks that every Flask route is documented and every documented path
is a route, and runs schemathesis against the app with this document.
"""

from flask import Blueprint
from flask import jsonify

from cds_service.contract import SERVICES
from cds_service.contract import TOPICS

api_doc = Blueprint("api_doc", __name__)

FHIR_ID = r"^[A-Za-z0-9\-.]{1,64}$"
ERROR_STATUSES = {
    "400": "The request cannot be used (malformed JSON, a missing or wrong field; the diagnostics name it), "
           "or a number overflows or underflows.",
    "401": "The client's JWT is missing or not valid (the detail is only in the service's log).",
    "404": "No CDS service with this id.",
    "412": "The Patient could not be had from the prefetch or the FHIR server.",
    "413": "The request body is larger than CDS_MAX_BODY_BYTES.",
}


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*statuses: str) -> dict:
    return {status: _json(_ref("OperationOutcome"), ERROR_STATUSES[status]) for status in statuses}


SCHEMAS = {
    "OperationOutcome": {
        "type": "object", "required": ["resourceType", "issue"],
        "properties": {
            "resourceType": {"const": "OperationOutcome"},
            "issue": {"type": "array", "minItems": 1, "items": {
                "type": "object", "required": ["severity", "code"],
                "properties": {"severity": {"enum": ["fatal", "error", "warning", "information"]},
                               "code": {"type": "string"}, "diagnostics": {"type": "string"}}}},
        },
    },
    "Coding": {"type": "object", "properties": {
        "system": {"type": "string"}, "code": {"type": "string"}, "display": {"type": "string"}}},
    "Card": {
        "type": "object", "required": ["uuid", "summary", "indicator", "source"],
        "properties": {
            "uuid": {"type": "string", "format": "uuid"},
            "summary": {"type": "string", "minLength": 1, "maxLength": 140},
            "detail": {"type": "string"},
            "indicator": {"enum": ["info", "warning", "critical"]},
            "source": {"type": "object", "required": ["label", "topic"], "properties": {
                "label": {"type": "string"}, "url": {"type": "string"},
                "topic": {"allOf": [_ref("Coding"), {"properties": {"code": {"enum": sorted(TOPICS)}}}]}}},
            "suggestions": {"type": "array", "items": {"type": "object", "required": ["label"], "properties": {
                "label": {"type": "string"}, "uuid": {"type": "string"}, "isRecommended": {"type": "boolean"},
                "actions": {"type": "array", "items": {"type": "object", "required": ["type"], "properties": {
                    "type": {"enum": ["create", "update", "delete"]}, "description": {"type": "string"},
                    "resource": {"type": "object"}, "resourceId": {"type": "string"}}}}}}},
            "selectionBehavior": {"enum": ["at-most-one", "any"]},
            "overrideReasons": {"type": "array", "items": _ref("Coding")},
            "links": {"type": "array", "items": {"type": "object", "required": ["label", "url", "type"],
                                                 "properties": {"label": {"type": "string"}, "url": {"type": "string"},
                                                                "type": {"enum": ["absolute", "smart"]}}}},
        },
    },
    "HookRequest": {
        "type": "object", "required": ["hook", "hookInstance", "context"],
        "description": "A CDS Hooks 2.0 request. Unknown fields are ignored; `prefetch` values are FHIR R4 "
                       "resources or Bundles (or null: known empty).",
        "properties": {
            "hook": {"enum": sorted({service.hook for service in SERVICES})},
            "hookInstance": {"type": "string", "minLength": 1, "pattern": r"\S"},
            "fhirServer": {"type": "string", "format": "uri"},
            "fhirAuthorization": {"type": "object", "required": ["access_token", "token_type"], "properties": {
                "access_token": {"type": "string"}, "token_type": {"const": "Bearer"},
                "expires_in": {"type": "integer"}, "scope": {"type": "string"}, "subject": {"type": "string"}}},
            "context": {"type": "object", "required": ["patientId", "userId", "draftOrders"], "properties": {
                "patientId": {"type": "string", "pattern": FHIR_ID},
                "userId": {"type": "string", "pattern": r"^(Practitioner|PractitionerRole|Patient|RelatedPerson)/"
                                                        r"[A-Za-z0-9\-.]{1,64}$"},
                "encounterId": {"type": "string", "pattern": FHIR_ID},
                "selections": {"type": "array", "items": {"type": "string"}},
                "draftOrders": {"type": "object", "required": ["resourceType"], "properties": {
                    "resourceType": {"const": "Bundle"},
                    "entry": {"type": "array", "items": {"type": "object"}}}}}},
            "prefetch": {"type": "object", "additionalProperties": {"type": ["object", "null"]}},
        },
    },
    "Feedback": {
        "type": "object", "required": ["feedback"],
        "properties": {"feedback": {"type": "array", "minItems": 1, "items": {
            "type": "object", "required": ["card", "outcome", "outcomeTimestamp"], "properties": {
                "card": {"type": "string", "format": "uuid"},
                "outcome": {"enum": ["accepted", "overridden"]},
                "outcomeTimestamp": {"type": "string", "format": "date-time"},
                "acceptedSuggestions": {"type": "array", "items": {"type": "object", "required": ["id"],
                                                                    "properties": {"id": {"type": "string"}}}},
                "overrideReason": {"type": "object"}}}}},
    },
}


def openapi_document() -> dict:
    """The document (a new dict on each call)."""
    service_id = {"name": "service_id", "in": "path", "required": True,
                  "schema": {"type": "string", "enum": [service.id for service in SERVICES]},
                  "description": "A service id from discovery."}
    secured = [{"cdsClientJwt": []}]
    return {
        "openapi": "3.1.0",
        "info": {"title": "Milnacipran order check (CDS Hooks 2.0)", "version": "1.0.0",
                 "description": "CDS Hooks 2.0 service that checks milnacipran (Savella) orders. Every error is a "
                                "FHIR OperationOutcome; the service never answers 5xx to a request it can read."},
        "components": {
            "securitySchemes": {"cdsClientJwt": {
                "type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                "description": "The CDS client's signed JWT (CDS Hooks 2.0, Security). Not needed with "
                               "CDS_REQUIRE_JWT=false."}},
            "schemas": SCHEMAS,
        },
        "paths": {
            "/cds-services": {"get": {
                "operationId": "discovery", "summary": "Discovery: the two services and their prefetch templates",
                "security": secured,
                "responses": {"200": _json({"type": "object", "required": ["services"], "properties": {
                    "services": {"type": "array", "items": {"type": "object", "required": ["id", "hook"]}}}},
                    "The discovery document."), **_errors("401")}}},
            "/cds-services/{service_id}": {"post": {
                "operationId": "callService", "summary": "Check the draft milnacipran orders of a hook call",
                "security": secured, "parameters": [service_id],
                "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("HookRequest")}}},
                "responses": {"200": _json({"type": "object", "required": ["cards"], "properties": {
                    "cards": {"type": "array", "items": _ref("Card")}}}, "The cards (possibly none)."),
                    **_errors("400", "401", "404", "412", "413")}}},
            "/cds-services/{service_id}/feedback": {"post": {
                "operationId": "feedback", "summary": "CDS Hooks 2.0 feedback on cards",
                "security": secured, "parameters": [service_id],
                "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("Feedback")}}},
                "responses": {"200": _json({"type": "object"}, "Feedback accepted."),
                              **_errors("400", "401", "404", "413")}}},
            "/healthz": {"get": {"operationId": "healthz", "summary": "The process is alive", "security": [],
                                 "responses": {"200": _json({"type": "object", "properties": {
                                     "status": {"const": "alive"}}}, "Alive.")}}},
            "/readyz": {"get": {"operationId": "readyz",
                                "summary": "Ready to answer hooks: not draining, and a required database reachable",
                                "security": [], "responses": {
                                    "200": _json(_IDENTITY, "Ready."),
                                    "503": _json(_IDENTITY, "Draining, or a required database cannot be reached.")}}},
            "/version": {"get": {"operationId": "version", "summary": "Package, knowledge and policy versions",
                                 "security": [], "responses": {"200": _json(_IDENTITY, "What is running.")}}},
            "/metrics": {"get": {"operationId": "metrics", "summary": "Prometheus metrics (keep inside the cluster)",
                                 "security": [], "responses": {"200": {
                                     "description": "Prometheus text exposition format.",
                                     "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
            "/openapi.json": {"get": {"operationId": "openapi", "summary": "This document", "security": [],
                                      "responses": {"200": _json({"type": "object"}, "The OpenAPI 3.1 document.")}}},
        },
    }


_IDENTITY = {"type": "object", "properties": {
    "status": {"type": "string"}, "version": {"type": "string"}, "knowledgeVersion": {"type": "string"},
    "policy": {"type": "object", "properties": {"name": {"type": "string"}, "hash": {"type": "string"}}}}}


@api_doc.get("/openapi.json")
def openapi():
    return jsonify(openapi_document())

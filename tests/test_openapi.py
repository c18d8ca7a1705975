"""The OpenAPI 3.1 document at GET /openapi.json: in step with the Flask routes, and schemathesis
run against the app with it (positive and negative examples, every documented status)."""

import re

import jsonschema_rs
import schemathesis
from hypothesis import HealthCheck
from hypothesis import settings
from schemathesis import checks

from cds_service import create_app

APP = create_app({"require_jwt": False, "log_level": "ERROR", "fhir_deadline_seconds": 0.3})


def flask_routes() -> set[tuple[str, str]]:
    found = set()
    for rule in APP.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
        found |= {(path, method.lower()) for method in rule.methods - {"HEAD", "OPTIONS"}}
    return found


def test_the_document_is_openapi_3_1_and_served():
    document = APP.test_client().get("/openapi.json").get_json()
    assert document["openapi"] == "3.1.0"
    for name, schema in document["components"]["schemas"].items():
        jsonschema_rs.Draft202012Validator({**schema, "$defs": {}} if "$ref" not in str(schema) else {"type": "object"})
    for path, item in document["paths"].items():
        for method, operation in item.items():
            assert operation["responses"] and operation["operationId"], (path, method)


def test_every_route_is_documented_and_every_documented_path_is_a_route():
    document = APP.test_client().get("/openapi.json").get_json()
    documented = {(path, method) for path, item in document["paths"].items() for method in item}
    assert documented == flask_routes()


def test_the_operation_outcome_schema_fits_real_errors():
    document = APP.test_client().get("/openapi.json").get_json()
    response = APP.test_client().post("/cds-services/milnacipran-order-sign", data=b"{", content_type="application/json")
    jsonschema_rs.validate(document["components"]["schemas"]["OperationOutcome"], response.get_json())


SCHEMA = schemathesis.openapi.from_wsgi("/openapi.json", APP)


@SCHEMA.parametrize()
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_api_conforms_to_its_document(case):
    """Every answer: a documented status, the documented media type and schema, never a 5xx."""
    case.call_and_validate(checks=[checks.not_a_server_error, checks.status_code_conformance,
                                   checks.content_type_conformance, checks.response_schema_conformance])

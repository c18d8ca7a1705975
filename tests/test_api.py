"""The HTTP contract: discovery, service calls, errors, CORS, feedback, health."""

import copy
import json
import logging

import pytest
from conftest import load_fixture

from cds_service import create_app
from cds_service.settings import SettingsError

SIGN = "/cds-services/milnacipran-order-sign"
SELECT = "/cds-services/milnacipran-order-select"
ALLOWED_PREFETCH_PARAMETERS = {"patient", "code", "status", "clinical-status", "_sort", "_count"}


def post_json(client, path, body, **kwargs):
    return client.post(path, data=json.dumps(body), content_type="application/json", **kwargs)


# --- discovery -------------------------------------------------------------------------------

def test_discovery_lists_the_two_services(client):
    response = client.get("/cds-services")
    assert response.status_code == 200
    services = {service["id"]: service for service in response.get_json()["services"]}
    assert services["milnacipran-order-select"]["hook"] == "order-select"
    assert services["milnacipran-order-sign"]["hook"] == "order-sign"
    for service in services.values():
        assert service["title"] and service["description"]
        assert service["prefetch"]["patient"] == "Patient/{{context.patientId}}"


def test_prefetch_templates_stay_in_the_spec_query_subset(client):
    for service in client.get("/cds-services").get_json()["services"]:
        assert {"patient", "renalLabs", "bodyMeasures", "vitalSigns", "medicationRequests",
                "medicationStatements", "conditions"} <= set(service["prefetch"])
        for template in service["prefetch"].values():
            if "?" not in template:
                assert template.count("/") == 1  # instance read
                continue
            resource_type, query = template.split("?", 1)
            assert resource_type.isalpha()
            for parameter in query.split("&"):
                name, value = parameter.split("=", 1)
                assert name in ALLOWED_PREFETCH_PARAMETERS, template
                assert ":" not in name  # no modifiers
                assert "{{" not in value or value == "{{context.patientId}}"


def test_prefetch_codes_come_from_the_knowledge(client):
    templates = client.get("/cds-services").get_json()["services"][0]["prefetch"]
    assert "http://loinc.org|2160-0" in templates["renalLabs"]
    assert "http://loinc.org|98979-8" in templates["renalLabs"]
    assert "http://loinc.org|8867-4" in templates["vitalSigns"]


# --- service: milnacipran detection ----------------------------------------------------------

@pytest.mark.parametrize("fixture, path", [
    ("requests/sandbox-order-sign.json", SIGN),
    ("requests/epic-order-sign-medication-reference.json", SIGN),
    ("requests/order-select-selections.json", SELECT),
])
def test_milnacipran_requests_get_a_conformant_answer(client, fixture, path):
    response = post_json(client, path, load_fixture(fixture))
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"


def test_a_non_milnacipran_order_gets_no_cards(client):
    response = post_json(client, SIGN, load_fixture("requests/non-milnacipran-order.json"))
    assert response.status_code == 200
    assert response.get_json() == {"cards": []}


def test_order_select_checks_only_the_selections(client):
    request = load_fixture("requests/order-select-selections.json")
    request["context"]["selections"] = ["MedicationRequest/request-122"]  # the ibuprofen draft
    assert post_json(client, SELECT, request).get_json() == {"cards": []}


# --- service: malformed requests -------------------------------------------------------------

def without(path):
    def change(request):
        *parents, leaf = path.split(".")
        target = request
        for parent in parents:
            target = target[parent]
        del target[leaf]
    return change


def setting(path, value):
    def change(request):
        *parents, leaf = path.split(".")
        target = request
        for parent in parents:
            target = target[parent]
        target[leaf] = value
    return change


@pytest.mark.parametrize("change, message", [
    (without("hook"), "Missing required field 'hook'"),
    (without("hookInstance"), "Missing required field 'hookInstance'"),
    (without("context"), "Missing required field 'context'"),
    (without("context.patientId"), "Missing required field 'context.patientId'"),
    (without("context.draftOrders"), "Missing required field 'context.draftOrders'"),
    (setting("context.draftOrders", {"resourceType": "MedicationRequest"}), "must be a FHIR Bundle"),
    (setting("context.draftOrders", ["not", "a", "bundle"]), "must be a JSON object"),
    (setting("context.draftOrders.entry", {"resource": {}}), "'context.draftOrders.entry' must be an array"),
    (setting("hook", "patient-view"), "answers the 'order-sign' hook"),
    (setting("hook", 42), "'hook' must be a non-empty string"),
    (setting("context", "patient 1"), "'context' must be a JSON object"),
    (setting("context.patientId", ""), "'context.patientId' must be a non-empty string"),
    (setting("context.patientId", "x/../../admin"), "'context.patientId' must be a FHIR id"),
    (setting("context.selections", "MedicationRequest/1"), "'context.selections' must be an array"),
    (setting("prefetch", []), "'prefetch' must be a JSON object"),
])
def test_unusable_requests_get_400_saying_what_is_wrong(client, change, message):
    request = load_fixture("requests/sandbox-order-sign.json")
    change(request)
    response = post_json(client, SIGN, request)
    assert response.status_code == 400
    outcome = response.get_json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert message in outcome["issue"][0]["diagnostics"]


@pytest.mark.parametrize("body", [b"{not json", b"\xff\xfe", b"", b"[1, 2]", b'"text"', b"null"])
def test_malformed_json_gets_400(client, body):
    response = client.post(SIGN, data=body, content_type="application/json")
    assert response.status_code == 400
    assert response.get_json()["resourceType"] == "OperationOutcome"


def test_unknown_service_is_404(client):
    response = post_json(client, "/cds-services/warfarin-check", load_fixture("requests/sandbox-order-sign.json"))
    assert response.status_code == 404
    assert "warfarin-check" in response.get_json()["issue"][0]["diagnostics"]


def test_body_over_the_limit_is_413():
    app = create_app({"require_jwt": False, "max_body_bytes": 10_000})
    response = app.test_client().post(SIGN, data=b"{" + b" " * 20_000 + b"}", content_type="application/json")
    assert response.status_code == 413
    assert response.get_json()["resourceType"] == "OperationOutcome"
    assert response.headers["Access-Control-Allow-Origin"] == "*"


def test_a_dstu2_milnacipran_order_is_refused_clearly(client):
    request = load_fixture("requests/sandbox-order-sign.json")
    draft = request["context"]["draftOrders"]["entry"][0]["resource"]
    draft["resourceType"] = "MedicationOrder"
    response = post_json(client, SIGN, request)
    assert response.status_code == 400
    assert "R4" in response.get_json()["issue"][0]["diagnostics"]


def test_sandbox_quirks_are_accepted(client):
    request = load_fixture("requests/sandbox-order-sign.json")
    draft = request["context"]["draftOrders"]
    assert "type" not in draft and isinstance(draft["entry"][0]["resource"]["category"], dict)
    assert post_json(client, SIGN, request).status_code == 200


def test_unknown_fields_are_ignored(client):
    request = load_fixture("requests/sandbox-order-sign.json")
    request["extension"] = {"com.example.flag": True}
    request["context"]["com.example.extra"] = [1, 2]
    assert post_json(client, SIGN, request).status_code == 200


def test_an_unexpected_exception_becomes_a_visible_card_and_a_log_line(caplog):
    def broken_clock():
        raise RuntimeError("boom")
    app = create_app({"require_jwt": False}, clock=broken_clock)  # fails inside the check, after the envelope
    request = load_fixture("requests/sandbox-order-sign.json")
    with caplog.at_level(logging.ERROR, logger="cds_service"):
        response = post_json(app.test_client(), SIGN, request)
    assert response.status_code == 200
    [card] = response.get_json()["cards"]
    assert card["indicator"] == "warning" and "could not run" in card["summary"]
    assert card["source"]["topic"]["code"] == "data-availability"
    [record] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert record.fields["hookInstance"] == request["hookInstance"]


def test_an_unexpected_exception_outside_the_check_is_not_a_500(app, monkeypatch):
    def crash(*args, **kwargs):
        raise RuntimeError("boom")
    monkeypatch.setattr("cds_service.http.views.parse_feedback_items", crash)
    response = post_json(app.test_client(), SIGN + "/feedback", {"feedback": []})
    assert response.status_code == 503
    assert response.get_json()["resourceType"] == "OperationOutcome"


# --- CORS -------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/cds-services", SIGN, SIGN + "/feedback"])
def test_preflight_needs_no_authentication(path, tmp_path):
    app = create_app({"require_jwt": True, "trusted_clients_file": "fixtures/trusted-clients.sandbox-dev.json"})
    response = app.test_client().options(path, headers={
        "Origin": "https://sandbox.cds-hooks.org", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type"})
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert "Authorization" in response.headers["Access-Control-Allow-Headers"]
    assert "Content-Type" in response.headers["Access-Control-Allow-Headers"]
    assert "POST" in response.headers["Access-Control-Allow-Methods"]


@pytest.mark.parametrize("method, path, body", [
    ("get", "/cds-services", None),
    ("post", SIGN, b"{broken"),
    ("post", "/cds-services/nope", b"{}"),
    ("get", "/healthz", None),
])
def test_every_response_carries_cors_headers(client, method, path, body):
    response = getattr(client, method)(path, data=body, content_type="application/json")
    assert response.headers["Access-Control-Allow-Origin"] == "*"


def test_401_carries_cors_headers():
    app = create_app({"require_jwt": True, "trusted_clients_file": "fixtures/trusted-clients.sandbox-dev.json"})
    response = app.test_client().get("/cds-services")
    assert response.status_code == 401
    assert response.headers["Access-Control-Allow-Origin"] == "*"


# --- feedback ---------------------------------------------------------------------------------

ACCEPTED = {"card": "9368d37b-283f-44a0-93ea-547cebab93ed", "outcome": "accepted",
            "acceptedSuggestions": [{"id": "e56e1945-20b3-4393-8503-a1a20fd73152"}],
            "outcomeTimestamp": "2026-11-20T10:05:31Z"}
OVERRIDDEN = {"card": "9368d37b-283f-44a0-93ea-547cebab93ed", "outcome": "overridden",
              "overrideReason": {"reason": {"code": "benefit-outweighs-risk",
                                            "system": "https://milnacipran-cds.example.org/override-reason"},
                                 "userComment": "cross-taper planned"},
              "outcomeTimestamp": "2026-11-20T10:05:31Z"}


@pytest.mark.parametrize("items", [[ACCEPTED], [OVERRIDDEN], [ACCEPTED, OVERRIDDEN],
                                   [{**OVERRIDDEN, "overrideReason": None}]])
def test_valid_feedback_is_accepted(client, items):
    items = [{k: v for k, v in item.items() if v is not None} for item in items]
    response = post_json(client, SIGN + "/feedback", {"feedback": items})
    assert response.status_code == 200


def broken(item, **changes):
    item = copy.deepcopy(item)
    for key, value in changes.items():
        if value is None:
            item.pop(key, None)
        else:
            item[key] = value
    return {"feedback": [item]}


@pytest.mark.parametrize("body, message", [
    ({}, "feedback"),
    ({"feedback": []}, "non-empty array"),
    ({"feedback": ["x"]}, "must be an object"),
    (broken(ACCEPTED, card=None), "card"),
    (broken(ACCEPTED, outcome="ignored"), "outcome"),
    (broken(ACCEPTED, acceptedSuggestions=None), "acceptedSuggestions"),
    (broken(ACCEPTED, acceptedSuggestions=[{"uuid": "x"}]), "acceptedSuggestions"),
    (broken(ACCEPTED, outcomeTimestamp=None), "outcomeTimestamp"),
    (broken(ACCEPTED, outcomeTimestamp="yesterday"), "outcomeTimestamp"),
    (broken(ACCEPTED, outcomeTimestamp="2026-11-20T10:05:31"), "time zone"),
    (broken(OVERRIDDEN, overrideReason={"reason": {"code": "x"}}), "Coding"),
    (broken(OVERRIDDEN, overrideReason="because"), "overrideReason"),
])
def test_invalid_feedback_gets_400_saying_what_is_wrong(client, body, message):
    response = post_json(client, SIGN + "/feedback", body)
    assert response.status_code == 400
    assert message in response.get_json()["issue"][0]["diagnostics"]


def test_feedback_for_an_unknown_service_is_404(client):
    assert post_json(client, "/cds-services/nope/feedback", {"feedback": [ACCEPTED]}).status_code == 404


# --- health and configuration -----------------------------------------------------------------

def test_health_endpoints(client):
    assert client.get("/healthz").get_json() == {"status": "alive"}
    ready = client.get("/readyz").get_json()
    assert ready["status"] == "ready" and ready["knowledgeVersion"]


def test_authentication_on_without_trusted_clients_refuses_to_start():
    with pytest.raises(SettingsError, match="CDS_TRUSTED_CLIENTS_FILE"):
        create_app(environ={})


@pytest.mark.parametrize("variable, value", [
    ("CDS_REQUIRE_JWT", "yes"), ("CDS_PORT", "eighty"), ("CDS_PORT", "99999"), ("CDS_MAX_BODY_BYTES", "0"),
    ("CDS_PUBLIC_BASE_URL", "cds.example.org"), ("CDS_FHIR_DEADLINE_SECONDS", "-1"),
    ("CDS_FHIR_DEADLINE_SECONDS", "inf"), ("CDS_FHIR_TIMEOUT_SECONDS", "0"), ("CDS_JWT_LEEWAY_SECONDS", "nan"),
    ("CDS_JWT_LEEWAY_SECONDS", "3600"), ("CDS_LOG_LEVEL", "verbose"),
])
def test_bad_settings_name_the_variable(variable, value):
    with pytest.raises(SettingsError, match=variable):
        create_app(environ={variable: value, "CDS_REQUIRE_JWT": "false"} if variable != "CDS_REQUIRE_JWT"
                   else {variable: value})


def test_every_setting_is_documented_in_the_readme():
    from pathlib import Path

    from cds_service.settings import FIELDS
    root = Path(__file__).parent.parent
    readme = (root / "README.md").read_text()
    for field in FIELDS:
        assert f"`{field.variable}`" in readme, field.variable

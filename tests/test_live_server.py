"""`cds-service serve` as a real process on a loopback port, called over HTTP."""


import pytest
import requests
from conformance import assert_conformant_response
from conftest import load_fixture
from server_process import running_server


@pytest.fixture(scope="module")
def live_server(tmp_path_factory):
    log_path = tmp_path_factory.mktemp("live") / "server.log"
    with running_server(log_path, {"CDS_REQUIRE_JWT": "false", "CDS_WORKERS": "1"}) as base:
        yield base


def test_discovery_over_http(live_server):
    response = requests.get(f"{live_server}/cds-services", timeout=5)
    assert response.status_code == 200
    assert {s["id"] for s in response.json()["services"]} == {"milnacipran-order-select", "milnacipran-order-sign"}


def test_service_call_over_http(live_server):
    response = requests.post(f"{live_server}/cds-services/milnacipran-order-sign",
                             json=load_fixture("requests/sandbox-order-sign.json"), timeout=5)
    assert response.status_code == 200
    assert_conformant_response(response.json())


def test_malformed_json_over_http_is_400(live_server):
    response = requests.post(f"{live_server}/cds-services/milnacipran-order-sign", data=b"{oops",
                             headers={"Content-Type": "application/json"}, timeout=5)
    assert response.status_code == 400
    assert response.headers["Access-Control-Allow-Origin"] == "*"


def test_a_chunked_body_over_the_limit_is_413_not_truncated(live_server):
    def chunks():
        yield b'{"hook": "order-sign", "padding": "'
        for _ in range(6):
            yield b"x" * 1_000_000
        yield b'"}'
    response = requests.post(f"{live_server}/cds-services/milnacipran-order-sign", data=chunks(),
                             headers={"Content-Type": "application/json"}, timeout=10)
    assert response.status_code == 413
    assert response.json()["resourceType"] == "OperationOutcome"

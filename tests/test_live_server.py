"""`cds-service serve` as a real process on a loopback port, called over HTTP."""

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from conformance import assert_conformant_response
from conftest import load_fixture

REPO = Path(__file__).parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cds_service_command() -> list[str]:
    script = shutil.which("cds-service", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-m", "cds_service.cli"]


@pytest.fixture(scope="module")
def live_server(tmp_path_factory):
    port = free_port()
    log_path = tmp_path_factory.mktemp("live") / "server.log"
    environment = {**os.environ, "CDS_REQUIRE_JWT": "false", "CDS_WORKERS": "1"}
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            cds_service_command() + ["serve", "--host", "127.0.0.1", "--port", str(port)],
            cwd=REPO, env=environment, stdout=subprocess.DEVNULL, stderr=log)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                time.sleep(0.1)
        else:
            process.kill()
            pytest.fail("server did not start: " + log_path.read_text()[-2000:])
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


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

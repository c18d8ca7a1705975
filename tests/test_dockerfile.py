"""The Dockerfile's CMD and HEALTHCHECK work as written (no Docker engine here: run them directly)."""

import json
import os
import re
import subprocess
import sys
import time

from test_live_server import REPO
from test_live_server import cds_service_command
from test_live_server import free_port

DOCKERFILE = (REPO / "Dockerfile").read_text()


def dockerfile_environment() -> dict:
    line = re.search(r"^ENV (.+?)(?<!\\)$", DOCKERFILE, re.M | re.S).group(1).replace("\\\n", " ")
    return dict(pair.split("=", 1) for pair in line.split())


def test_image_runs_as_non_root_on_port_8080_with_a_readyz_healthcheck():
    assert re.search(r"^USER (?!root)\w+", DOCKERFILE, re.M)
    assert dockerfile_environment()["CDS_PORT"] == "8080" and "EXPOSE 8080" in DOCKERFILE
    assert "HEALTHCHECK" in DOCKERFILE and "/readyz" in DOCKERFILE
    assert DOCKERFILE.startswith("FROM python:3.11-slim")


def test_cmd_starts_the_service_and_the_healthcheck_passes(tmp_path):
    cmd = json.loads(re.search(r"^CMD (\[.*\])$", DOCKERFILE, re.M).group(1))
    assert cmd == ["cds-service", "serve"]
    port = free_port()
    environment = {**os.environ, **dockerfile_environment(), "CDS_HOST": "127.0.0.1", "CDS_PORT": str(port),
                   "CDS_TRUSTED_CLIENTS_FILE": str(REPO / "fixtures" / "trusted-clients.example.json")}
    healthcheck = re.search(r'CMD python -c "(.+)"$', DOCKERFILE, re.M).group(1).replace("8080", str(port))
    with open(tmp_path / "server.log", "wb") as log:
        server = subprocess.Popen(cds_service_command() + cmd[1:], env=environment, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 20
        while subprocess.run([sys.executable, "-c", healthcheck], capture_output=True).returncode != 0:
            assert server.poll() is None, (tmp_path / "server.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "the HEALTHCHECK never passed"
            time.sleep(0.2)
    finally:
        server.terminate()
        server.wait(timeout=10)

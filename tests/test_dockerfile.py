"""The Dockerfile's CMD and HEALTHCHECK work as written (no Docker engine here: run them directly)."""

import json
import os
import re
import subprocess
import sys

from server_process import REPO
from server_process import free_port
from server_process import running_server

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
    environment = {**dockerfile_environment(), "CDS_HOST": "127.0.0.1", "CDS_PORT": str(port),
                   "CDS_TRUSTED_CLIENTS_FILE": str(REPO / "fixtures" / "trusted-clients.example.json")}
    healthcheck = re.search(r'CMD python -c "(.+)"$', DOCKERFILE, re.M).group(1)

    def healthcheck_passes(base):  # run as the container would: with the image's environment
        return subprocess.run([sys.executable, "-c", healthcheck], env={**os.environ, **environment},
                              capture_output=True).returncode == 0

    with running_server(tmp_path / "server.log", environment, port, args=tuple(cmd[1:]), ready=healthcheck_passes):
        pass  # ready means the image's HEALTHCHECK command passed against the image's CMD

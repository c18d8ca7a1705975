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


def healthcheck_command() -> list[str]:
    """The HEALTHCHECK's exec-form command (a JSON array: no shell in the image is needed to run it)."""
    return json.loads(re.search(r"^HEALTHCHECK .*?\\\n\s*CMD (\[.*\])$", DOCKERFILE, re.M).group(1))


def test_image_runs_as_non_root_on_port_8080_with_a_readyz_healthcheck():
    assert re.search(r"^USER 10001:10001$", DOCKERFILE, re.M)  # numeric: Kubernetes' runAsNonRoot can check it
    assert dockerfile_environment()["CDS_PORT"] == "8080" and "EXPOSE 8080" in DOCKERFILE
    assert healthcheck_command()[:2] == ["python", "-c"] and "/readyz" in healthcheck_command()[2]
    assert re.search(r"^ARG BASE_IMAGE=python:3.11-slim\nFROM \$\{BASE_IMAGE\}$", DOCKERFILE, re.M)


def test_cmd_starts_the_service_and_the_healthcheck_passes(tmp_path):
    cmd = json.loads(re.search(r"^CMD (\[.*\])$", DOCKERFILE, re.M).group(1))
    assert cmd == ["cds-service", "serve"]
    port = free_port()
    image_environment = {name: value for name, value in dockerfile_environment().items()
                         if name not in ("PATH", "HOME")}  # the image's venv and HOME do not exist here
    environment = {**image_environment, "CDS_HOST": "127.0.0.1", "CDS_PORT": str(port),
                   "TMPDIR": str(tmp_path), "CDS_DATA_DIR": str(tmp_path),
                   "CDS_TRUSTED_CLIENTS_FILE": str(REPO / "fixtures" / "trusted-clients.example.json")}
    healthcheck = healthcheck_command()

    def healthcheck_passes(base):  # run as the container would: with the image's environment
        return subprocess.run([sys.executable, *healthcheck[1:]], env={**os.environ, **environment},
                              capture_output=True).returncode == 0

    with running_server(tmp_path / "server.log", environment, port, args=tuple(cmd[1:]), ready=healthcheck_passes):
        pass  # ready means the image's HEALTHCHECK command passed against the image's CMD

"""`cds-service serve` as a real process on a free loopback port, for the tests that need one."""

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

REPO = Path(__file__).parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cds_service_command() -> list[str]:
    script = shutil.which("cds-service", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-m", "cds_service.cli"]


@contextlib.contextmanager
def running_server(log_path: Path, environment: dict[str, str], port: int | None = None, args=None, ready=None):
    """Start the server with ``environment`` added to os.environ; yield its base URL once ready.

    ``args`` default to ``serve --host 127.0.0.1 --port <port>``; ``ready(base)`` says whether it
    is up (default: GET /readyz answers 200). stderr goes to ``log_path``; the process is
    stopped on exit.
    """
    port = port or free_port()
    base = f"http://127.0.0.1:{port}"
    args = args or ["serve", "--host", "127.0.0.1", "--port", str(port)]
    command = cds_service_command() + list(args)
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, cwd=REPO, env={**os.environ, **environment},
                                   stdout=subprocess.DEVNULL, stderr=log)
    try:
        deadline = time.monotonic() + 20
        while not (ready or _answers_readyz)(base):
            assert process.poll() is None, "server exited: " + log_path.read_text()[-2000:]
            assert time.monotonic() < deadline, "server not ready: " + log_path.read_text()[-2000:]
            time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _answers_readyz(base: str) -> bool:
    try:
        return requests.get(f"{base}/readyz", timeout=1).status_code == 200
    except requests.ConnectionError:
        return False

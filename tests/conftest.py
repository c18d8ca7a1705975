import json
import os
import re
import sys
import tempfile
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

sys.path.insert(0, str(Path(__file__).parent))  # test helpers: conformance, fhir_stub

from conformance import assert_conformant_response  # noqa: E402

from cds_service import create_app  # noqa: E402

# Apps built from the environment keep their audit database in a throwaway folder, not in ./var.
os.environ.setdefault("CDS_DATA_DIR", tempfile.mkdtemp(prefix="cds-test-data-"))

FIXTURES = Path(__file__).parent.parent / "fixtures"
SERVICE_PATH = re.compile(r"^/cds-services/[^/]+$")


def load_fixture(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


class ConformanceCheckingClient(FlaskClient):
    """A test client that checks every successful service response against the CDS Hooks rules."""

    def open(self, *args, **kwargs):
        response = super().open(*args, **kwargs)
        if response.request.method == "POST" and SERVICE_PATH.match(response.request.path) \
                and response.status_code == 200:
            assert_conformant_response(response.get_json())
        return response


# Every app any test builds checks every successful service response it gives.
Flask.test_client_class = ConformanceCheckingClient


@pytest.fixture
def app():
    return create_app({"require_jwt": False})


@pytest.fixture
def client(app):
    return app.test_client()

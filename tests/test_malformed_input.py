"""Bad input gets a clear answer and loses nothing: wrong types anywhere, deep nesting, odd values.

Each scenario is sent many times with a few of its values (anywhere in the request, chart
resources included) swapped for a value of the wrong type. Every answer must be a 200 without a
"could not run" card, or a clear 400/412: a malformed field costs that field, not the check.
"""

import copy
import random

import pytest
from builders import paths
from test_scenarios import SCENARIOS

from cds_service import create_app
from cds_service.scenario import load_scenario

WRONG_VALUES = (None, [], {}, 12, -1.5, "x", "", True, [1, "a"], {"a": None}, "2026-13-45")
MUTATIONS_PER_SCENARIO = 15



def replace(document, path, value):
    for step in path[:-1]:
        document = document[step]
    document[path[-1]] = value


@pytest.fixture(scope="module")
def client():
    return create_app({"require_jwt": False, "log_level": "ERROR", "fhir_deadline_seconds": 0.2}).test_client()


@pytest.mark.parametrize("path", SCENARIOS, ids=[path.stem for path in SCENARIOS])
def test_wrong_types_anywhere_never_crash_the_check(client, path):
    rng = random.Random(path.stem)
    original = load_scenario(path).request
    for _ in range(MUTATIONS_PER_SCENARIO):
        request = copy.deepcopy(original)
        for _ in range(rng.randint(1, 3)):
            targets = list(paths(request))
            replace(request, rng.choice(targets), copy.deepcopy(rng.choice(WRONG_VALUES)))
        hook = request.get("hook") if request.get("hook") in ("order-select", "order-sign") else "order-sign"
        response = client.post(f"/cds-services/milnacipran-{hook}", json=request)
        assert response.status_code in (200, 400, 412), response.get_json()
        if response.status_code == 200:
            summaries = [card["summary"] for card in response.get_json()["cards"]]
            assert not any("could not run" in summary for summary in summaries), summaries
        else:
            assert response.get_json()["resourceType"] == "OperationOutcome"


@pytest.mark.parametrize("path", ["/cds-services/milnacipran-order-sign", "/cds-services/milnacipran-order-sign/feedback"])
def test_deeply_nested_json_is_a_clear_400(client, path):
    response = client.post(path, data=b"[" * 100_000 + b"]" * 100_000, content_type="application/json")
    assert response.status_code == 400
    assert "nested too deeply" in response.get_json()["issue"][0]["diagnostics"]

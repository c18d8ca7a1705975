"""Property-based tests (issue 13): hypothesis mutates valid requests, thousands of times.

Mutations: a value anywhere replaced by a wrong type, null, a huge or unicode string, a number as a
string, an implausible or extreme number; keys removed or added; a medication list of an unreadable
shape; hundreds of drafts; raw bodies with NaN, overflowing numbers or deep nesting. Properties:

* the answer is always 200, 400, 404, 412 or 413 (never a 5xx, never a hang);
* every 200 is a conformant CDS Hooks response (``tests/conformance.py``);
* no card shows an impossible number (negative, infinite, NaN);
* a contraindication is never hidden silently: while the phenelzine entry is in the chart untouched
  and the order is checked, the MAOI card or a data-availability card is there.
"""

import copy
import json
import re

from builders import paths
from conformance import assert_conformant_response
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
from test_unreadable_chart import NOW
from test_unreadable_chart import UNREADABLE_MEDICATIONS

from cds_service import create_app
from cds_service.scenario import build_request

MUTATED_EXAMPLES = 2000             # requests mutated by hypothesis
RAW_EXAMPLES = 1000                 # raw bodies with odd numbers and nesting
ALLOWED = {200, 400, 404, 412, 413}
BASES = [
    build_request(NOW, {"age": 70, "sex": "female", "weight_kg": 60, "height_cm": 160, "creatinine_mg_dl": 1.9,
                        "medications": ["phenelzine", "sertraline"], "bp": [(150, 95)], "heart_rate": [104]}),
    build_request(NOW, {"age": 30, "sex": "male", "weight_kg": 90, "height_cm": 180, "creatinine_mg_dl": 0.9,
                        "medications": ["phenelzine"]}, {"mg": 100, "per_day": 1, "hook": "order-select"}),
]
PHENELZINE = [entry["resource"] for base in BASES for entry in base["prefetch"]["medicationRequests"]["entry"]
              if entry["resource"]["medicationCodeableConcept"]["text"] == "phenelzine"]
APP = create_app({"require_jwt": False, "log_level": "CRITICAL", "fhir_deadline_seconds": 0.2,
                  "fhir_timeout_seconds": 0.2, "max_body_bytes": 2_000_000}, clock=lambda: NOW)
CLIENT = APP.test_client()
IMPOSSIBLE = re.compile(r"(?<![\w.\-–/])-\d|\binf\b|\bnan\b|\binfinity\b", re.IGNORECASE)

wrong_values = st.one_of(
    st.none(), st.booleans(), st.integers(-10**18, 10**18), st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0, -1, 1e308, -1e308, 1e-300, 2.2250738585072014e-308, 1.7, 0.07, 5000, 10**17]),
    st.text(max_size=20), st.text(alphabet=st.characters(min_codepoint=0x80, max_codepoint=0x10FFFF), max_size=50),
    st.builds(lambda n, c: c * n, st.integers(10_000, 300_000), st.sampled_from(["x", "é", "\U0001F600"])),
    st.sampled_from(["12", "1e999", "NaN", "-5", "0x10", "", " ", "\u202e", "Patient/../../x"]),
    st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
)



def parent(document, path):
    for step in path[:-1]:
        document = document[step]
    return document


@st.composite
def mutated_requests(draw):
    request = copy.deepcopy(draw(st.sampled_from(BASES)))
    rounds = draw(st.integers(1, 4))
    kinds = ["replace"] * 6 + ["delete"] * 2 + ["add"] * 2 + ["number"] * 2 + ["medications"]
    if draw(st.integers(0, 99)) == 0:     # hundreds of drafts: slow (a check per draft), so 1 % of examples
        kinds, rounds = ["drafts"], 1
    for _ in range(rounds):
        kind = draw(st.sampled_from(kinds))
        targets = list(paths(request))
        if kind == "medications":
            request.setdefault("prefetch", {})["medicationRequests"] = copy.deepcopy(
                UNREADABLE_MEDICATIONS[draw(st.sampled_from(sorted(UNREADABLE_MEDICATIONS)))])
        elif kind == "drafts":
            entries = request.get("context", {}).get("draftOrders", {}).get("entry") if isinstance(
                request.get("context"), dict) and isinstance(request["context"].get("draftOrders"), dict) else None
            if isinstance(entries, list) and entries:
                entries.extend(copy.deepcopy(entries[:1]) * draw(st.integers(100, 300)))
        elif not targets:
            continue
        elif kind == "delete":
            path = draw(st.sampled_from(targets))
            container = parent(request, path)
            del container[path[-1]]
        elif kind == "add":
            path = draw(st.sampled_from(targets))
            container = parent(request, path)
            if isinstance(container, dict):
                container[draw(st.text(min_size=1, max_size=10))] = draw(wrong_values)
        else:
            numeric = [p for p in targets if isinstance(parent(request, p)[p[-1]], (int, float))]
            path = draw(st.sampled_from(numeric or targets)) if kind == "number" else draw(st.sampled_from(targets))
            parent(request, path)[path[-1]] = draw(wrong_values)
    return request


def check(response, request=None):
    assert response.status_code in ALLOWED, (response.status_code, response.get_data()[:300])
    body = response.get_json()
    if response.status_code != 200:
        assert body["resourceType"] == "OperationOutcome"
        return
    assert_conformant_response(body)
    for card in body["cards"]:
        for text in (card["summary"], card.get("detail", "")):
            assert not IMPOSSIBLE.search(text), text
    if request is None or not body["cards"]:
        return
    topics = {card["source"]["topic"]["code"] for card in body["cards"]}
    if _phenelzine_untouched(request) and _hook_of(request) and "data-availability" not in topics:
        assert "maoi-contraindication" in topics, sorted(topics)


def _hook_of(request):
    return request.get("hook") in ("order-select", "order-sign")


def _phenelzine_untouched(request):
    prefetch = request.get("prefetch")
    bundle = prefetch.get("medicationRequests") if isinstance(prefetch, dict) else None
    entries = bundle.get("entry") if isinstance(bundle, dict) else None
    return isinstance(entries, list) and any(isinstance(e, dict) and e.get("resource") in PHENELZINE for e in entries)


def post(request):
    hook = request.get("hook") if request.get("hook") in ("order-select", "order-sign") else "order-sign"
    return CLIENT.post(f"/cds-services/milnacipran-{hook}", json=request)


@settings(max_examples=MUTATED_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(mutated_requests())
def test_mutated_requests_get_a_clear_answer(request):
    check(post(request), request)


RAW = st.sampled_from([b"NaN", b"Infinity", b"-Infinity", b"1e309", b"-1e999", b"1e-400", b"4e-320",
                       b"123456789012345678901234567890", b"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
                       b'"\\ud800"', b'"\\u0000"'])


@settings(max_examples=RAW_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(st.sampled_from(BASES), RAW, st.data())
def test_raw_bodies_with_odd_numbers_and_nesting(base, raw, data):
    """A value swapped in the serialised body itself: NaN, overflow, underflow, big integers, nesting."""
    text = json.dumps(base)
    numbers = [m.span() for m in re.finditer(r"(?<=: )-?\d+(?:\.\d+)?", text)]
    start, end = data.draw(st.sampled_from(numbers))
    body = text[:start].encode() + raw + text[end:].encode()
    response = CLIENT.post(f"/cds-services/milnacipran-{base['hook']}", data=body, content_type="application/json")
    check(response)
    if raw in (b"NaN", b"Infinity", b"-Infinity", b"1e309", b"-1e999", b"1e-400", b"4e-320",
               b"123456789012345678901234567890"):
        assert response.status_code == 400


def test_hundreds_of_drafts():
    request = copy.deepcopy(BASES[0])
    entries = request["context"]["draftOrders"]["entry"]
    entries.extend(copy.deepcopy(entries) * 500)
    check(post(request), request)


def test_deeply_nested_prefetch_is_refused_or_read_without_crashing():
    request = copy.deepcopy(BASES[0])        # json.dumps would recurse 5,000 levels: the body is built by hand
    text = json.dumps({k: v for k, v in request.items() if k != "prefetch"})[:-1]
    prefetch = {k: v for k, v in request["prefetch"].items() if k != "otherLabs"}
    raw = (text + ', "prefetch": ' + json.dumps(prefetch)[:-1] + ', "otherLabs": {"resourceType": "Bundle", "entry": '
           '[{"resource": ' + '{"a": ' * 5000 + "{}" + "}" * 5000 + "}]}}}")
    response = CLIENT.post("/cds-services/milnacipran-order-sign", data=raw, content_type="application/json")
    check(response)

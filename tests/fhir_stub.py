"""A small, stdlib-only FHIR R4 server for tests of the FHIR-server fallback.

    with FhirStub([patient, obs1, obs2], page_size=50) as fhir:
        requests.get(f"{fhir.base_url}/Observation", params={"patient": "p1"})
        fhir.set_fault("latency", delay=0.5, match="Observation")

Decisions worth knowing:

* HTTP/1.0, one request per connection (no keep-alive), so a pooled client
  cannot keep using an old connection once the listener is gone.
* ``/metadata`` is answered without the bearer token (as SMART servers do);
  every other path requires it when ``required_token`` is set.
* Faults are checked before authentication.
* ``set_fault("refuse")`` closes the listening socket for good;
  ``set_fault(None)`` does not reopen it. Use a new stub instead.
* ``status`` is not a Condition search parameter (use ``clinical-status``),
  so it is ignored there like any other unknown parameter.
* Paging uses an ``_offset`` parameter in the ``next`` link, built on
  ``next_link_base`` when it is set (to point at another host) or on
  ``base_url`` otherwise.
* Invalid ``date``/``_count`` values get a 400 OperationOutcome.
"""
from __future__ import annotations

import copy
import json
import operator
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from datetime import timezone
from http.server import BaseHTTPRequestHandler
from http.server import ThreadingHTTPServer
from urllib.parse import parse_qs
from urllib.parse import unquote
from urllib.parse import urlencode
from urllib.parse import urlsplit

FHIR_JSON = "application/fhir+json"
FAULT_KINDS = (None, "latency", "status", "garbage", "not_fhir", "hang", "refuse", "trickle")
_MED_TYPES = {"MedicationRequest", "MedicationStatement", "MedicationAdministration", "MedicationDispense"}
_DATE_FIELDS = {"Observation": ("effectiveDateTime", "effectivePeriod.start")}
_OTHER_DATE_FIELDS = ("authoredOn", "effectiveDateTime", "effectivePeriod.start", "recordedDate", "performedDateTime")
_DATE_OPS = {"eq": operator.eq, "ne": operator.ne, "lt": operator.lt,
             "gt": operator.gt, "ge": operator.ge, "le": operator.le}



class _Server(ThreadingHTTPServer):
    # The default backlog of 5 drops SYNs under a burst of parallel queries (one connection
    # each): the client retries after 1 s, which looks like a timeout.
    request_queue_size = 128

class _Headers(dict):
    """Header dict: keys stored lower-cased, lookups case-insensitive."""

    def __init__(self, items=()):
        super().__init__((k.lower(), v) for k, v in items)

    def __getitem__(self, key):
        return super().__getitem__(key.lower())

    def __contains__(self, key):
        return isinstance(key, str) and super().__contains__(key.lower())

    def get(self, key, default=None):
        return super().get(key.lower(), default)


@dataclass
class RecordedRequest:
    method: str
    path: str                      # without the query, e.g. "/fhir/Observation"
    query: dict[str, list[str]]
    headers: _Headers              # case-insensitive access
    started: float                 # time.monotonic() when handling began
    finished: float | None = None  # set just before the response is written


class _Handler(BaseHTTPRequestHandler):
    server_version = "FhirStub/1.0"

    def log_message(self, format, *args):  # quiet
        pass

    def do_GET(self):
        self.server.stub._handle(self)

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET


def _outcome(code: str, text: str) -> dict:
    return {"resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": code, "diagnostics": text}]}


def _codings(resource: dict, field: str) -> list:
    concept = resource.get(field)
    return concept.get("coding", []) if isinstance(concept, dict) else []


def _match_token(codings: list, item: str) -> bool:
    """``code`` matches any system; ``system|code`` must match both (``|code``: no system)."""
    if "|" not in item:
        return any(c.get("code") == item for c in codings)
    system, code = item.split("|", 1)
    return any((c.get("system") or "") == system and (not code or c.get("code") == code)
               for c in codings)


def _match_patient(resource: dict, value: str) -> bool:
    target = value if "/" in value else f"Patient/{value}"
    bare = target.rsplit("/", 1)[-1]
    for key in ("subject", "patient"):
        ref = (resource.get(key) or {}).get("reference") or ""
        if ref in (target, bare) or ref.endswith("/" + target):
            return True
    return False


def _resource_date(resource: dict) -> str | None:
    for path in _DATE_FIELDS.get(resource.get("resourceType"), _OTHER_DATE_FIELDS):
        value = resource
        for part in path.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if isinstance(value, str) and value:
            return value
    return None


def _to_datetime(text: str) -> datetime:
    """Parse a FHIR date/dateTime; partial dates start at their first instant; naive means UTC."""
    if "T" not in text:
        parts = [int(p) for p in text.split("-")] + [1, 1]
        return datetime(parts[0], parts[1], parts[2], tzinfo=timezone.utc)
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def _date_key(text: str, n: int) -> tuple:
    """(year[, month[, day]]) as written (local date), padded to n parts."""
    parts = [int(p) for p in text[:10].split("-")]
    return tuple((parts + [1, 1])[:n])


def _match_date(resource: dict, value: str) -> bool:
    op, value = (value[:2], value[2:]) if value[:2] in _DATE_OPS else ("eq", value)
    have = _resource_date(resource)
    if have is None:
        return False
    if "T" in value:  # full dateTime: compare instants
        return _DATE_OPS[op](_to_datetime(have), _to_datetime(value))
    n = len(value.split("-"))  # date-only value: compare at its precision
    _to_datetime(value)  # validate
    return _DATE_OPS[op](_date_key(have, n), _date_key(value, n))


def _matcher(rtype: str, name: str):
    """The predicate (resource, one OR-item) for a search parameter, or None if unsupported."""
    if name in ("patient", "subject"):
        return _match_patient
    if name == "_id":
        return lambda r, v: r.get("id") == v
    if name == "code":
        field = "medicationCodeableConcept" if rtype in _MED_TYPES else "code"
        return lambda r, v: _match_token(_codings(r, field), v)
    if name == "clinical-status" and rtype == "Condition":
        return lambda r, v: _match_token(_codings(r, "clinicalStatus"), v)
    if name == "status" and rtype != "Condition":
        return lambda r, v: r.get("status") == v
    if name == "category":
        def category(r, v):
            cats = r.get("category") or []
            cats = cats if isinstance(cats, list) else [cats]
            return _match_token([c for cc in cats for c in cc.get("coding", [])], v)
        return category
    if name == "date":
        return _match_date
    return None


class FhirStub:
    """In-process FHIR R4 server on 127.0.0.1 (free port) with fault injection."""

    def __init__(self, resources=(), *, page_size=None, required_token=None, next_link_base=None):
        self.page_size = page_size
        self.required_token = required_token
        self.next_link_base = next_link_base
        self.requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._resources: dict[tuple[str, str], dict] = {}
        self._fault = (None, 0.0, 500, None)
        self._stopped = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._listening = False
        self.add(*resources)

    # -- lifecycle ---------------------------------------------------------
    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("FhirStub not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}/fhir"

    def start(self) -> "FhirStub":
        if self._server is not None:
            raise RuntimeError("FhirStub can only be started once")
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._server.block_on_close = False
        self._server.stub = self
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="FhirStub", daemon=True)
        self._listening = True
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()  # releases "hang" and "latency" handlers
        self._close_listener()

    def _close_listener(self) -> None:
        with self._lock:
            listening, self._listening = self._listening, False
        if listening:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=2)

    def __enter__(self) -> "FhirStub":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- data and faults ---------------------------------------------------
    def add(self, *resources: dict) -> None:
        with self._lock:
            for resource in resources:
                self._resources[(resource["resourceType"], resource["id"])] = copy.deepcopy(resource)

    def clear(self) -> None:
        with self._lock:
            self._resources.clear()

    def set_fault(self, kind=None, *, delay=0.0, status=500, match=None) -> None:
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {FAULT_KINDS}")
        self._fault = (kind, delay, status, match)
        if kind == "refuse":
            self._close_listener()

    def reset_log(self) -> None:
        with self._lock:
            self.requests.clear()

    # -- request handling --------------------------------------------------
    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        split = urlsplit(handler.path)
        record = RecordedRequest(handler.command, split.path, parse_qs(split.query, keep_blank_values=True),
                                 _Headers(handler.headers.items()), time.monotonic())
        with self._lock:
            self.requests.append(record)
        try:
            answer = self._respond(handler, record)
        finally:
            record.finished = time.monotonic()
        if answer is None:  # "hang": close without answering
            return
        status, body, extra = answer
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", FHIR_JSON)
            handler.send_header("Content-Length", str(len(data)))
            for name, value in extra.items():
                handler.send_header(name, value)
            handler.end_headers()
            handler.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (e.g. its timeout fired)

    def _trickle(self, handler, delay: float) -> None:
        try:
            handler.send_response(200)
            handler.send_header("Content-Type", FHIR_JSON)
            handler.send_header("Content-Length", "1000000")
            handler.end_headers()
            while not self._stopped.wait(delay):
                handler.wfile.write(b" ")
                handler.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up

    def _respond(self, handler, record: RecordedRequest):
        kind, delay, status, match = self._fault
        if kind and (match is None or match in handler.path or match in unquote(handler.path)):
            if kind == "latency":
                self._stopped.wait(delay)
            elif kind == "hang":
                self._stopped.wait()
                return None
            elif kind == "status":
                return status, _outcome("exception", f"injected fault: HTTP {status}"), {}
            elif kind == "garbage":
                return 200, b"<html>oops", {}
            elif kind == "not_fhir":
                return 200, {"hello": "world"}, {}
            elif kind == "trickle":  # headers at once, then one byte every `delay` seconds, forever
                self._trickle(handler, delay)
                return None
        if record.method != "GET":
            return 405, _outcome("not-supported", f"{record.method} not supported"), {}
        prefix = urlsplit(self.base_url).path + "/"
        if not record.path.startswith(prefix):
            return 404, _outcome("not-found", f"unknown path {record.path}"), {}
        parts = [p for p in record.path[len(prefix):].split("/") if p]
        if parts == ["metadata"]:
            return 200, self._capability(), {}
        if self.required_token and record.headers.get("Authorization") != f"Bearer {self.required_token}":
            return 401, _outcome("login", "missing or invalid bearer token"), {"WWW-Authenticate": "Bearer"}
        if len(parts) == 2:
            with self._lock:
                resource = self._resources.get((parts[0], parts[1]))
            if resource is None:
                return 404, _outcome("not-found", f"{parts[0]}/{parts[1]} not found"), {}
            return 200, resource, {}
        if len(parts) == 1:
            try:
                return 200, self._search(parts[0], record.query), {}
            except ValueError as exc:
                return 400, _outcome("invalid", f"bad search parameter: {exc}"), {}
        return 404, _outcome("not-found", f"unknown path {record.path}"), {}

    def _search(self, rtype: str, query: dict[str, list[str]]) -> dict:
        with self._lock:
            matches = [r for (t, _), r in self._resources.items() if t == rtype]
        for name, values in query.items():
            predicate = _matcher(rtype, name)
            for value in values if predicate else ():
                items = [value] if name == "date" else [v for v in value.split(",") if v]
                if items:
                    matches = [r for r in matches if any(predicate(r, item) for item in items)]
        for key in reversed([k for k in query.get("_sort", [""])[-1].split(",") if k]):
            descending, name = key.startswith("-"), key.lstrip("-")
            if name == "date":
                dated = [r for r in matches if _resource_date(r)]
                dated.sort(key=lambda r: _to_datetime(_resource_date(r)), reverse=descending)
                matches = dated + [r for r in matches if not _resource_date(r)]
            elif name == "_id":
                matches.sort(key=lambda r: r["id"], reverse=descending)
        count = int(query["_count"][-1]) if "_count" in query else self.page_size
        offset = int(query.get("_offset", ["0"])[-1])
        if offset < 0 or (count is not None and count < 0):
            raise ValueError("negative _count/_offset")
        end = len(matches) if count is None else offset + count
        links = [{"relation": "self", "url": self._url(self.base_url, rtype, query)}]
        if count and end < len(matches):
            following = {k: v for k, v in query.items() if k != "_offset"} | {"_offset": [str(end)]}
            links.append({"relation": "next", "url": self._url(self.next_link_base or self.base_url, rtype, following)})
        return {
            "resourceType": "Bundle", "id": str(uuid.uuid4()), "type": "searchset",
            "total": len(matches), "link": links,
            "entry": [{"fullUrl": f"{self.base_url}/{rtype}/{r['id']}", "resource": r,
                       "search": {"mode": "match"}} for r in matches[offset:end]],
        }

    @staticmethod
    def _url(base: str, rtype: str, query: dict) -> str:
        return f"{base.rstrip('/')}/{rtype}" + (f"?{urlencode(query, doseq=True)}" if query else "")

    def _capability(self) -> dict:
        with self._lock:
            types = sorted({t for t, _ in self._resources} | {"Patient", "Observation", "Condition",
                                                               "MedicationRequest", "MedicationStatement"})
        return {
            "resourceType": "CapabilityStatement", "status": "active", "date": "2024-01-01",
            "kind": "instance", "fhirVersion": "4.0.1", "format": ["json"],
            "rest": [{"mode": "server", "resource": [
                {"type": t, "interaction": [{"code": "read"}, {"code": "search-type"}]} for t in types]}],
        }

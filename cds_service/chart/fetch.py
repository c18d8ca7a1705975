"""The HTTP side of the FHIR server fallback: one query, read or search with paging.

Each HTTP call has a connect/read timeout, never longer than what is left of the caller's
deadline, and its answer is checked to be FHIR JSON of the kind expected (a Bundle for a
search, the resource type for a read). Every failure is a ``FhirUnavailable`` whose reason is
short enough for a card and a log line: no URL, no query, no token, no PHI.

The bearer token only ever goes to ``fhirServer``'s origin (scheme, host, port): a ``next``
link to another origin is not followed (the result is marked incomplete), and redirects are
not followed at all. Cookies are never kept, so nothing leaks from one request to the next.
"""

import dataclasses
import http.cookiejar
import json
import socket
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urljoin
from urllib.parse import urlsplit

import requests
import urllib3.exceptions

TIMED_OUT = "FHIR server timed out"
MAX_BODY_BYTES = 20_000_000         # one page of a patient's search; more is not a chart, it is a fault
CHUNK_BYTES = 65_536
NOT_FHIR_JSON = "FHIR server sent a body that is not FHIR JSON"
_DEFAULT_PORTS = {"http": 80, "https": 443}


class FhirUnavailable(Exception):
    """The query could not be answered; ``reason`` is safe to show and to log."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclasses.dataclass(frozen=True)
class Fetched:
    resources: list[Mapping[str, Any]]
    incomplete: str | None = None       # why pages that exist were not read (else None)


def origin(url: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an http(s) URL, or None for anything else."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    return parts.scheme, parts.hostname.lower(), port or _DEFAULT_PORTS[parts.scheme]


def new_session(pool_size: int) -> requests.Session:
    """A pooled session, safe to share between threads for plain GETs, that keeps no cookies."""
    session = requests.Session()
    session.cookies.set_policy(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
    adapter = requests.adapters.HTTPAdapter(pool_connections=pool_size, pool_maxsize=pool_size, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def fetch(session: requests.Session, server: str, url: str, *, token: str | None, expect: str,
          timeout: float, deadline: float, max_pages: int) -> Fetched:
    """Run one FHIR query at ``url`` (on ``server``) and return its resources.

    ``expect`` is "Bundle" for a search, whose ``next`` pages are followed up to ``max_pages``
    in all, or the resource type of a read. ``deadline`` is a ``time.monotonic()`` instant.
    """
    resources: list[Mapping[str, Any]] = []
    for _ in range(max_pages):
        if origin(url) != origin(server):
            return Fetched(resources, "FHIR server's next page is on another server, so it was not read")
        body = _get_json(session, url, token, timeout, deadline)
        if expect != "Bundle":
            if body["resourceType"] != expect:
                raise FhirUnavailable(f"FHIR server sent a {_type_name(body)} where a {expect} was expected")
            return Fetched([body])
        resources.extend(_bundle_entries(body))
        url = next_link(body, url)
        if url is None:
            return Fetched(resources)
    return Fetched(resources, "FHIR server had more pages than the service reads; the rest were not read")


def next_link(bundle: Any, base: str) -> str | None:
    """The absolute ``next`` link of a Bundle, or None."""
    links = bundle.get("link") if isinstance(bundle, Mapping) else None
    for link in links if isinstance(links, list) else []:
        if isinstance(link, Mapping) and link.get("relation") == "next" and isinstance(link.get("url"), str):
            return urljoin(base, link["url"])
    return None



def _get_json(session: requests.Session, url: str, token: str | None, timeout: float, deadline: float) -> dict:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise FhirUnavailable(TIMED_OUT)
    headers = {"Accept": "application/fhir+json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    seconds = min(timeout, remaining)
    try:
        with session.get(url, headers=headers, timeout=(seconds, seconds), allow_redirects=False,
                         stream=True) as response:
            if response.status_code != 200:
                raise FhirUnavailable(f"FHIR server answered {response.status_code}")
            content = _read_body(response, deadline)
    except requests.Timeout:
        raise FhirUnavailable(TIMED_OUT) from None
    except requests.RequestException as error:
        raise FhirUnavailable(_connection_reason(error)) from None
    try:
        body = json.loads(content)
    except ValueError:  # includes UnicodeDecodeError
        raise FhirUnavailable(NOT_FHIR_JSON) from None
    if not isinstance(body, dict) or not isinstance(body.get("resourceType"), str):
        raise FhirUnavailable(NOT_FHIR_JSON)
    return body


def _read_body(response: requests.Response, deadline: float) -> bytes:
    """The body, read in chunks: a server that trickles bytes is cut off at the deadline, a huge one at the cap.

    (The read timeout alone bounds each socket read, not the whole body.)
    """
    chunks, size = [], 0
    while chunk := response.raw.read1(CHUNK_BYTES, decode_content=True):  # at most one socket read each
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise FhirUnavailable("FHIR server sent more data than the service reads")
        if time.monotonic() > deadline:
            raise FhirUnavailable(TIMED_OUT)
        chunks.append(chunk)
    return b"".join(chunks)


def _bundle_entries(body: dict) -> list[Mapping[str, Any]]:
    """The resources of a search Bundle; OperationOutcome entries are errors or dropped notes."""
    if body["resourceType"] == "OperationOutcome":
        raise FhirUnavailable("FHIR server sent an error (OperationOutcome) instead of results")
    if body["resourceType"] != "Bundle":
        raise FhirUnavailable(f"FHIR server sent a {_type_name(body)} where a Bundle was expected")
    entries = body.get("entry", [])
    if not isinstance(entries, list) or not all(
            isinstance(e, Mapping) and isinstance(e.get("resource"), Mapping)
            and isinstance(e["resource"].get("resourceType"), str) for e in entries):
        raise FhirUnavailable("FHIR server sent a malformed Bundle")
    resources = [e["resource"] for e in entries]
    outcomes = [r for r in resources if r["resourceType"] == "OperationOutcome"]
    if any(isinstance(issue, Mapping) and issue.get("severity") in ("error", "fatal")
           for outcome in outcomes for issue in outcome.get("issue") or []):
        raise FhirUnavailable("FHIR server sent an error (OperationOutcome) instead of results")
    return [r for r in resources if r["resourceType"] != "OperationOutcome"]


def _type_name(body: dict) -> str:
    name = body["resourceType"]
    return name if name.isalnum() and len(name) <= 40 else "resource of another type"


def _connection_reason(error: BaseException) -> str:
    causes = _causes(error)
    if any(isinstance(c, ConnectionRefusedError) for c in causes):
        return "FHIR server refused the connection"
    if any(isinstance(c, (socket.timeout, urllib3.exceptions.TimeoutError)) for c in causes):
        return TIMED_OUT
    if any(isinstance(c, socket.gaierror) for c in causes):
        return "FHIR server's host name could not be resolved"
    if any(isinstance(c, urllib3.exceptions.SSLError) for c in causes):
        return "TLS with the FHIR server failed"
    return "the connection to the FHIR server failed"


def _causes(error: BaseException) -> list[BaseException]:
    """The error, its causes and contexts, and what urllib3 wraps (``reason``, ``args``)."""
    seen, todo = [], [error]
    while todo and len(seen) < 20:
        item = todo.pop()
        if not isinstance(item, BaseException) or any(item is s for s in seen):
            continue
        seen.append(item)
        todo += [item.__cause__, item.__context__, getattr(item, "reason", None), *item.args]
    return seen

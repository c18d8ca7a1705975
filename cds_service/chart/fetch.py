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
import json
import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import urljoin
from urllib.parse import urlsplit

import requests

from cds_service.chart.readable import search_resources
from cds_service.fhir import bounded_get
from cds_service.fhir.bounded_get import Budget
from cds_service.request.envelope import bounded_int
from cds_service.request.envelope import finite_float

log = logging.getLogger(__name__)

TIMED_OUT = "FHIR server timed out"
REFUSED = "FHIR server refused the query or could not be reached"
UNREADABLE = "FHIR server sent data the service could not read"
TOO_LARGE = "FHIR server sent more data than the service reads"
REASONS = {bounded_get.TIMED_OUT: TIMED_OUT, bounded_get.REFUSED: REFUSED, bounded_get.UNREADABLE: UNREADABLE,
           bounded_get.TOO_LARGE: TOO_LARGE}
MAX_BODY_BYTES = 4_000_000          # one page of one query, decoded; a patient's chart page is far smaller
NOT_FHIR_JSON = UNREADABLE
MAX_JSON_DEPTH = 64                 # FHIR resources nest a dozen levels; far deeper is not a chart
_DEFAULT_PORTS = {"http": 80, "https": 443}


class FhirUnavailable(Exception):
    """The query could not be answered; ``reason`` is safe to show (no URL, no token, no network detail),
    ``detail`` is for the log only."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(reason)
        self.reason = reason
        self.detail = detail or reason


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



def fetch(session: requests.Session, server: str, url: str, *, token: str | None, expect: str,
          timeout: float, deadline: float, max_pages: int, entry_type: str | None = None,
          budget: Budget | None = None, max_bytes: int = MAX_BODY_BYTES, counted: int = 0) -> Fetched:
    """Run one FHIR query at ``url`` (on ``server``) and return its resources.

    ``expect`` is "Bundle" for a search, whose ``next`` pages are followed up to ``max_pages``
    in all, or the resource type of a read. ``entry_type`` is the resource type a search
    promises (its entries must be of that type). ``deadline`` is a ``time.monotonic()`` instant;
    ``budget`` and ``max_bytes`` bound the bytes of body read (per request and process, per page);
    ``counted`` matches were already read (a prefetched first page), for the ``total`` check.
    """
    resources: list[Mapping[str, Any]] = []
    matches = counted
    for _ in range(max_pages):
        if origin(url) != origin(server):
            return Fetched(resources, "FHIR server's next page is on another server, so it was not read")
        body = _get_json(session, url, token, timeout, deadline, budget, max_bytes)
        if expect != "Bundle":
            if body["resourceType"] != expect:
                raise FhirUnavailable(UNREADABLE, f"a {_type_name(body)} where a {expect} was expected")
            return Fetched([body])
        if body["resourceType"] == "OperationOutcome":
            raise FhirUnavailable(REFUSED, "an OperationOutcome instead of results")
        page, why, page_matches = search_resources(body, entry_type)
        if why is not None:
            raise FhirUnavailable(UNREADABLE, why)
        resources.extend(page)
        matches += page_matches
        url = next_link(body, url)
        if url is None:
            total = body.get("total")
            if isinstance(total, int) and not isinstance(total, bool) and total != matches:
                return Fetched(resources, f"{UNREADABLE} (it said {total} results but sent {matches})")
            return Fetched(resources)
    return Fetched(resources, "FHIR server had more pages than the service reads; the rest were not read")


def next_link(bundle: Any, base: str) -> str | None:
    """The absolute ``next`` link of a Bundle, or None."""
    links = bundle.get("link") if isinstance(bundle, Mapping) else None
    for link in links if isinstance(links, list) else []:
        if isinstance(link, Mapping) and link.get("relation") == "next" and isinstance(link.get("url"), str):
            return urljoin(base, link["url"])
    return None



def _get_json(session: requests.Session, url: str, token: str | None, timeout: float, deadline: float,
              budget: Budget | None, max_bytes: int) -> dict:
    headers = {"Accept": "application/fhir+json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        content = bounded_get.get_body(session, url, headers=headers, timeout=timeout, deadline=deadline,
                                       max_bytes=max_bytes, budget=budget)
    except bounded_get.Refused as refused:
        raise FhirUnavailable(REASONS[refused.kind], refused.detail) from None
    try:
        body = json.loads(content, parse_constant=_no_constant, parse_float=finite_float, parse_int=bounded_int)
    except RecursionError:
        raise FhirUnavailable(UNREADABLE, "JSON nested too deeply") from None
    except ValueError:  # includes UnicodeDecodeError and NaN/Infinity
        raise FhirUnavailable(UNREADABLE, "not JSON") from None
    finally:
        del content
    if not isinstance(body, dict) or not isinstance(body.get("resourceType"), str):
        raise FhirUnavailable(UNREADABLE, "JSON that is not a FHIR resource")
    if _depth_over(body, MAX_JSON_DEPTH):
        raise FhirUnavailable(UNREADABLE, "JSON nested too deeply")
    return body


def _no_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def _depth_over(value: Any, limit: int) -> bool:
    """True when ``value`` nests objects/arrays deeper than ``limit`` (iterative: no recursion)."""
    todo = [(value, 1)]
    while todo:
        item, depth = todo.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        todo.extend((c, depth + 1) for c in children if isinstance(c, (dict, list)))
    return False


def _type_name(body: dict) -> str:
    name = body["resourceType"]
    return name if name.isalnum() and len(name) <= 40 else "resource of another type"

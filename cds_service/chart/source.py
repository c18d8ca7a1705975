"""The patient's chart for one request, gathered per prefetch key.

For each key the service declares: a resource or Bundle is used as sent (its ``next`` pages,
if any, are read from ``fhirServer``); ``null`` means known empty and is not re-queried; a key
that is absent or holds an OperationOutcome is fetched from ``fhirServer`` when the request has
one (see ``fhir_fetch``), and otherwise reported as unavailable. Medications referenced by the
chart's MedicationRequests/Statements and by the draft orders are read as ``Medication/{id}``.

All queries of one request run in parallel on the ``ChartSource``'s thread pool and pooled
session, and the gathering returns by one deadline: queries still running then are abandoned
(they end in the background within their own timeout) and reported as timed out. What could
not be had is listed in ``Chart.unavailable`` so that a card can say which checks did not run.

Robustness (issue 13): what cannot be read as what its key promises is unavailable, never empty
(``readable``); one ``RequestScope`` per request holds the request's single deadline, its byte
budget (drawn from a per-process budget) and the FHIR servers its client may name; queries run
in one small thread pool *per FHIR origin* (a bulkhead), so a hanging server holds only its own
lane, and a request with complete prefetch never waits for a fetch thread.
"""

import concurrent.futures
import contextvars
import dataclasses
import functools
import hashlib
import ipaddress
import logging
import re
import threading
import time
from collections.abc import Iterable
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote
from urllib.parse import urlsplit

from cds_service.chart import fetch as fhir_fetch
from cds_service.chart.fetch import Fetched
from cds_service.chart.fetch import FhirUnavailable
from cds_service.chart.readable import is_error_outcome
from cds_service.chart.readable import read_value
from cds_service.chart.readable import search_resources
from cds_service.chart.readable import total_contradicts
from cds_service.fhir import bounded_get
from cds_service.fhir.bounded_get import Budget
from cds_service.fhir.bounded_get import new_session
from cds_service.fhir.read import child
from cds_service.fhir.read import items
from cds_service.fhir.read import text
from cds_service.metrics import metrics
from cds_service.orders.products import medication_index

log = logging.getLogger(__name__)

POOL_SIZE = 32                      # pooled connections per FHIR origin at most (the lanes are smaller)
MAX_LANES = 32                      # FHIR origins with their own thread pool at once (least recently used go)
LANE_QUEUE_FACTOR = 32              # queries running or waiting for one origin, per lane thread, before "busy"
NOT_ALLOWED = "fhirServer is not allowed for this client, so it was not contacted"
_TOKEN = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
_CONTEXT_TOKENS = {"context.patientId": "patient_id", "context.userId": "user_id",
                   "context.encounterId": "encounter_id"}
_MEDICATION = re.compile(r"(?:^|/)Medication/([A-Za-z0-9\-.]{1,64})(?:/_history/[^/]+)?$")


@dataclasses.dataclass(frozen=True)
class Unavailable:
    """Chart data the service could not obtain, and why (no PHI: key and reason only).

    ``reason`` may be shown on a card; ``detail`` (what happened on the network) is for the log only.
    """

    key: str
    reason: str
    detail: str = dataclasses.field(default="", compare=False, repr=False)


@dataclasses.dataclass(frozen=True)
class ServerAllowList:
    """The FHIR server origins a request may name: ``origins`` (None = any), plus loopback if ``loopback``."""

    origins: frozenset[tuple[str, str, int]] | None
    loopback: bool = False

    @classmethod
    def of(cls, urls, loopback: bool = False) -> "ServerAllowList":
        """From URLs or origins as text (``https://ehr.example.org``); ``None`` = any server."""
        if urls is None:
            return cls(None, loopback)
        return cls(frozenset(o for o in (fhir_fetch.origin(u) for u in urls) if o is not None), loopback)

    def allows(self, url: str) -> bool:
        origin = fhir_fetch.origin(url)
        if origin is None:
            return False
        if self.origins is None or origin in self.origins:
            return True
        return self.loopback and _is_loopback(origin[1])


ANY_SERVER = ServerAllowList(None)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class RequestScope:
    """One request's limits, shared by every gathering in it: one deadline, one byte budget, one allow-list.

    Use as a context manager (or call ``close``): closing gives the request's bytes back to the process.
    """

    def __init__(self, deadline: float, budget: Budget, servers: ServerAllowList):
        self.deadline, self.budget, self.servers = deadline, budget, servers

    def close(self) -> None:
        self.budget.close()

    def __enter__(self) -> "RequestScope":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@dataclasses.dataclass(frozen=True)
class Chart:
    patient: Mapping[str, Any] | None
    resources: tuple[Mapping[str, Any], ...]          # every resource of every key, Patient excluded
    unavailable: tuple[Unavailable, ...] = ()
    medications: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)  # by reference

    def of_type(self, resource_type: str) -> list[Mapping[str, Any]]:
        return list(self._by_type.get(resource_type, ()))

    @functools.cached_property
    def _by_type(self) -> dict[str, list[Mapping[str, Any]]]:
        """The resources grouped by type once, in chart order (the snapshot asks for five types)."""
        grouped: dict[str, list[Mapping[str, Any]]] = {}
        for resource in self.resources:
            kind = resource.get("resourceType")
            if type(kind) is str:
                grouped.setdefault(kind, []).append(resource)
        return grouped


def resource_type_of(template: str) -> str:
    """The resource type a template promises: ``Observation?...`` -> Observation, ``Patient/{{...}}`` -> Patient."""
    return template.split("?", 1)[0].strip("/").split("/")[0]


def is_operation_outcome(value: Any) -> bool:
    """An OperationOutcome, alone or as the only kind of entry in a Bundle (one of them an error)."""
    if text(value, "resourceType") == "OperationOutcome":
        return True
    if text(value, "resourceType") != "Bundle":
        return False
    entries = items(value, "entry")  # the first entry that is not an OperationOutcome ends the reading
    return bool(entries) and all(
        text(child(entry, "resource"), "resourceType") == "OperationOutcome" for entry in entries) and any(
        is_error_outcome(child(entry, "resource")) for entry in entries)  # information only: a readable "none"


def bundle_resources(value: Any) -> list[Mapping[str, Any]]:
    """The resources of a Bundle (OperationOutcome entries dropped), or the resource itself."""
    if text(value, "resourceType") != "Bundle":
        return [value] if text(value, "resourceType") else []
    resources = [child(entry, "resource") for entry in items(value, "entry")]
    return [resource for resource in resources if text(resource, "resourceType") not in (None, "OperationOutcome")]


def read_prefetch(prefetch: Mapping[str, Any], key: str, template: str | None) -> tuple[str, list, str | None]:
    """("usable", resources, None), ("absent" | "error", [], None) or ("unreadable", [], why) for one key.

    ``template`` tells the resource type the key promises (None: any type, as before issue 13).
    """
    if key not in prefetch:
        return "absent", [], None
    value = prefetch[key]
    if value is None:
        return "usable", [], None
    if is_operation_outcome(value):
        return "error", [], None
    if template is None:
        if not text(value, "resourceType"):
            return "unreadable", [], "the prefetched value is not a FHIR resource"
        return "usable", bundle_resources(value), None
    expected = resource_type_of(template)
    if text(value, "resourceType") == "Bundle" and "?" in template:
        resources, why, matches = search_resources(value, expected)
        has_next = fhir_fetch.next_link(value, "http://x/") is not None
        why = why or total_contradicts(value, matches, has_next)
    else:
        resources, why = read_value(value, expected)
    return ("unreadable", [], why) if why else ("usable", resources, None)


def usable_prefetch(prefetch: Mapping[str, Any], key: str, template: str | None = None
                    ) -> tuple[bool, list[Mapping[str, Any]]]:
    """(True, resources) when the key's prefetch can be used as sent, else (False, [])."""
    state, resources, _ = read_prefetch(prefetch, key, template)
    return state == "usable", resources


def assemble_chart(resources_by_key: Mapping[str, list[Mapping[str, Any]]], unavailable: list[Unavailable],
                   medications: Mapping[str, Mapping[str, Any]] | None = None) -> Chart:
    """One Chart from the resources of each key; the Patient comes from the ``patient`` key."""
    patients = [r for r in resources_by_key.get("patient", []) if r.get("resourceType") == "Patient"]
    resources = tuple(r for key, items in resources_by_key.items() if key != "patient" for r in items)
    known = {f"Medication/{r['id']}": r for r in resources
             if r.get("resourceType") == "Medication" and isinstance(r.get("id"), str)}
    known.update(medications or {})
    return Chart(patient=patients[0] if patients else None, resources=resources,
                 unavailable=tuple(unavailable), medications=known)


def _missing(prefetch: Mapping[str, Any], key: str, why: str | None = None) -> str:
    if why:
        return f"the prefetched data could not be read ({why})"
    return "the EHR sent an error for it" if key in prefetch else "it was not prefetched"


class ChartSource:
    """Gathers the chart of a request; built once per app and shared by its threads.

    Owns a pooled ``requests.Session``, one small thread pool per FHIR origin (its lane: at most
    ``settings.fhir_max_concurrent_per_server`` queries at once), the per-process byte budget of
    FHIR bodies, and the optional cache of fetched results (``settings.chart_cache_seconds``).
    """

    def __init__(self, settings, session=None):
        self.settings = settings
        self.session = session if session is not None else new_session(POOL_SIZE)
        self.lanes = _Lanes(settings.fhir_max_concurrent_per_server)
        bounded_get.return_large_buffers_to_the_os()
        self.process_budget = Budget(settings.fhir_process_budget_bytes)
        self.cache = _Cache(settings.chart_cache_seconds)
        self.default_servers = allowed_servers_setting(settings.fhir_allowed_servers)

    def scope(self, servers: ServerAllowList | None = None) -> RequestScope:
        """The limits of one request, starting now: call once per request and share it."""
        return RequestScope(time.monotonic() + self.settings.fhir_deadline_seconds,
                            Budget(self.settings.fhir_request_budget_bytes, self.process_budget),
                            servers if servers is not None else self.default_servers)

    def gather(self, envelope, templates: Mapping[str, str], medication_references: Iterable[str] = (),
               scope: RequestScope | None = None) -> Chart:
        """The chart for ``envelope``, by the scope's deadline at the latest (a new scope if none is given)."""
        if scope is not None:
            return _Gathering(self, envelope, templates, scope).run(medication_references)
        with self.scope() as own:
            return _Gathering(self, envelope, templates, own).run(medication_references)

    def close(self) -> None:
        self.lanes.close()
        self.session.close()


def allowed_servers_setting(value: str) -> ServerAllowList:
    """``CDS_FHIR_ALLOWED_SERVERS``: empty = loopback only, ``*`` = any, else comma-separated origins (+ loopback)."""
    value = (value or "").strip()
    if value == "*":
        return ANY_SERVER
    return ServerAllowList.of([v.strip() for v in value.split(",") if v.strip()], loopback=True)


class _Lanes:
    """One thread pool per FHIR origin, made on first use; the least recently used are retired."""

    def __init__(self, threads: int):
        self.threads = threads
        self.queue = threads * LANE_QUEUE_FACTOR     # cancelled (abandoned) queries leave the count at once
        self.pools: dict[tuple, tuple[concurrent.futures.ThreadPoolExecutor, list]] = {}
        self.lock = threading.Lock()

    def submit(self, origin: tuple, fn, *args, **kwargs) -> concurrent.futures.Future | None:
        """The future of ``fn`` in the origin's lane, or None when too many queries already wait for it."""
        with self.lock:
            pool, waiting = self.pools.pop(origin, (None, None))
            if pool is None:
                pool, waiting = concurrent.futures.ThreadPoolExecutor(
                    self.threads, thread_name_prefix="fhir-lane"), [0]
            self.pools[origin] = (pool, waiting)            # most recently used last
            while len(self.pools) > MAX_LANES:
                old = next(iter(self.pools))
                self.pools.pop(old)[0].shutdown(wait=False, cancel_futures=True)
            if waiting[0] >= self.queue:
                return None
            waiting[0] += 1
        future = pool.submit(fn, *args, **kwargs)
        future.add_done_callback(lambda _: self._done(waiting))
        return future

    def _done(self, waiting: list) -> None:
        with self.lock:
            waiting[0] -= 1

    def in_flight(self, origin: tuple) -> int:
        with self.lock:
            return self.pools.get(origin, (None, [0]))[1][0]

    def close(self) -> None:
        with self.lock:
            for pool, _ in self.pools.values():
                pool.shutdown(wait=False, cancel_futures=True)
            self.pools.clear()


@dataclasses.dataclass(frozen=True)
class _Task:
    key: str                        # prefetch key, or "Medication/<id>"
    kind: str                       # "search" (the key's template), "more" (pages after a prefetch), "medication"
    absolute: str | None = None     # a Medication reference's absolute URL on fhirServer, if it was one
    entry_type: str | None = None   # the resource type the search promises
    prefetched_matches: int = 0     # "more": matches in the prefetched first page (for the total check)


class _Gathering:
    """One request's gathering: what was found, what could not be had, what is in flight."""

    def __init__(self, source: ChartSource, envelope, templates: Mapping[str, str], scope: RequestScope):
        self.source, self.envelope, self.templates, self.scope = source, envelope, templates, scope
        self.settings = source.settings
        self.deadline = scope.deadline
        self.server, self.no_server = _server(envelope.fhir_server, scope.servers)
        self.found: dict[str, list[Mapping[str, Any]]] = {}
        self.unavailable: list[Unavailable] = []
        self.medications: dict[str, Mapping[str, Any]] = {}
        self.asked: set[str] = set()
        self.pending: dict[concurrent.futures.Future, tuple[_Task, tuple]] = {}
        # Cached data is only ever reused under the same access token (hashed: never kept in clear).
        self.token_key = hashlib.sha256((envelope.access_token or "").encode()).hexdigest()
        self.queries = 0

    def run(self, medication_references: Iterable[str]) -> Chart:
        started = time.monotonic()
        for key, template in self.templates.items():
            self._key(key, template)
        charted = [r for items in self.found.values() for r in items]
        self._read_medications([*medication_references, *_medication_references(charted)])
        self._wait()
        order = {key: index for index, key in enumerate(self.templates)}
        unavailable = sorted(self.unavailable, key=lambda u: (order.get(u.key, len(order)), u.key))
        if self.queries or unavailable:
            log.info("chart gathered", extra={"fields": {
                "hookInstance": self.envelope.hook_instance, "fhirQueries": self.queries,
                "ms": round((time.monotonic() - started) * 1000, 1),
                "unavailable": {u.key: u.reason for u in unavailable},
                "details": {u.key: u.detail for u in unavailable if u.detail and u.detail != u.reason},
                "bodyBytes": self.scope.budget.peak}})
        found = {key: self.found[key] for key in self.templates if key in self.found}
        return assemble_chart(found, unavailable, self.medications)

    def _key(self, key: str, template: str) -> None:
        prefetch = self.envelope.prefetch
        state, resources, why = read_prefetch(prefetch, key, template)
        entry_type = resource_type_of(template) if "?" in template else None
        if state == "usable":
            self.found[key] = list(resources)
            self.medications.update(medication_index(items(prefetch[key], "entry")))  # by fullUrl too
            more = fhir_fetch.next_link(prefetch[key], (self.server or "") + "/")
            if more and self.server and self.settings.fhir_max_pages > 1:
                counted = search_resources(prefetch[key], entry_type)[2] if entry_type else 0
                self._start(_Task(key, "more", entry_type=entry_type, prefetched_matches=counted), more, "Bundle",
                            self.settings.fhir_max_pages - 1)
            elif more:
                self.unavailable.append(Unavailable(key, "only the first page was prefetched; the rest was not read"))
        elif self.server is None:
            self.unavailable.append(Unavailable(key, f"{_missing(prefetch, key, why)}, and {self.no_server}"))
        else:
            try:
                query = _render(template, self.envelope)
            except LookupError as error:
                self.unavailable.append(Unavailable(key, str(error.args[0])))
                return
            self._start(_Task(key, "search", entry_type=entry_type), f"{self.server}/{query}",
                        _expected_type(template), self.settings.fhir_max_pages)

    def _read_medications(self, references: Iterable[str]) -> None:
        known = {f"Medication/{r.get('id')}" for items in self.found.values() for r in items
                 if r.get("resourceType") == "Medication"}
        for reference in references:
            target = _medication_target(reference)
            if target is None or target[0] in self.asked or target[0] in known:
                continue
            key, absolute = target
            self.asked.add(key)
            if self.server is None:
                self.unavailable.append(Unavailable(key, self.no_server))
            elif absolute and absolute != f"{self.server}/{key}":
                self.unavailable.append(Unavailable(key, "it is on another server than fhirServer, so it was not read"))
            else:
                self._start(_Task(key, "medication", absolute), f"{self.server}/{key}", "Medication", 1)

    def _start(self, task: _Task, url: str, expect: str, max_pages: int) -> None:
        cache_key = (self.token_key, self.server, self.envelope.patient_id, url)
        cached = self.source.cache.get(cache_key)
        if cached is not None:
            metrics().fhir_queries.labels("cached").inc()
            self._record(task, cached)
        elif time.monotonic() >= self.deadline:
            metrics().fhir_queries.labels("timed-out").inc()
            self._record(task, FhirUnavailable(fhir_fetch.TIMED_OUT))
        else:
            self.queries += 1
            future = self.source.lanes.submit(
                fhir_fetch.origin(self.server), contextvars.copy_context().run, _fetch, self.source.session, self.server, url,
                token=self.envelope.access_token, expect=expect, timeout=self.settings.fhir_timeout_seconds,
                deadline=self.deadline, max_pages=max_pages, entry_type=task.entry_type, budget=self.scope.budget,
                max_bytes=self.settings.fhir_max_body_bytes, counted=task.prefetched_matches)
            if future is None:
                self._record(task, FhirUnavailable(fhir_fetch.TIMED_OUT, "too many queries waiting for this server"))
            else:
                self.pending[future] = (task, cache_key)

    def _wait(self) -> None:
        """Collect results as they come until none is pending or the deadline has passed."""
        while self.pending and (remaining := self.deadline - time.monotonic()) > 0:
            done, _ = concurrent.futures.wait(self.pending, remaining, concurrent.futures.FIRST_COMPLETED)
            for future in done:
                task, cache_key = self.pending.pop(future)
                if future.cancelled():  # its origin's lane was retired (more than MAX_LANES origins at once)
                    self._record(task, FhirUnavailable(fhir_fetch.TIMED_OUT, "query cancelled"))
                    continue
                outcome = future.result()
                if isinstance(outcome, Fetched):
                    self.source.cache.put(cache_key, outcome)
                metrics().fhir_queries.labels("ok" if isinstance(outcome, Fetched) else "unavailable").inc()
                self._record(task, outcome)
        for future, (task, _) in list(self.pending.items()):
            future.cancel()  # not started yet: never runs; running: ends within its own timeout
            metrics().fhir_queries.labels("timed-out").inc()
            self._record(task, FhirUnavailable(fhir_fetch.TIMED_OUT, "deadline passed"))
        self.pending.clear()

    def _record(self, task: _Task, outcome: Fetched | FhirUnavailable) -> None:
        if isinstance(outcome, FhirUnavailable):
            prefix = "only the first page was prefetched; the rest: " if task.kind == "more" else ""
            self.unavailable.append(Unavailable(task.key, prefix + outcome.reason, getattr(outcome, "detail", "")))
        elif task.kind == "medication":
            self.medications[task.key] = outcome.resources[0]
            if task.absolute:
                self.medications[task.absolute] = outcome.resources[0]
        else:
            self.found.setdefault(task.key, []).extend(outcome.resources)
            if outcome.incomplete:
                self.unavailable.append(Unavailable(task.key, outcome.incomplete))
            self._read_medications(_medication_references(outcome.resources))


def _fetch(*args, **kwargs) -> Fetched | FhirUnavailable:
    """``fhir_fetch.fetch`` in a worker thread: failures are returned, never raised."""
    try:
        return fhir_fetch.fetch(*args, **kwargs)
    except FhirUnavailable as error:
        return error
    except Exception as error:  # a bug must not lose the other keys; log no message (it may hold a URL)
        log.error("FHIR query failed unexpectedly", extra={"fields": {"error": type(error).__name__}})
        return FhirUnavailable(fhir_fetch.UNREADABLE, type(error).__name__)


def _server(fhir_server: str | None, servers: ServerAllowList = ANY_SERVER) -> tuple[str | None, str]:
    """fhirServer without a trailing slash, or None and why it cannot be used."""
    if not fhir_server:
        return None, "no FHIR server was given"
    if fhir_fetch.origin(fhir_server) is None:
        return None, "fhirServer is not an http(s) URL"
    parts = urlsplit(fhir_server)
    if parts.username or parts.password or parts.query or parts.fragment or "?" in fhir_server or "#" in fhir_server:
        return None, "fhirServer is not a plain base URL (it has credentials, a query or a fragment)"
    if not servers.allows(fhir_server):
        return None, NOT_ALLOWED
    return fhir_server.rstrip("/"), ""


def _render(template: str, envelope) -> str:
    """The template with its context tokens filled in (URL-quoted); LookupError if one is missing."""
    def value(match: re.Match) -> str:
        text = getattr(envelope, _CONTEXT_TOKENS.get(match.group(1), ""), None)
        if not text:
            raise LookupError(f"the request has no {match.group(1)} for its query")
        return quote(text, safe="/")
    return _TOKEN.sub(value, template)


def _expected_type(template: str) -> str:
    """"Bundle" for a search template, else the resource type the read returns."""
    path = template.split("?", 1)[0].strip("/").split("/")
    return "Bundle" if "?" in template or len(path) < 2 else path[0]


def _medication_references(resources: Iterable[Mapping[str, Any]]) -> list[str]:
    return [r["medicationReference"]["reference"] for r in resources
            if r.get("resourceType") in ("MedicationRequest", "MedicationStatement")
            and isinstance(r.get("medicationReference"), Mapping)
            and isinstance(r["medicationReference"].get("reference"), str)]


def _medication_target(reference: Any) -> tuple[str, str | None] | None:
    """("Medication/<id>", the absolute URL or None) for a reference to a non-contained Medication."""
    if not isinstance(reference, str) or reference.startswith("#"):
        return None
    match = _MEDICATION.search(reference)
    if match is None:
        return None
    key = f"Medication/{match.group(1)}"
    absolute = reference[:match.start()] + "/" + key if "://" in reference else None
    return key, absolute


class _Cache:
    """Fetched results by (SHA-256 of the access token, fhirServer, patientId, query URL), kept
    ``seconds`` (0 = off), at most ``MAX_ENTRIES`` of them.

    The token is part of the key: a request is never answered with data fetched under another
    client's (or user's) token; it reuses only what a request with the same token fetched.
    """

    MAX_ENTRIES = 10_000

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.entries: dict[tuple, tuple[float, Fetched]] = {}
        self.lock = threading.Lock()

    def get(self, key: tuple) -> Fetched | None:
        if not self.seconds:
            return None
        with self.lock:
            expires, value = self.entries.get(key, (0.0, None))
        return value if expires > time.monotonic() else None

    def put(self, key: tuple, value: Fetched) -> None:
        if not self.seconds:
            return
        now = time.monotonic()
        with self.lock:
            if len(self.entries) >= self.MAX_ENTRIES:
                self.entries = {k: v for k, v in self.entries.items() if v[0] > now}
                if len(self.entries) >= self.MAX_ENTRIES:
                    self.entries.clear()
            self.entries[key] = (now + self.seconds, value)

"""Milnacipran order check: a CDS Hooks 2.0 service for ``order-select`` and ``order-sign``.

``create_app`` is the one composition root: the server, the ``evaluate`` command and the tests
all build the pipeline here.
"""

import datetime
import logging
import time
from collections.abc import Callable
from collections.abc import Mapping
from typing import Any

import requests
from flask import Flask

from cds_service.audit import Audit
from cds_service.audit import AuditError
from cds_service.audit import Store
from cds_service.audit.store import masked_url
from cds_service.auth import ClientAuthenticator
from cds_service.auth import ReplayCache
from cds_service.auth import load_trusted_clients
from cds_service.auth.replay import InMemoryReplayCache
from cds_service.chart.source import ChartSource
from cds_service.http import views
from cds_service.http.components import Components
from cds_service.http.components import install
from cds_service.http.cors import add_cors
from cds_service.http.discovery import discovery_document
from cds_service.http.errors import register_error_handlers
from cds_service.http.observability import install_observability
from cds_service.http.openapi import api_doc
from cds_service.knowledge import default_knowledge
from cds_service.logs import configure_logging
from cds_service.pipeline import OrderCheck
from cds_service.pipeline import utc_now
from cds_service.policy import load_policy
from cds_service.rules.registry import CONTRAINDICATION_TOPICS
from cds_service.rules.registry import RULE_CATALOGUE
from cds_service.settings import Settings
from cds_service.settings import SettingsError
from cds_service.settings import load_settings

log = logging.getLogger(__name__)


def create_app(config: Mapping[str, Any] | None = None, *, environ: Mapping[str, str] | None = None,
               clock: Callable[[], datetime.datetime] = utc_now,
               auth_clock: Callable[[], float] = time.time,
               fetch_jwks: Callable[[str], dict] | None = None,
               replay_cache: ReplayCache | None = None,
               chart_session: requests.Session | None = None,
               store: Store | None = None) -> Flask:
    """Build the app: settings, knowledge and policy, the order check, authentication, endpoints.

    ``config`` overrides settings by field name (``{"require_jwt": False}``). The outside world can
    be injected, for tests and tools: ``clock`` (the time the rules see), ``auth_clock``,
    ``fetch_jwks`` and ``replay_cache`` (JWT verification), ``chart_session`` (FHIR queries) and
    ``store`` (the audit database; default: ``CDS_DATABASE_URL``, migrated here, before any fork).
    """
    settings = load_settings(environ, config)
    configure_logging(settings.log_level)
    knowledge = default_knowledge()
    policy = load_policy(settings.policy_file, knowledge, RULE_CATALOGUE, CONTRAINDICATION_TOPICS)

    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    audit = _audit(settings, policy, store)
    database = None
    if settings.require_jwt and replay_cache is None:
        replay_cache, database = _replay_cache(settings, auth_clock, audit.store if audit else None)
    install(app, Components(
        settings=settings,
        check=OrderCheck(policy, ChartSource(settings, chart_session), clock, settings.time_zone),
        discovery=discovery_document(knowledge),
        authenticator=_authenticator(settings, auth_clock, fetch_jwks, replay_cache),
        audit=audit,
        database=database or (audit.store if audit else None),  # what /readyz pings
    ))
    install_observability(app)
    app.register_blueprint(views.cds)
    app.register_blueprint(views.health)
    app.register_blueprint(api_doc)
    register_error_handlers(app)
    add_cors(app, settings)
    return app


def _audit(settings: Settings, policy, store: Store | None) -> Audit | None:
    """The audit on a migrated database. A database that cannot be reached or migrated stops the start."""
    if not settings.audit_enabled:
        log.warning("CDS_AUDIT_ENABLED=false: cards are not recorded and feedback is refused")
        return None
    url = settings.audit_database_url
    try:
        if store is None:
            store = Store.from_url(url)
            store.migrate()
            store.dispose()  # no pooled connection is inherited by forked workers
        else:
            store.migrate()
    except AuditError as error:
        raise SettingsError(f"CDS_DATABASE_URL {_masked(url)}: the audit database cannot be used ({error})") from None
    try:
        return Audit(store, knowledge_version=policy.knowledge.version, policy=policy.identity,
                     patient_key_secret=settings.audit_patient_key_secret,
                     filter_repeated_alerts=settings.filter_repeated_alerts)
    except ValueError as error:
        raise SettingsError(f"CDS_FILTER_REPEATED_ALERTS: {error}") from None


def _masked(url: str) -> str:
    try:
        return masked_url(url)
    except Exception:  # noqa: BLE001 - an unparsable URL is named by its variable only
        return "(not a database URL)"


def _authenticator(settings: Settings, clock, fetch_jwks, replay_cache) -> ClientAuthenticator | None:
    if not settings.require_jwt:
        log.warning("CDS_REQUIRE_JWT=false: JWT authentication is OFF. Never run like this in production.")
        return None
    if not settings.trusted_clients_file:
        raise SettingsError("CDS_REQUIRE_JWT is true but CDS_TRUSTED_CLIENTS_FILE is not set: "
                            "no EHR could be trusted. Set the file, or CDS_REQUIRE_JWT=false for local use.")
    clients = load_trusted_clients(settings.trusted_clients_file)
    log.info("trust profile loaded", extra={"fields": {
        "trustedClientsFile": settings.trusted_clients_file, "issuers": sorted(clients),
        "audiences": sorted({base for client in clients.values() for base in client.audience_base_urls}
                            | {settings.public_base_url}),
        "replayCache": type(replay_cache).__name__}})
    return ClientAuthenticator(
        clients,
        public_base_url=settings.public_base_url,
        replay_cache=replay_cache,
        fetch_jwks=fetch_jwks,
        clock=clock,
        leeway=settings.jwt_leeway_seconds,
        jwks_refetch_interval=settings.jwks_refetch_seconds,
    )


def _replay_cache(settings: Settings, clock, store: Store | None):
    """(the JWT replay cache, what /readyz pings or None): in the database unless CDS_REPLAY_CACHE=memory;
    the audit's store when the audit is on."""
    if settings.replay_cache == "memory":
        return InMemoryReplayCache(clock), None
    from cds_service.audit.replay_cache import DatabaseReplayCache
    from cds_service.audit.replay_cache import shared_store

    cache = DatabaseReplayCache(store or shared_store(settings.audit_database_url), clock=clock)
    return cache, cache  # the cache pings its database for /readyz (after a fork, on fresh connections)

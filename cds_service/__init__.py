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

from cds_service.auth import ClientAuthenticator
from cds_service.auth import ReplayCache
from cds_service.auth import load_trusted_clients
from cds_service.chart.source import ChartSource
from cds_service.http import views
from cds_service.http.components import Components
from cds_service.http.components import install
from cds_service.http.cors import add_cors
from cds_service.http.discovery import discovery_document
from cds_service.http.errors import register_error_handlers
from cds_service.http.openapi import api_doc
from cds_service.knowledge import default_knowledge
from cds_service.logs import configure_logging
from cds_service.pipeline import OrderCheck
from cds_service.pipeline import utc_now
from cds_service.policy import load_policy
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
               chart_session: requests.Session | None = None) -> Flask:
    """Build the app: settings, knowledge and policy, the order check, authentication, endpoints.

    ``config`` overrides settings by field name (``{"require_jwt": False}``). The outside world can
    be injected, for tests and tools: ``clock`` (the time the rules see), ``auth_clock``,
    ``fetch_jwks`` and ``replay_cache`` (JWT verification) and ``chart_session`` (FHIR queries).
    """
    settings = load_settings(environ, config)
    configure_logging(settings.log_level)
    knowledge = default_knowledge()
    policy = load_policy(settings.policy_file, knowledge, RULE_CATALOGUE)

    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    install(app, Components(
        settings=settings,
        check=OrderCheck(policy, ChartSource(settings, chart_session), clock),
        discovery=discovery_document(knowledge),
        authenticator=_authenticator(settings, auth_clock, fetch_jwks, replay_cache),
    ))
    app.register_blueprint(views.cds)
    app.register_blueprint(views.health)
    app.register_blueprint(api_doc)
    register_error_handlers(app)
    add_cors(app, settings)
    return app


def _authenticator(settings: Settings, clock, fetch_jwks, replay_cache) -> ClientAuthenticator | None:
    if not settings.require_jwt:
        log.warning("CDS_REQUIRE_JWT=false: JWT authentication is OFF. Never run like this in production.")
        return None
    if not settings.trusted_clients_file:
        raise SettingsError("CDS_REQUIRE_JWT is true but CDS_TRUSTED_CLIENTS_FILE is not set: "
                            "no EHR could be trusted. Set the file, or CDS_REQUIRE_JWT=false for local use.")
    return ClientAuthenticator(
        load_trusted_clients(settings.trusted_clients_file),
        public_base_url=settings.public_base_url,
        replay_cache=replay_cache,
        fetch_jwks=fetch_jwks,
        clock=clock,
        leeway=settings.jwt_leeway_seconds,
        jwks_refetch_interval=settings.jwks_refetch_seconds,
    )

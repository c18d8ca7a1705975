"""Milnacipran order check: a CDS Hooks 2.0 service for ``order-select`` and ``order-sign``."""

import datetime
import logging
from collections.abc import Callable
from collections.abc import Mapping
from typing import Any

from flask import Flask
from flask import jsonify
from werkzeug.exceptions import HTTPException

from cds_service.http import views
from cds_service.auth.verify import ClientAuthenticator
from cds_service.auth.verify import Unauthorized
from cds_service.auth.verify import load_trusted_clients
from cds_service.chart.source import ChartSource
from cds_service.errors import CdsError
from cds_service.errors import operation_outcome
from cds_service.knowledge import default_knowledge
from cds_service.logs import configure_logging
from cds_service.pipeline import OrderCheck
from cds_service.pipeline import utc_now
from cds_service.policy import load_policy
from cds_service.rules import RULE_IDS
from cds_service.contract import discovery_document
from cds_service.settings import Settings
from cds_service.settings import SettingsError
from cds_service.settings import load_settings

log = logging.getLogger(__name__)


def create_app(config: Mapping[str, Any] | None = None, *, environ: Mapping[str, str] | None = None,
               clock: Callable[[], datetime.datetime] = utc_now) -> Flask:
    """Build the app: settings, knowledge and policy, authentication, endpoints, error handling, CORS.

    ``config`` overrides settings by field name (``{"require_jwt": False}``); ``clock`` gives the
    time the rules see. Both are for tests and tools.
    """
    settings = load_settings(environ, config)
    configure_logging(settings.log_level)
    knowledge = default_knowledge()
    policy = load_policy(settings.policy_file, knowledge, RULE_IDS)

    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.extensions["cds.settings"] = settings
    app.extensions["cds.check"] = OrderCheck(policy, ChartSource(settings), clock)
    app.extensions["cds.discovery"] = discovery_document(knowledge)
    app.extensions["cds.authenticator"] = _authenticator(settings)
    app.register_blueprint(views.cds)
    app.register_blueprint(views.health)
    _register_error_handlers(app)
    app.after_request(_cors(settings))
    return app


def _authenticator(settings: Settings) -> ClientAuthenticator | None:
    if not settings.require_jwt:
        log.warning("CDS_REQUIRE_JWT=false: JWT authentication is OFF. Never run like this in production.")
        return None
    if not settings.trusted_clients_file:
        raise SettingsError("CDS_REQUIRE_JWT is true but CDS_TRUSTED_CLIENTS_FILE is not set: "
                            "no EHR could be trusted. Set the file, or CDS_REQUIRE_JWT=false for local use.")
    return ClientAuthenticator(
        load_trusted_clients(settings.trusted_clients_file),
        public_base_url=settings.public_base_url,
        leeway=settings.jwt_leeway_seconds,
        jwks_refetch_interval=settings.jwks_refetch_seconds,
    )


def _register_error_handlers(app: Flask) -> None:
    @app.errorhandler(CdsError)
    def cds_error(error: CdsError):
        return jsonify(operation_outcome(error.message, error.issue_code)), error.status

    @app.errorhandler(Unauthorized)
    def unauthorized(error: Unauthorized):
        return jsonify(operation_outcome("Unauthorized", "security")), 401

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        return jsonify(operation_outcome(f"{error.name}: {error.description}", "processing")), error.code

    @app.errorhandler(Exception)
    def unexpected(error: Exception):
        log.exception("unexpected error")
        return jsonify(operation_outcome("The service hit an internal error; it was logged.", "exception")), 503


def _cors(settings: Settings):
    def add_cors_headers(response):
        response.headers["Access-Control-Allow-Origin"] = settings.cors_allow_origin
        response.headers["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
        response.headers["Access-Control-Allow-Headers"] = "Authorization, Content-Type"
        response.headers["Access-Control-Allow-Private-Network"] = "true"
        response.headers["Access-Control-Max-Age"] = "600"
        return response
    return add_cors_headers

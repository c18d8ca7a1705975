"""Every error a request can end in, rendered once as a FHIR OperationOutcome; never a 500."""

import logging

from flask import Flask
from flask import jsonify
from werkzeug.exceptions import HTTPException

from cds_service.auth import Unauthorized
from cds_service.errors import CdsError
from cds_service.errors import operation_outcome

log = logging.getLogger(__name__)


def register_error_handlers(app: Flask) -> None:
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

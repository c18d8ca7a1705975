"""Errors a request can end in, and their one rendering: a FHIR OperationOutcome.

    CdsError                 status + message; rendered by ``operation_outcome``
     +-- BadRequest          400  the body is not a usable CDS Hooks request
     +-- NotFound            404  unknown service id
     +-- PreconditionFailed  412  the patient cannot be had from prefetch or the FHIR server
     +-- ServiceUnavailable  503  feedback cannot be stored now (audit database down): the EHR retries

Authentication failures are ``auth.Unauthorized`` and answer 401 with no detail.
"""


class CdsError(Exception):
    status = 500
    issue_code = "exception"

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class BadRequest(CdsError):
    status = 400
    issue_code = "invalid"


class NotFound(CdsError):
    status = 404
    issue_code = "not-found"


class PreconditionFailed(CdsError):
    status = 412
    issue_code = "processing"


class ServiceUnavailable(CdsError):
    status = 503
    issue_code = "transient"


def operation_outcome(message: str, issue_code: str = "invalid", severity: str = "error") -> dict:
    """A one-issue OperationOutcome carrying ``message`` as diagnostics."""
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": severity, "code": issue_code, "diagnostics": message}],
    }

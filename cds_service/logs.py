"""JSON log lines on stderr, one object per line, without PHI, tokens or JWTs.

Callers pass only non-identifying fields in ``extra={"fields": {...}}``: hookInstance, service
id, status, duration, card topics. Patient ids, names, tokens and request bodies are never logged.
"""

import contextvars
import json
import logging
import sys
import time
from collections.abc import Mapping

#: The current request's correlation fields (requestId, traceparent), put on every line logged
#: while it is handled, by the thread that handles it or by the threads it hands work to.
REQUEST_CONTEXT: contextvars.ContextVar[Mapping[str, str]] = contextvars.ContextVar("cds_request_context", default={})


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        line.update(REQUEST_CONTEXT.get())
        line.update(getattr(record, "fields", {}))
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


class StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time of each record (test runners swap it)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):
        pass


def configure_logging(level: str) -> None:
    """Send the ``cds_service`` loggers to stderr as JSON (idempotent)."""
    logger = logging.getLogger("cds_service")
    logger.setLevel(level.upper())
    logging.getLogger("urllib3").setLevel(max(logging.WARNING, logger.level))  # its DEBUG lines hold URLs with ids
    if not any(isinstance(handler, StderrHandler) for handler in (*logger.handlers, *logging.getLogger().handlers)):
        handler = StderrHandler()
        handler.setFormatter(JsonFormatter())
        logger.addHandler(handler)


def configure_process_logging(level: str) -> None:
    """For a served process: every logger's lines (gunicorn's, libraries') go out as JSON, once.

    The JSON handler moves to the root logger (level WARNING for libraries); ``cds_service`` and
    ``gunicorn`` loggers keep their own levels and propagate to it.
    """
    service = logging.getLogger("cds_service")
    for handler in [h for h in service.handlers if isinstance(h, StderrHandler)]:
        service.removeHandler(handler)
    service.setLevel(level.upper())
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = StderrHandler()
    handler.setFormatter(JsonFormatter())
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    logging.captureWarnings(True)  # Python warnings become JSON lines too (logger "py.warnings")

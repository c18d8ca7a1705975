"""JSON log lines on stderr, one object per line, without PHI, tokens or JWTs.

Callers pass only non-identifying fields in ``extra={"fields": {...}}``: hookInstance, service
id, status, duration, card topics. Patient ids, names, tokens and request bodies are never logged.
"""

import json
import logging
import sys
import time


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
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
    if not any(isinstance(handler, StderrHandler) for handler in logger.handlers):
        handler = StderrHandler()
        handler.setFormatter(JsonFormatter())
        logger.addHandler(handler)

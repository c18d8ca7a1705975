"""``cds-service serve``: the app under gunicorn, as production runs it.

- One log stream: gunicorn's own lines (start, workers, signals, errors) and one JSON access line
  per request (method, path without query, status, duration, request id) go out as JSON like the
  service's lines (``JsonGunicornLogger``).
- Metrics in multiprocess mode: ``PROMETHEUS_MULTIPROC_DIR`` is a fresh folder under ``$TMPDIR``
  (``/tmp`` in the container) made at start and removed at exit; each worker writes its samples
  there and ``/metrics`` sums them.
- Draining: a worker that gets SIGTERM answers ``/readyz`` with 503 while it finishes its requests.
"""

import gc
import logging
import shutil
import signal
import tempfile
import time

from gunicorn.app.base import BaseApplication
from gunicorn.glogging import Logger

from cds_service import metrics as service_metrics
from cds_service.http.observability import REQUEST_ID_HEADER
from cds_service.http.observability import start_draining
from cds_service.http.observability import valid_traceparent
from cds_service.logs import configure_process_logging

log = logging.getLogger("cds_service.server")


class JsonGunicornLogger(Logger):
    """gunicorn's logger with its handlers replaced by the root JSON handler (``logs``)."""

    def setup(self, cfg) -> None:
        super().setup(cfg)
        for logger in (self.error_log, self.access_log):
            for handler in list(logger.handlers):
                logger.removeHandler(handler)
            logger.propagate = True
        self.access_log.setLevel(logging.INFO)

    def access(self, resp, req, environ, request_time) -> None:
        status = resp.status_code if hasattr(resp, "status_code") else str(resp.status).split(None, 1)[0]
        headers = dict((name.lower(), value) for name, value in (resp.headers or ()))
        fields = {
            "method": environ.get("REQUEST_METHOD"), "path": environ.get("PATH_INFO"),  # never the query string
            "status": int(status), "ms": round(request_time.total_seconds() * 1000, 2),
            "bytes": getattr(resp, "sent", None), "requestId": headers.get(REQUEST_ID_HEADER.lower()),
        }
        traceparent = valid_traceparent(environ.get("HTTP_TRACEPARENT", ""))
        if traceparent:
            fields["traceparent"] = traceparent
        self.access_log.info("access", extra={"fields": fields})


def _post_worker_init(worker) -> None:
    previous = signal.getsignal(signal.SIGTERM)

    def on_term(signum, frame):
        start_draining()
        if callable(previous):
            previous(signum, frame)
    signal.signal(signal.SIGTERM, on_term)


def _child_exit(server, worker) -> None:
    service_metrics.worker_exited(worker.pid)


def serve(host: str, port: int, workers: int, settings) -> int:
    started = time.monotonic()
    configure_process_logging(settings.log_level)
    metrics_dir = tempfile.mkdtemp(prefix="cds-metrics-")
    service_metrics.enable_multiprocess(metrics_dir)
    try:
        from cds_service import create_app

        try:
            app = create_app()  # fail fast in the parent on bad configuration
        except Exception as error:  # configuration, policy, trust file, database: one JSON line, exit 2
            log.critical("cannot start: configuration error", extra={"fields": {
                "error": str(error), "kind": type(error).__name__}})
            return 2
        gc.freeze()  # the knowledge tables are long-lived: keep them out of every garbage collection (and shared after fork)
        log.info("serving", extra={"fields": {
            "bind": f"{host}:{port}", "workers": workers, "threads": settings.threads,
            "workerClass": settings.worker_class, "keepaliveSeconds": settings.keepalive_seconds,
            "metricsDir": metrics_dir,
            "startupMs": round((time.monotonic() - started) * 1000)}})

        class Server(BaseApplication):
            def load_config(self):
                self.cfg.set("bind", f"{host}:{port}")
                self.cfg.set("workers", workers)
                self.cfg.set("threads", settings.threads)
                self.cfg.set("worker_class", settings.worker_class)
                self.cfg.set("timeout", 30)
                self.cfg.set("keepalive", settings.keepalive_seconds)
                self.cfg.set("logger_class", JsonGunicornLogger)
                self.cfg.set("accesslog", "-")
                self.cfg.set("loglevel", "info")
                self.cfg.set("post_worker_init", _post_worker_init)
                self.cfg.set("child_exit", _child_exit)
                if "control_socket_disable" in self.cfg.settings:  # gunicorn >= 24 opens one under $HOME
                    self.cfg.set("control_socket_disable", True)

            def load(self):
                return app

        Server().run()
        return 0
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)

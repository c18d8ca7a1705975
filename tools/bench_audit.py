"""p50/p95 of the hook response with and without recording the cards in the audit database.

    .venv/bin/python tools/bench_audit.py [--requests 300] [--request fixtures/requests/sandbox-order-sign.json]

Runs the same order-sign request through an in-process app (Flask test client: no network, no
gunicorn) in each mode: audit off; recording on SQLite (a temporary file, WAL); recording on
PostgreSQL when ``CDS_TEST_DATABASE_URL`` is set; recording to a database that lost its tables (an
outage: every write fails). Prints the hook response time per mode, and how long the background
writer took to drain its queue afterwards. Figures depend on the machine and its load.
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from cds_service import create_app  # noqa: E402
from cds_service.audit import Store  # noqa: E402
from cds_service.audit.models import metadata  # noqa: E402
from cds_service.http.components import components  # noqa: E402

SIGN = "/cds-services/milnacipran-order-sign"
BASE = {"require_jwt": False, "log_level": "ERROR", "audit_patient_key_secret": "bench-secret"}


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def run(app, body: str, count: int, times: list[float], pause: float = 0.0) -> float:
    """``count`` requests, their times (ms) appended to ``times``; returns how long the writer then took to drain."""
    client = app.test_client()
    for _ in range(count):
        start = time.perf_counter()
        response = client.post(SIGN, data=body, content_type="application/json")
        times.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200 and response.get_json()["cards"]
        if pause:
            time.sleep(pause)
    audit = components(app).audit
    if audit is None:
        return 0.0
    start = time.perf_counter()
    audit.recorder.flush()
    return (time.perf_counter() - start) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300, help="per mode and round")
    parser.add_argument("--rounds", type=int, default=3, help="the modes take turns, so that load changes hit all")
    parser.add_argument("--pause-ms", type=float, default=0.0,
                        help="idle time between requests (0: back to back, the writer competes with every request)")
    parser.add_argument("--request", default=str(REPO / "fixtures" / "requests" / "sandbox-order-sign.json"))
    args = parser.parse_args()
    request = json.loads(Path(args.request).read_text())
    folder = tempfile.mkdtemp(prefix="cds-bench-")

    modes = [("audit off", lambda: create_app({**BASE, "audit_enabled": False}))]
    modes.append(("recording, SQLite", lambda: create_app({**BASE, "database_url": f"sqlite:///{folder}/bench.sqlite3"})))
    postgres = os.environ.get("CDS_TEST_DATABASE_URL", "").strip()
    if postgres:
        modes.append(("recording, PostgreSQL", lambda: create_app({**BASE, "database_url": postgres})))

    def outage():
        store = Store.from_url(f"sqlite:///{folder}/outage.sqlite3")
        app = create_app(BASE, store=store)
        metadata.drop_all(store.engine)
        return app
    modes.append(("database outage", outage))

    body = json.dumps(request)
    apps = {name: build() for name, build in modes}
    times: dict[str, list[float]] = {name: [] for name in apps}
    drains: dict[str, float] = dict.fromkeys(apps, 0.0)
    for app in apps.values():
        run(app, body, 20, [])  # warm-up
    for _ in range(args.rounds):
        for name, app in apps.items():
            drains[name] = max(drains[name], run(app, body, args.requests, times[name], args.pause_ms / 1000))
    print(f"{args.requests} x {args.rounds} order-sign requests per mode ({Path(args.request).name}, "
          f"{len(request['prefetch'])} prefetch keys), in-process, modes taking turns, after 20 warm-up, "
          f"{args.pause_ms:g} ms between requests")
    print(f"{'mode':<24} {'p50 ms':>8} {'p95 ms':>8} {'mean ms':>8} {'max writer drain ms':>20}")
    for name, app in apps.items():
        values = times[name]
        audit = components(app).audit
        counts = f"   cards recorded {audit.counts()['cards_recorded']}, failed responses " \
                 f"{audit.counts()['cards_record_failed']}" if audit else ""
        print(f"{name:<24} {percentile(values, 0.5):>8.2f} {percentile(values, 0.95):>8.2f} "
              f"{statistics.fmean(values):>8.2f} {drains[name]:>20.1f}{counts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The committee's loop against a real ``cds-service serve`` process on loopback, on SQLite and on PostgreSQL:

- end to end: hook call -> cards -> feedback (accepted, overridden with a reason) -> ``cds-service report
  --format json`` counts them right, and the HTML report opens in headless Chromium without errors;
- concurrency: 2,000 feedback items from 8 threads, every one found in the database afterwards;
- shutdown: the cards of the requests answered just before the server is stopped are all recorded.
"""

import datetime
import json
import os
import subprocess
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import pytest
import requests
from audit_fixtures import BACKENDS
from audit_fixtures import POSTGRES_URL
from conftest import load_fixture
from server_process import REPO
from server_process import cds_service_command
from server_process import running_server
from sqlalchemy import create_engine
from sqlalchemy import func
from sqlalchemy import select
from sqlalchemy import text

from cds_service.audit import Store
from cds_service.audit import parse_feedback_items
from cds_service.audit.models import CARD
from cds_service.audit.models import FEEDBACK
from cds_service.audit.store import normalise_url

SIGN = "/cds-services/milnacipran-order-sign"
REASON = {"system": "https://milnacipran-cds.example.org/override-reason", "code": "benefit-outweighs-risk",
          "display": "Benefit outweighs risk"}
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
THREADS, ITEMS, BATCH = 8, 2_000, 10


@pytest.fixture(params=BACKENDS)
def database_url(request, tmp_path):
    """A database URL a separate process can use: a SQLite file, or a fresh schema of the test PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/served/audit.sqlite3"
        return
    schema = f"s_{uuid.uuid4().hex[:12]}"
    admin = create_engine(normalise_url(POSTGRES_URL))
    with admin.begin() as connection:
        connection.execute(text(f"CREATE SCHEMA {schema}"))
    separator = "&" if "?" in POSTGRES_URL else "?"
    try:
        yield POSTGRES_URL + separator + "options=" + quote(f"-csearch_path={schema}")
    finally:
        with admin.begin() as connection:
            connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


def environment(url: str) -> dict[str, str]:
    return {"CDS_REQUIRE_JWT": "false", "CDS_DATABASE_URL": url, "CDS_AUDIT_PATIENT_KEY_SECRET": "served-test-secret",
            "CDS_POLICY_FILE": str(REPO / "tests" / "policies" / "boxed-warning-as-warning.json"),
            "CDS_WORKERS": "2", "CDS_THREADS": "4", "CDS_LOG_LEVEL": "WARNING"}


def count(url: str, table) -> int:
    store = Store.from_url(url)
    try:
        with store.engine.connect() as connection:
            return connection.execute(select(func.count()).select_from(table)).scalar_one()
    finally:
        store.dispose()


def wait_for_cards(url: str, expected: int) -> None:
    """The cards are written off the request thread, in the worker: wait (at most 20 s) until they are in."""
    deadline = time.monotonic() + 20
    while count(url, CARD) < expected:
        assert time.monotonic() < deadline, "cards not recorded in time"
        time.sleep(0.1)


def test_the_cards_of_the_last_requests_are_written_when_the_server_stops(database_url, tmp_path):
    with running_server(tmp_path / "server.log", environment(database_url)) as base:
        returned = sum(len(requests.post(base + SIGN, json=load_fixture("requests/sandbox-order-sign.json"),
                                         timeout=30).json()["cards"]) for _ in range(5))
    assert count(database_url, CARD) == returned  # stopped (SIGTERM) at once: no waiting for the writer


def cds_command(url: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(cds_service_command() + list(args), cwd=REPO, env={**os.environ, **environment(url)},
                          capture_output=True, text=True, timeout=120)


def test_hook_feedback_and_the_report_end_to_end(database_url, tmp_path):
    with running_server(tmp_path / "server.log", environment(database_url)) as base:
        cards = requests.post(base + SIGN, json=load_fixture("requests/sandbox-order-sign.json"), timeout=30).json()["cards"]
        by_topic = {card["source"]["topic"]["code"]: card for card in cards}
        dose, suicidality = by_topic["dose-titration"], by_topic["suicidality"]
        wait_for_cards(database_url, len(cards))
        answer = requests.post(base + SIGN + "/feedback", timeout=30, json={"feedback": [
            {"card": dose["uuid"], "outcome": "accepted", "outcomeTimestamp": "2026-11-30T10:05:31Z",
             "acceptedSuggestions": [{"id": dose["suggestions"][0]["uuid"]}]},
            {"card": suicidality["uuid"], "outcome": "overridden", "outcomeTimestamp": "2026-11-30T10:06:02Z",
             "overrideReason": {"reason": REASON, "userComment": "seen by psychiatry today"}},
        ]})
        assert answer.status_code == 200, answer.text

    done = cds_command(database_url, "report", "--format", "json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    rules = {rule["ruleId"]: rule for rule in report["rules"]}
    assert set(rules) == {"D3", "SU1"}
    counts = {rule_id: (r["topic"], r["indicator"], r["issued"], r["accepted"], r["overridden"], r["noFeedback"])
              for rule_id, r in rules.items()}
    assert counts == {"D3": ("dose-titration", dose["indicator"], 1, 1, 0, 0),
                      "SU1": ("suicidality", suicidality["indicator"], 1, 0, 1, 0)}
    assert [(r["code"], r["display"], r["count"]) for r in rules["SU1"]["overrideReasons"]] == \
        [(REASON["code"], REASON["display"], 1)]
    assert rules["D3"]["overrideReasons"] == []
    assert [(s["label"], s["offered"], s["accepted"]) for s in rules["D3"]["suggestions"]][:1] == \
        [(dose["suggestions"][0]["label"], 1, 1)]

    page = tmp_path / "report.html"
    done = cds_command(database_url, "report", "--format", "html", "--output", str(page))
    assert done.returncode == 0, done.stderr
    problems = open_in_chromium(page)
    assert problems["trouble"] == [] and problems["charts"] == 2
    assert "SU1" in problems["text"] and "Benefit outweighs risk" in problems["text"]


def open_in_chromium(page: Path) -> dict:
    if not CHROMIUM.exists():
        if os.environ.get("CI", "").lower() not in ("", "0", "false"):
            pytest.fail(f"CI must run the report's browser test: {CHROMIUM} is missing")
        pytest.skip(f"{CHROMIUM} is not installed")
    from playwright.sync_api import sync_playwright
    trouble: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            tab = browser.new_page()
            tab.on("console", lambda message: trouble.append(f"console {message.type}: {message.text}")
                   if message.type == "error" else None)
            tab.on("pageerror", lambda error: trouble.append(f"page error: {error}"))
            tab.on("request", lambda request: trouble.append(f"request to {request.url}")
                   if not request.url.startswith(("file:", "data:")) else None)
            tab.goto(page.as_uri())
            return {"trouble": trouble, "charts": tab.locator("svg").count(), "text": tab.inner_text("body")}
        finally:
            browser.close()


def test_2000_feedback_items_from_8_threads_to_a_served_app_are_all_stored(database_url, tmp_path):
    with running_server(tmp_path / "server.log", environment(database_url)) as base:
        session = requests.Session()
        cards = []
        for _ in range(10):  # 20 real cards; the other items name cards from before a restart (unmatched)
            cards += session.post(base + SIGN, json=load_fixture("requests/sandbox-order-sign.json"), timeout=30).json()["cards"]
        wait_for_cards(database_url, len(cards))
        start = datetime.datetime(2026, 11, 30, 8, 0, tzinfo=datetime.timezone.utc)
        items = []
        for n in range(ITEMS):
            at = (start + datetime.timedelta(seconds=n)).isoformat().replace("+00:00", "Z")
            card_uuid = cards[n % len(cards)]["uuid"] if n % 4 else f"before-restart-{n}"
            items.append({"card": card_uuid, "outcome": "overridden", "outcomeTimestamp": at,
                          "overrideReason": {"reason": REASON, "userComment": f"item {n}"}})
        shares = [items[t::THREADS] for t in range(THREADS)]
        failures: list[str] = []
        barrier = threading.Barrier(THREADS)

        def post(share):
            with requests.Session() as own:
                barrier.wait()
                for begin in range(0, len(share), BATCH):
                    answer = own.post(base + SIGN + "/feedback", json={"feedback": share[begin:begin + BATCH]}, timeout=60)
                    if answer.status_code != 200:
                        failures.append(f"{answer.status_code} {answer.text[:200]}")

        threads = [threading.Thread(target=post, args=(share,)) for share in shares]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=300)
        assert failures == []

    expected, errors = parse_feedback_items({"feedback": items})
    assert errors == []
    store = Store.from_url(database_url)
    try:
        with store.engine.connect() as connection:
            rows = connection.execute(select(FEEDBACK.c.dedupe_key, FEEDBACK.c.card_id, FEEDBACK.c.user_comment)).all()
    finally:
        store.dispose()
    assert len(rows) == ITEMS
    assert {row.dedupe_key for row in rows} == {item.dedupe_key for item in expected}
    assert sum(row.card_id is None for row in rows) == ITEMS // 4  # the unmatched ones, kept
    assert {row.user_comment for row in rows} == {f"item {n}" for n in range(ITEMS)}

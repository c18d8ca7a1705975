"""The committee's report: counts per rule id and indicator, override reasons, suggestions, weekly trend;
its text, CSV, JSON and self-contained HTML renderings; the report, purge and migrate commands."""

import argparse
import csv
import datetime
import io
import json
import shutil
import subprocess
from html.parser import HTMLParser

import pytest
from audit_fixtures import UTC
from audit_fixtures import Clock
from audit_fixtures import card
from audit_fixtures import clock  # noqa: F401
from audit_fixtures import database  # noqa: F401
from audit_fixtures import record
from audit_fixtures import store  # noqa: F401

from cds_service.audit import Store
from cds_service.audit import parse_feedback_items
from cds_service.audit.commands import add_commands
from cds_service.audit.report import CardFacts
from cds_service.audit.report import build_report
from cds_service.audit.report import render_csv
from cds_service.audit.report import render_html
from cds_service.audit.report import render_json
from cds_service.audit.report import render_text

MARCH_2 = datetime.datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday
SYSTEM = "https://example.org/override"


def post(store, *items):
    parsed, errors = parse_feedback_items({"feedback": list(items)})
    assert errors == []
    return store.record_feedback(parsed)


def accepted(card_uuid, *suggestions, at="2026-03-02T09:05:00Z"):
    return {"card": card_uuid, "outcome": "accepted", "acceptedSuggestions": [{"id": s} for s in suggestions],
            "outcomeTimestamp": at}


def overridden(card_uuid, code=None, display=None, at="2026-03-02T09:05:00Z"):
    item = {"card": card_uuid, "outcome": "overridden", "outcomeTimestamp": at}
    if code:
        item["overrideReason"] = {"reason": {"system": SYSTEM, "code": code} | ({"display": display} if display else {})}
    return item


def small_data_set(store: Store, clock: Clock) -> None:
    """Renal cards A-D and a suppressed G on Monday 2 March, MAOI cards E and F two weeks later, H before the period."""
    clock.now = datetime.datetime(2026, 2, 20, 12, 0, tzinfo=UTC)
    h = card(card_uuid="H")
    record(store, [h])
    post(store, overridden("H", "benefit", "Benefit outweighs risk"))

    clock.now = MARCH_2
    a = card(card_uuid="A", rule_ids=("renal-crcl-band", "renal-dose-ceiling"),
             suggestions={"A1": "Change to 25 mg twice daily", "A2": "Cancel order"})
    b = card(card_uuid="B", suggestions={"B1": "Change to 25 mg twice daily", "B2": "Cancel order"})
    c, d = card(card_uuid="C"), card(card_uuid="D")
    g = card(card_uuid="G", suppressed=True)
    record(store, [a, b, c])
    record(store, [d, g])
    post(store, accepted("A", "A1"), overridden("B", "benefit", "Benefit outweighs risk"),
         overridden("C", "benefit"))  # the sandbox sends no display

    clock.now = MARCH_2 + datetime.timedelta(days=14, hours=3)
    e = card(card_uuid="E", rule_ids=("maoi-washout",), topic="maoi-contraindication", indicator="critical",
             suggestions={"E1": "Remove this draft order"})
    f = card(card_uuid="F", rule_ids=("maoi-washout",), topic="maoi-contraindication", indicator="critical")
    record(store, [e, f])
    post(store, overridden("E", "washout-complete", at="2026-03-16T12:05:00Z"),
         accepted("E", "E1", at="2026-03-16T12:10:00Z"),  # the latest outcome counts
         overridden("F", at="2026-03-16T12:06:00Z"), overridden("card-of-another-server", "x"))


def by_rule(report):
    return {(rule["ruleId"], rule["indicator"]): rule for rule in report.as_dict()["rules"]}


def test_report_counts_outcomes_reasons_and_suggestions_per_rule(store, clock):
    small_data_set(store, clock)
    report = store.report(datetime.datetime(2026, 3, 1, tzinfo=UTC), datetime.datetime(2026, 4, 1, tzinfo=UTC))
    rules = by_rule(report)
    assert [r["ruleId"] for r in report.rules] == ["renal-crcl-band", "maoi-washout", "renal-dose-ceiling"]

    renal = rules[("renal-crcl-band", "warning")]
    assert {k: renal[k] for k in ("topic", "issued", "accepted", "overridden", "noFeedback", "suppressed")} == {
        "topic": "renal-function", "issued": 4, "accepted": 1, "overridden": 2, "noFeedback": 1, "suppressed": 1}
    assert renal["acceptanceRate"] == pytest.approx(1 / 3, abs=1e-4)
    assert renal["overrideReasons"] == [
        {"system": SYSTEM, "code": "benefit", "display": "Benefit outweighs risk", "count": 2}]
    assert renal["suggestions"] == [
        {"label": "Cancel order", "offered": 2, "accepted": 0, "acceptanceRate": 0.0},
        {"label": "Change to 25 mg twice daily", "offered": 2, "accepted": 1, "acceptanceRate": 0.5}]

    ceiling = rules[("renal-dose-ceiling", "warning")]  # card A counts for both of its rules
    assert (ceiling["issued"], ceiling["accepted"], ceiling["overridden"], ceiling["noFeedback"]) == (1, 1, 0, 0)

    maoi = rules[("maoi-washout", "critical")]
    assert (maoi["issued"], maoi["accepted"], maoi["overridden"], maoi["noFeedback"]) == (2, 1, 1, 0)
    assert maoi["overrideReasons"] == [{"system": None, "code": None, "display": "No reason given", "count": 1}]

    assert report.totals == {"issued": 6, "accepted": 2, "overridden": 3, "noFeedback": 1, "suppressed": 1,
                             "acceptanceRate": 0.4, "unmatchedFeedback": 1}
    assert report.weekly == [
        {"weekStart": "2026-03-02", "issued": 4, "accepted": 1, "overridden": 2, "noFeedback": 1},
        {"weekStart": "2026-03-09", "issued": 0, "accepted": 0, "overridden": 0, "noFeedback": 0},
        {"weekStart": "2026-03-16", "issued": 2, "accepted": 1, "overridden": 1, "noFeedback": 0}]
    assert report.policies == [{"name": "label-defaults", "hash": "sha256:0f1e2d3c", "knowledgeVersion": "2026.03",
                                "issued": 6}]


def test_report_period_bounds(store, clock):
    small_data_set(store, clock)
    everything = store.report()
    assert everything.totals["issued"] == 7
    assert by_rule(everything)[("renal-crcl-band", "warning")]["overrideReasons"][0]["count"] == 3
    first_week = store.report(MARCH_2, MARCH_2 + datetime.timedelta(days=7))
    assert first_week.totals["issued"] == 4 and ("maoi-washout", "critical") not in by_rule(first_week)
    assert store.report(MARCH_2 + datetime.timedelta(seconds=1)).totals["issued"] == 2  # since is inclusive
    empty = store.report(datetime.datetime(2025, 1, 1, tzinfo=UTC), datetime.datetime(2025, 2, 1, tzinfo=UTC))
    assert empty.rules == [] and empty.weekly == [] and empty.totals["issued"] == 0


def test_a_configured_display_names_a_reason_sent_without_one():
    cards = [CardFacts("X", "renal-function", "warning", MARCH_2, ("r",), {})]
    from cds_service.audit.report import FeedbackFacts
    items = [FeedbackFacts("X", "overridden", (), SYSTEM, "dialysis", None, MARCH_2, MARCH_2)]
    assert build_report(cards, items).rules[0]["overrideReasons"][0]["display"] == "dialysis"
    named = build_report(cards, items, reason_displays={"dialysis": "Patient is on dialysis"})
    assert named.rules[0]["overrideReasons"][0]["display"] == "Patient is on dialysis"


# -- renderers ------------------------------------------------------------------------------------

@pytest.fixture
def report(store, clock):
    small_data_set(store, clock)
    return store.report(datetime.datetime(2026, 3, 1, tzinfo=UTC), datetime.datetime(2026, 4, 1, tzinfo=UTC))


def test_json_has_the_documented_shape(report):
    data = json.loads(render_json(report))
    assert data["since"] == "2026-03-01T00:00:00Z" and data["until"] == "2026-04-01T00:00:00Z"
    renal = data["rules"][0]
    assert {"ruleId", "topic", "indicator", "issued", "accepted", "overridden", "noFeedback",
            "overrideReasons"} <= set(renal)
    assert {"code", "display", "count"} <= set(renal["overrideReasons"][0])


def test_csv_has_one_row_per_rule_and_indicator(report):
    table = list(csv.DictReader(io.StringIO(render_csv(report))))
    assert [(r["ruleId"], r["indicator"], r["issued"], r["accepted"], r["overridden"], r["noFeedback"])
            for r in table] == [("renal-crcl-band", "warning", "4", "1", "2", "1"),
                                ("maoi-washout", "critical", "2", "1", "1", "0"),
                                ("renal-dose-ceiling", "warning", "1", "1", "0", "0")]
    assert table[0]["overrideReasons"] == "Benefit outweighs risk [benefit]: 2"
    assert table[0]["suggestions"] == "Cancel order: 0/2; Change to 25 mg twice daily: 1/2"


def test_text_names_counts_reasons_and_suggestions(report):
    text = render_text(report)
    assert "Cards issued: 6; accepted 2, overridden 3, no feedback 1; acceptance rate 40%" in text
    assert "renal-crcl-band  [renal-function, warning]" in text
    assert "issued 4, accepted 1, overridden 2, no feedback 1, acceptance 33%, suppressed 1" in text
    assert "    2  Benefit outweighs risk [benefit]" in text
    assert "    1 / 2     Change to 25 mg twice daily" in text


class PageAudit(HTMLParser):
    """Collects what would make a page load anything, and checks that the tags nest."""

    VOID = {"meta", "br", "hr", "img", "input", "link", "area", "base", "col", "embed", "source", "track", "wbr"}
    SVG_SELF_CLOSING = {"rect", "line", "circle", "path", "polyline", "polygon"}

    def __init__(self):
        super().__init__()
        self.loads, self.tags, self.stack, self.problems = [], set(), [], []

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        for name, value in attrs:
            if name in ("src", "href", "xlink:href", "srcset", "action", "data", "poster") or \
                    (value and ("url(" in value or "http:" in value or "https:" in value)):
                self.loads.append((tag, name, value))
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag not in self.VOID:
            self.stack.pop()

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.problems.append(f"</{tag}> closes {self.stack[-1:]}")
        else:
            self.stack.pop()

    def handle_data(self, data):
        if self.stack and self.stack[-1] == "style" and ("url(" in data or "@import" in data):
            self.loads.append(("style", "css", data))


def test_html_is_one_self_contained_page_with_two_charts(report):
    page = render_html(report)
    audit = PageAudit()
    audit.feed(page)
    audit.close()
    assert audit.loads == []
    assert audit.problems == [] and audit.stack == []
    assert not audit.tags & {"script", "link", "iframe", "img", "object", "embed", "frame", "base"}
    assert page.count("<svg ") == 2 and "<style>" in page and "on" + "load=" not in page
    assert 'aria-label="Override rate per rule"' in page and 'aria-label="Cards per week by outcome"' in page
    assert "67% (2/3)" in page  # renal-crcl-band: 2 of 3 answered cards overridden
    assert "Benefit outweighs risk [benefit]: 2" in page


@pytest.mark.skipif(not shutil.which("chromium"), reason="no headless Chromium here")
def test_html_opens_in_headless_chromium(report, tmp_path):
    page = tmp_path / "report.html"
    page.write_text(render_html(report), encoding="utf-8")
    done = subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                           "--host-resolver-rules=MAP * ~NOTFOUND", "--dump-dom", page.as_uri()],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("<svg") == 2 and "Per rule and indicator" in done.stdout
    assert "renal-crcl-band" in done.stdout


def test_html_escapes_what_came_from_the_database(store, clock):
    record(store, [card(rule_ids=("<script>alert(1)</script>",), suggestions={"s": "<b>Cancel</b>"})])
    post(store, {"card": "nope", "outcome": "overridden", "outcomeTimestamp": "2026-03-02T09:05:00Z"})
    page = render_html(store.report())
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<b>Cancel</b>" not in page


def test_an_empty_report_renders_in_every_format(store):
    empty = store.report()
    assert "No cards were issued" in render_text(empty) and "No cards were issued" in render_html(empty)
    assert json.loads(render_json(empty))["rules"] == []
    assert render_csv(empty).count("\n") == 1


# -- commands -------------------------------------------------------------------------------------

def run(*argv) -> int:
    parser = argparse.ArgumentParser(prog="cds-service")
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.run(args)


@pytest.fixture
def sqlite_url(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path}/db/audit.sqlite3"
    monkeypatch.setenv("CDS_DATABASE_URL", url)
    return url


def test_report_command_writes_each_format(sqlite_url, tmp_path, capsys):
    clock = Clock(MARCH_2)
    store = Store.from_url(sqlite_url, clock=clock)
    assert run("migrate") == 0
    small_data_set(store, clock)
    store.dispose()
    out = tmp_path / "report.json"
    assert run("report", "--since", "2026-03-01", "--until", "2026-03-02", "--format", "json",
               "--output", str(out)) == 0  # --until DATE includes that day
    data = json.loads(out.read_text())
    assert (data["until"], data["rules"][0]["ruleId"], data["rules"][0]["issued"]) == (
        "2026-03-03T00:00:00Z", "renal-crcl-band", 4)
    capsys.readouterr()
    assert run("report", "--format", "csv") == 0
    assert capsys.readouterr().out.startswith("ruleId,topic,indicator,issued")
    assert run("report", "--format", "html", "--output", str(tmp_path / "r.html")) == 0
    assert (tmp_path / "r.html").read_text().startswith("<!DOCTYPE html>")
    assert run("report") == 0
    captured = capsys.readouterr()
    assert "Cards issued: 7" in captured.out and "sqlite:///" in captured.err


def test_report_command_refuses_bad_dates(sqlite_url, capsys):
    with pytest.raises(SystemExit):
        run("report", "--since", "March")
    assert run("report", "--since", "2026-03-05", "--until", "2026-03-01") == 2


def test_purge_command_uses_the_configured_retention(sqlite_url, monkeypatch, capsys):
    long_ago = Clock(datetime.datetime.now(UTC) - datetime.timedelta(days=50))
    store = Store.from_url(sqlite_url, clock=long_ago)
    store.migrate()
    record(store, [card()])
    store.dispose()
    monkeypatch.setenv("CDS_AUDIT_RETENTION_DAYS", "60")
    assert run("purge") == 0
    assert "purged rows older than 60 days: 0 cards" in capsys.readouterr().out
    assert run("purge", "--older-than", "30") == 0
    assert "purged rows older than 30 days: 1 cards" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        run("purge", "--older-than", "0")


def test_commands_report_a_bad_database_url_without_a_traceback(monkeypatch, capsys):
    monkeypatch.setenv("CDS_DATABASE_URL", "mysql://user:pw@localhost/db")
    assert run("report") == 2
    error = capsys.readouterr().err
    assert "CDS_DATABASE_URL" in error and "expected sqlite:///PATH" in error and "pw" not in error

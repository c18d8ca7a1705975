"""The card gallery: every scenario's response rendered as HTML, checked in headless Chromium.

The browser tests need Debian's ``chromium`` (/usr/bin/chromium), driven by Playwright without a
browser download. They skip when Chromium is missing on a developer's machine, and fail when it is
missing in CI (env ``CI`` set), so that CI cannot pass by skipping them. ``.ci/run`` installs it.
"""

import argparse
import datetime
import json
import os
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest

from cds_service import create_app
from cds_service.gallery import PANEL_WIDTH_PX
from cds_service.gallery import GalleryPage
from cds_service.gallery import add_command
from cds_service.gallery import gallery_pages
from cds_service.gallery import render_gallery
from cds_service.gallery import render_page

SCENARIO_DIR = Path(__file__).parent.parent / "fixtures" / "scenarios"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOT_WORDS = ("sertraline", "renal")  # the page to photograph: the sertraline + renal patient


def pipeline_evaluate(request: dict, now: datetime.datetime | None) -> dict:
    """The real service (HTTP endpoint, no JWT) at the scenario's time."""
    app = create_app({"require_jwt": False}, clock=(lambda: now) if now else None)
    service = "milnacipran-order-select" if request["hook"] == "order-select" else "milnacipran-order-sign"
    response = app.test_client().post(f"/cds-services/{service}", json=request)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def card(indicator="warning", summary="Check this order", **fields) -> dict:
    return {"uuid": "u1", "indicator": indicator, "summary": summary,
            "source": {"label": "Milnacipran order check", "url": "https://example.org/pi",
                       "topic": {"system": "urn:t", "code": "renal-function", "display": "Renal function"}},
            **fields}


def page_of(*cards: dict, name="01-test") -> GalleryPage:
    return GalleryPage(name=name, title=name, description="A test patient.", hook="order-sign",
                       response={"cards": list(cards)}, now="2026-11-20T15:00:00Z")


class Elements(HTMLParser):
    """Tags and attributes of an HTML document, to check what the markup really contains."""

    def __init__(self, text: str):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def named(self, tag: str) -> list[dict]:
        return [attrs for name, attrs in self.tags if name == tag]


# ---------------------------------------------------------------------------------------------
# The HTML, without a browser


def test_card_text_is_escaped_and_markdown_rendered_without_raw_html():
    hostile = card(summary="<script>alert(1)</script> 100 mg", detail=(
        "- CrCl **23 mL/min**\n- <img src=x onerror=alert(2)>\n\n"
        "[PI](https://example.org/pi) [bad](javascript:alert(3)) ![tracker](https://example.org/t.png)"),
        links=[{"label": "evil", "url": "javascript:alert(4)", "type": "absolute"},
               {"label": "Savella PI", "url": "https://example.org/pi", "type": "absolute"}])
    html_text = render_page(page_of(hostile))
    elements = Elements(html_text)
    assert elements.named("script") == [] and elements.named("img") == []
    assert "&lt;script&gt;alert(1)&lt;/script&gt; 100 mg" in html_text
    assert "&lt;img src=x onerror=alert(2)&gt;" in html_text
    assert "<strong>23 mL/min</strong>" in html_text and "<li>" in html_text
    hrefs = [attrs.get("href", "") for attrs in elements.named("a")]
    assert not any("javascript" in href.lower() for href in hrefs), hrefs
    assert hrefs.count("https://example.org/pi") >= 2  # the detail link and the card link
    assert "evil" in html_text  # an unsafe link is shown as text, not dropped
    assert not any(attrs.get("src") or attrs.get("rel") == "stylesheet" for _, attrs in elements.tags)


def test_card_shows_indicator_in_words_suggestions_actions_and_override_reasons():
    the_card = card(indicator="critical", summary="MAOI within 14 days: cancel this order.", suggestions=[
        {"label": "Cancel the milnacipran order", "uuid": "s1", "isRecommended": True,
         "actions": [{"type": "delete", "description": "Remove the draft order Savella",
                      "resourceId": "MedicationRequest/draft-1"}]},
        {"label": "Change to 25 mg twice a day", "uuid": "s2",
         "actions": [{"type": "update", "description": "Change to 25 mg BID", "resource": {
             "resourceType": "MedicationRequest", "medicationCodeableConcept": {"text": "milnacipran 25 MG Oral Tablet"},
             "dosageInstruction": [{"text": "25 mg by mouth twice a day"}]}}]}],
        selectionBehavior="at-most-one",
        overrideReasons=[{"system": "urn:r", "code": "record-wrong", "display": "MAOI stopped earlier than recorded"},
                         {"system": "urn:r", "code": "specialist", "display": "Benefit outweighs risk after review"}])
    html_text = render_page(page_of(the_card))
    elements = Elements(html_text)
    assert ">Critical<" in html_text and "card-critical" in html_text
    buttons = [attrs for attrs in elements.named("button") if "suggestion-button" in attrs.get("class", "")]
    assert len(buttons) == 2
    assert html_text.index('class="suggestion recommended"') < html_text.index("Cancel the milnacipran order")
    assert html_text.count("suggestion recommended") == 1 and "Recommended" in html_text
    assert "Remove the draft order Savella" in html_text and "MedicationRequest/draft-1" in html_text
    assert "milnacipran 25 MG Oral Tablet — 25 mg by mouth twice a day" in html_text
    radios = [attrs for attrs in elements.named("input") if attrs.get("type") == "radio"]
    assert [attrs["value"] for attrs in radios] == ["record-wrong", "specialist"]
    assert "MAOI stopped earlier than recorded" in html_text
    assert "Renal function" in html_text and "renal-function" in html_text


def test_gallery_pages_evaluates_each_scenario_at_its_time(tmp_path):
    for name, hook in (("02-second", "order-select"), ("01-first", "order-sign")):
        (tmp_path / f"{name}.json").write_text(json.dumps({
            "description": f"patient {name}", "now": "2026-11-20T15:00:00Z", "reasoning": "because",
            "request": {"hook": hook, "context": {}}}))
    calls = []

    def evaluate(request, now):
        calls.append((request["hook"], now))
        return {"cards": [card(summary=f"for {request['hook']}")]}

    pages = gallery_pages(tmp_path, evaluate)
    moment = datetime.datetime(2026, 11, 20, 15, tzinfo=datetime.timezone.utc)
    assert calls == [("order-sign", moment), ("order-select", moment)]
    assert [(p.name, p.hook, p.description, p.reasoning) for p in pages] == [
        ("01-first", "order-sign", "patient 01-first", "because"),
        ("02-second", "order-select", "patient 02-second", "because")]
    assert pages[0].title == "01 · first"

    (tmp_path / "03-broken.json").write_text('{"no request": true}')
    with pytest.raises(ValueError, match="03-broken.json"):
        gallery_pages(tmp_path, evaluate)


def test_render_gallery_writes_index_with_counts_and_links(tmp_path):
    pages = [page_of(card("critical"), card("info"), name="01-two"), page_of(name="02-none")]
    written = render_gallery(tmp_path / "out", pages)
    assert [path.name for path in written] == ["index.html", "01-two.html", "02-none.html"]
    index = written[0].read_text()
    assert [attrs["href"] for attrs in Elements(index).named("a")] == ["01-two.html", "02-none.html"]
    assert "1 critical" in index and "1 info" in index
    assert "2 cards in all" in index
    assert "No cards" in written[2].read_text()
    with pytest.raises(ValueError, match="duplicate"):
        render_gallery(tmp_path / "again", [pages[0], pages[0]])


def test_gallery_command_writes_the_pages(tmp_path, capsys):
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "01-one.json").write_text(json.dumps({"description": "d", "now": "2026-11-20T15:00:00Z",
                                                             "request": {"hook": "order-sign"}}))
    parser = argparse.ArgumentParser()
    add_command(parser.add_subparsers(), lambda: lambda request, now: {"cards": [card()]})
    args = parser.parse_args(["gallery", str(tmp_path / "out"), "--scenarios", str(tmp_path / "s")])
    assert args.run(args) == 0
    assert (tmp_path / "out" / "01-one.html").is_file() and (tmp_path / "out" / "index.html").is_file()
    assert "1 scenarios, 1 cards" in capsys.readouterr().out
    args = parser.parse_args(["gallery", str(tmp_path / "out"), "--scenarios", str(tmp_path / "missing")])
    assert args.run(args) == 2


def test_the_gallery_of_the_real_service_is_the_same_on_every_run(tmp_path):
    """Card and suggestion uuids differ per response; the pages do not, so two galleries can be diffed."""
    first = render_gallery(tmp_path / "a", gallery_pages(SCENARIO_DIR, pipeline_evaluate))
    second = render_gallery(tmp_path / "b", gallery_pages(SCENARIO_DIR, pipeline_evaluate))
    assert [path.read_bytes() for path in first] == [path.read_bytes() for path in second]


# ---------------------------------------------------------------------------------------------
# In headless Chromium


@pytest.fixture(scope="module")
def browser():
    missing = None
    if not CHROMIUM.exists():
        missing = f"{CHROMIUM} is not installed (apt-get install chromium)"
    else:
        try:
            from playwright.sync_api import sync_playwright
        except ImportError:
            missing = "playwright is not installed (pip install -e '.[test]')"
    if missing:
        if os.environ.get("CI", "").lower() not in ("", "0", "false"):
            pytest.fail(f"CI must run the gallery browser test: {missing}")
        pytest.skip(missing)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def gallery(tmp_path_factory):
    pages = gallery_pages(SCENARIO_DIR, pipeline_evaluate)
    out_dir = tmp_path_factory.mktemp("gallery")
    return out_dir, pages, render_gallery(out_dir, pages)


OVERFLOW_CHECK = """() => {
  const panel = document.querySelector('.panel');
  const box = panel.getBoundingClientRect();
  const limit = panel.clientWidth;
  const problems = [];
  for (const element of [panel, ...panel.querySelectorAll('*')]) {
    const rect = element.getBoundingClientRect();
    const name = element.tagName.toLowerCase() + (element.className ? '.' + element.className : '');
    if (element.scrollWidth > limit) problems.push(`${name}: scrollWidth ${element.scrollWidth} > panel ${limit}`);
    if (getComputedStyle(element).display !== 'inline' && element.scrollWidth > element.clientWidth + 1)
      problems.push(`${name}: content ${element.scrollWidth} wider than its box ${element.clientWidth}`);
    if (rect.width && (rect.right > box.right + 0.5 || rect.left < box.left - 0.5))
      problems.push(`${name}: ${rect.left}-${rect.right} outside the panel ${box.left}-${box.right}`);
  }
  return {width: box.width, problems: problems};
}"""


class Tab:
    """One browser page that records the console errors, page errors and outside requests of each visit."""

    def __init__(self, browser):
        self.page = browser.new_page(viewport={"width": 1000, "height": 800})
        self.trouble: list[str] = []
        self.page.on("console", lambda message: self.trouble.append(f"console {message.type}: {message.text}")
                     if message.type == "error" else None)
        self.page.on("pageerror", lambda error: self.trouble.append(f"page error: {error}"))
        self.page.on("request", lambda request: self.trouble.append(f"request to {request.url}")
                     if not request.url.startswith(("file:", "data:")) else None)

    def visit(self, path: Path) -> list[str]:
        self.trouble.clear()
        self.page.goto(path.as_uri())
        return self.trouble


@pytest.fixture
def tab(browser):
    tab = Tab(browser)
    yield tab
    tab.page.close()


def test_every_gallery_page_renders_cleanly_in_chromium(tab, gallery):
    out_dir, pages, written = gallery
    assert len(written) == len(pages) + 1 == len(list(SCENARIO_DIR.glob("*.json"))) + 1
    assert tab.visit(written[0]) == []
    assert tab.page.locator("table a").count() == len(pages)
    for gallery_page in pages:
        assert tab.visit(out_dir / gallery_page.filename) == [], gallery_page.name
        page = tab.page
        overflow = page.evaluate(OVERFLOW_CHECK)
        assert overflow["width"] == PANEL_WIDTH_PX, gallery_page.name
        assert overflow["problems"] == [], gallery_page.name
        cards = gallery_page.cards
        assert page.locator(".panel .card").count() == len(cards), gallery_page.name
        summaries = page.locator(".panel .card .summary")
        indicators = page.locator(".panel .card .indicator")
        for number, card_data in enumerate(cards):
            assert summaries.nth(number).is_visible(), (gallery_page.name, number)
            assert summaries.nth(number).inner_text() == card_data["summary"].strip()
            indicator = indicators.nth(number).inner_text().strip().lower()
            assert indicator.endswith(card_data["indicator"]), (gallery_page.name, indicator)


def test_long_words_and_urls_wrap_inside_the_panel(tab, tmp_path):
    long_word = "milnacipran" * 30
    long_url = "https://example.org/" + "a" * 300
    wide = card(summary=f"Summary {long_word}", detail=f"Detail {long_word} <{long_url}> `{long_word}`",
                suggestions=[{"label": f"Change {long_word}", "uuid": "s", "isRecommended": True,
                              "actions": [{"type": "update", "description": long_word}]}],
                overrideReasons=[{"system": "urn:r", "code": "c", "display": long_word}],
                links=[{"label": long_url, "url": long_url, "type": "absolute"}])
    written = render_gallery(tmp_path, [page_of(wide)])
    assert tab.visit(written[1]) == []
    assert tab.page.evaluate(OVERFLOW_CHECK)["problems"] == []
    # The check itself catches overflow: the same page without the wrapping rules fails it.
    tab.page.add_style_tag(content=".panel, .panel * {overflow-wrap: normal !important; word-break: normal !important}")
    assert tab.page.evaluate(OVERFLOW_CHECK)["problems"] != []


def test_screenshot_of_a_gallery_page(tab, gallery, tmp_path):
    out_dir, pages, _ = gallery
    chosen = max(pages, key=lambda page: (sum(word in page.name for word in SCREENSHOT_WORDS), len(page.cards)))
    assert tab.visit(out_dir / chosen.filename) == []
    shot = tmp_path / f"{chosen.name}.png"
    tab.page.screenshot(path=str(shot), full_page=True)
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 10_000
    assert int.from_bytes(data[16:20], "big") == 1000  # the IHDR width: the whole 1000-pixel viewport
    target = os.environ.get("CDS_GALLERY_SCREENSHOT")
    if target:
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, target)

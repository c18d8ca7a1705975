"""The card gallery: the response to every scenario fixture, drawn as an EHR shows it.

``cds-service gallery OUT_DIR`` writes one self-contained HTML page per scenario (inline CSS, no
script, nothing loaded from elsewhere) and an ``index.html`` linking them, so that the pharmacy
committee can review every card the service can produce and a developer can see a change to the
cards before it ships. Each page puts the cards in a 400-pixel side panel, the width of the CDS
Hooks panel of the EHRs and the sandbox: indicator as colour *and* word, summary, Markdown detail,
source and topic, suggestion buttons (the recommended one highlighted, each action described),
override reasons and links.

Card text is untrusted: every string is escaped, Markdown is rendered with raw HTML off and
images off (an image would be a request to another server), and only http(s) URLs become links.

``render_gallery`` is pure apart from writing its files; ``gallery_pages`` gets the responses
from an injected ``evaluate(request, now)`` callable, so the command and the tests run the real
pipeline without this module knowing how it is built.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import html
import json
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from cds_service.errors import CdsError
from cds_service.scenario import load_scenario

Evaluate = Callable[[dict, "datetime.datetime | None"], dict]

PANEL_WIDTH_PX = 400
INDICATORS = ("critical", "warning", "info")  # most severe first
INDICATOR_WORDS = {"critical": "Critical", "warning": "Warning", "info": "Info"}


@functools.cache
def _markdown():
    """CommonMark, raw HTML off (escaped as text), no images; links are checked by markdown-it's
    validateLink (no javascript:, vbscript:, file: or non-image data: URLs). Loaded for a gallery
    only, not at every start of the service (``cds-service`` imports this module for its command)."""
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": False}).disable("image")


@dataclass(frozen=True)
class GalleryPage:
    """One scenario and the response the service gave to it."""

    name: str                 # file stem, e.g. "25-ssri-sertraline-statement"; names the page file
    title: str
    description: str
    hook: str
    response: dict            # the CDS Hooks response, {"cards": [...]}
    now: str = ""             # the evaluation time, as the scenario gives it
    reasoning: str = ""       # the pharmacist's note of why these cards are expected

    @property
    def filename(self) -> str:
        return f"{self.name}.html"

    @property
    def cards(self) -> list[dict]:
        cards = self.response.get("cards")
        return [card for card in cards if isinstance(card, dict)] if isinstance(cards, list) else []


# ---------------------------------------------------------------------------------------------
# Building the pages from scenario files


def scenario_title(name: str) -> str:
    """'25-ssri-sertraline-statement' -> '25 · ssri sertraline statement'."""
    number, _, rest = name.partition("-")
    if number.isdigit() and rest:
        return f"{number} · {rest.replace('-', ' ')}"
    return name.replace("-", " ")


def gallery_pages(scenario_dir: Path, evaluate: Evaluate) -> list[GalleryPage]:
    """Evaluate every ``*.json`` scenario in ``scenario_dir`` (sorted by name) into a page.

    A scenario file holds ``request`` (the CDS Hooks request), ``now`` (the evaluation time) and
    ``description``; ``reasoning`` is optional. A file that is not a scenario raises ValueError
    naming it: a gallery that silently left a scenario out would hide cards from the review.
    """
    pages = []
    for path in sorted(Path(scenario_dir).glob("*.json")):
        try:
            scenario = load_scenario(path)
        except (CdsError, ValueError, KeyError, TypeError) as error:
            raise ValueError(f"{path.name}: not a scenario file ({getattr(error, 'message', error)})") from None
        request = scenario.request
        if not isinstance(request, dict) or "hook" not in request:
            raise ValueError(f"{path.name}: a scenario needs a 'request' object or a 'patient'")
        try:
            response = evaluate(request, scenario.now)
        except Exception as error:
            error.add_note(f"while evaluating the scenario {path.name}")
            raise
        if not isinstance(response, dict):
            raise ValueError(f"{path.name}: evaluate returned {type(response).__name__}, not a response object")
        pages.append(GalleryPage(
            name=path.stem,
            title=scenario_title(path.stem),
            description=str(scenario.description or ""),
            hook=str(request.get("hook") or ""),
            response=response,
            now=scenario.now.isoformat().replace("+00:00", "Z") if scenario.now else "",
            reasoning=str(scenario.reasoning or ""),
        ))
    if not pages:
        raise ValueError(f"{scenario_dir}: no scenario files (*.json)")
    return pages


# ---------------------------------------------------------------------------------------------
# Rendering


def render_gallery(out_dir: Path, pages: list[GalleryPage]) -> list[Path]:
    """Write one HTML page per scenario and ``index.html``; return the paths written (index first)."""
    names = [page.name for page in pages]
    duplicates = sorted(name for name, count in Counter(names).items() if count > 1)
    if duplicates:
        raise ValueError(f"duplicate page names: {', '.join(duplicates)}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    index = out_dir / "index.html"
    index.write_text(render_index(pages), encoding="utf-8")
    written = [index]
    for position, page in enumerate(pages):
        previous = pages[position - 1] if position > 0 else None
        following = pages[position + 1] if position + 1 < len(pages) else None
        path = out_dir / page.filename
        path.write_text(render_page(page, previous, following), encoding="utf-8")
        written.append(path)
    return written


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _text(value: object) -> str:
    """A card field as text: strings as they are, anything else (a malformed field) as JSON."""
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _safe_url(url: object) -> str | None:
    if not isinstance(url, str):
        return None
    parts = urlsplit(url.strip())
    return url.strip() if parts.scheme.lower() in ("http", "https") and parts.netloc else None


def _link(url: object, label: str) -> str:
    safe = _safe_url(url)
    if safe is None:
        return _e(label)
    return f'<a href="{_e(safe)}" rel="noopener noreferrer">{_e(label)}</a>'


def indicator_of(card: dict) -> str:
    indicator = card.get("indicator")
    return indicator if indicator in INDICATORS else "unknown"


def indicator_counts(cards: list[dict]) -> str:
    """'1 critical, 2 info' (most severe first), or 'no cards'."""
    counts = Counter(indicator_of(card) for card in cards)
    parts = [f"{counts[level]} {level}" for level in (*INDICATORS, "unknown") if counts[level]]
    return ", ".join(parts) if parts else "no cards"


def render_markdown(text: str) -> str:
    return _markdown().render(text)


def _describe_resource(resource: object) -> str:
    """A line a clinician reads for the resource an action creates or updates."""
    if not isinstance(resource, dict):
        return ""
    kind = str(resource.get("resourceType") or "resource")
    what = ""
    for key in ("medicationCodeableConcept", "code"):
        concept = resource.get(key)
        if isinstance(concept, dict):
            codings = concept.get("coding") if isinstance(concept.get("coding"), list) else []
            what = concept.get("text") or next(
                (c.get("display") for c in codings if isinstance(c, dict) and c.get("display")), "")
            if what:
                break
    dosage = resource.get("dosageInstruction")
    sig = ""
    if isinstance(dosage, list):
        sig = "; ".join(str(d.get("text")) for d in dosage if isinstance(d, dict) and d.get("text"))
    return " — ".join(_text(part) for part in (kind, what, sig) if part)


def render_action(action: dict) -> str:
    kind = str(action.get("type") or "")
    parts = [f'<span class="action-type">{_e(kind or "action")}</span>']
    description = _text(action.get("description"))
    resource = _describe_resource(action.get("resource")) or _text(action.get("resourceId"))
    if description:
        parts.append(f'<span class="action-description">{_e(description)}</span>')
    if resource:
        parts.append(f'<span class="action-resource">{_e(resource)}</span>')
    return f'<li class="action action-{_e(kind or "unknown")}">{" ".join(parts)}</li>'


def render_suggestion(suggestion: dict) -> str:
    recommended = suggestion.get("isRecommended") is True
    label = _text(suggestion.get("label")) or "(suggestion without a label)"
    actions = [action for action in suggestion.get("actions") or [] if isinstance(action, dict)]
    marker = '<span class="recommended-tag">Recommended</span>' if recommended else ""
    action_list = f'<ul class="actions">{"".join(render_action(action) for action in actions)}</ul>' if actions else ""
    css = "suggestion recommended" if recommended else "suggestion"
    return (f'<li class="{css}">{marker}'
            f'<button type="button" class="suggestion-button">{_e(label)}</button>{action_list}</li>')


def render_override_reasons(card: dict, card_number: int) -> str:
    """The reasons as a radio list: an EHR's dismiss dialog, with every reason visible to the reviewer."""
    reasons = [reason for reason in card.get("overrideReasons") or [] if isinstance(reason, dict)]
    if not reasons:
        return ""
    field = f"override-{card_number}"
    options = "".join(
        f'<li><label><input type="radio" name="{field}" value="{_e(_text(reason.get("code")))}"> '
        f'{_e(_text(reason.get("display") or reason.get("code")))}</label></li>'
        for reason in reasons)
    return (f'<fieldset class="override"><legend>Override reason</legend>'
            f'<ul class="override-reasons">{options}</ul>'
            f'<button type="button" class="dismiss-button">Dismiss with reason</button></fieldset>')


def render_links(card: dict) -> str:
    links = [link for link in card.get("links") or [] if isinstance(link, dict)]
    if not links:
        return ""
    items = []
    for link in links:
        label = _text(link.get("label")) or _text(link.get("url"))
        kind = " (SMART app)" if link.get("type") == "smart" else ""
        items.append(f"<li>{_link(link.get('url'), label)}{_e(kind)}</li>")
    return f'<ul class="links">{"".join(items)}</ul>'


def render_card(card: dict, card_number: int) -> str:
    indicator = indicator_of(card)
    word = INDICATOR_WORDS.get(indicator, "Unknown indicator")
    source = card.get("source") if isinstance(card.get("source"), dict) else {}
    topic = source.get("topic") if isinstance(source.get("topic"), dict) else {}
    topic_text = _text(topic.get("display") or topic.get("code") or "")
    topic_code = _text(topic.get("code") or "")
    summary = _text(card.get("summary"))
    detail = _text(card.get("detail"))
    suggestions = [s for s in card.get("suggestions") or [] if isinstance(s, dict)]
    selection = _text(card.get("selectionBehavior"))
    parts = [
        f'<article class="card card-{indicator}" aria-label="{_e(word)} card" data-topic="{_e(topic_code)}">',
        '<div class="card-head">',
        f'<span class="indicator indicator-{indicator}">{_e(word)}</span>',
        f'<span class="topic" title="{_e(topic_code)}">{_e(topic_text)}</span>' if topic_text else "",
        "</div>",
        f'<h2 class="summary">{_e(summary)}</h2>',
        f'<div class="detail">{render_markdown(detail)}</div>' if detail else "",
    ]
    if suggestions:
        note = f' <span class="selection">({_e(selection)})</span>' if selection else ""
        parts.append(f'<div class="suggestions"><h3>Suggestions{note}</h3>'
                     f'<ul>{"".join(render_suggestion(s) for s in suggestions)}</ul></div>')
    parts.append(render_override_reasons(card, card_number))
    parts.append(render_links(card))
    if source:
        label = _text(source.get("label")) or "source"
        topic_line = f' · topic <code>{_e(topic_code)}</code>' if topic_code else ""
        parts.append(f'<p class="source">Source: {_link(source.get("url"), label)}{topic_line}</p>')
    parts.append("</article>")
    return "".join(part for part in parts if part)


# PANEL_WIDTH is replaced by PANEL_WIDTH_PX below.
CSS = r"""
*,*::before,*::after { box-sizing:border-box }
html {
  font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",Arial,sans-serif; color:#1d2430;
  background:#e9edf2;
}
body { margin:0 }
a { color:#1a56b0 }
code { font-family:"DejaVu Sans Mono",Menlo,Consolas,monospace; font-size:.92em }
.topbar {
  background:#23364f; color:#fff; padding:8px 16px; display:flex; gap:16px; align-items:baseline;
  flex-wrap:wrap;
}
.topbar a { color:#cfe0ff }
.topbar .app { font-weight:600 }
.layout { display:flex; gap:16px; padding:16px; align-items:flex-start }
.chart {
  flex:1 1 auto; min-width:0; max-width:640px; background:#fff; border:1px solid #cfd6df; border-radius:4px;
  padding:12px 16px; overflow-wrap:anywhere;
}
.chart h1 { font-size:18px; margin:0 0 8px }
.chart h2 { font-size:14px; margin:12px 0 4px; color:#3b4554 }
.chart .reasoning { font-size:13px; color:#3b4554; margin:0 }
.chart dl { display:grid; grid-template-columns:max-content 1fr; gap:4px 12px; margin:8px 0 }
.chart dt { color:#5a6473 }
.chart dd { margin:0 }
.panel {
  flex:0 0 PANEL_WIDTH; width:PANEL_WIDTH; max-width:PANEL_WIDTH; background:#f6f8fa;
  border:1px solid #b9c3cf; border-radius:4px; overflow-wrap:anywhere; word-break:break-word;
}
.panel-head {
  background:#34506f; color:#fff; padding:8px 12px; font-weight:600; display:flex;
  justify-content:space-between; gap:8px;
}
.panel-head .count { font-weight:400 }
.panel-body { padding:8px }
.empty { color:#5a6473; padding:12px; text-align:center }
.card {
  background:#fff; border:1px solid #cfd6df; border-left:6px solid #777; border-radius:3px;
  padding:8px 10px 10px; margin:0 0 8px; min-width:0;
}
.card-critical { border-left-color:#c62828 }
.card-warning { border-left-color:#e09b00 }
.card-info { border-left-color:#1e63c4 }
.card-head { display:flex; gap:8px; align-items:center; flex-wrap:wrap; margin-bottom:4px }
.indicator {
  display:inline-block; font-size:12px; font-weight:700; text-transform:uppercase; letter-spacing:.04em;
  padding:1px 7px; border-radius:3px; color:#fff; background:#666;
}
.indicator-critical { background:#c62828 }
.indicator-warning { background:#f2b01e; color:#2b1d00 }
.indicator-info { background:#1e63c4 }
.indicator-critical::before { content:"\2716\00a0" }
.indicator-warning::before { content:"\26a0\00a0" }
.indicator-info::before { content:"\2139\00a0" }
.topic { color:#4a5566; font-size:12px; font-weight:600 }
.summary { font-size:15px; font-weight:600; margin:2px 0 6px; line-height:1.3 }
.detail { font-size:13px }
.detail p { margin:4px 0 }
.detail ul,.detail ol { margin:4px 0; padding-left:18px }
.detail pre { white-space:pre-wrap }
.detail em { color:#5a6473 }
.detail table { display:block; max-width:100%; overflow-x:auto }
.suggestions h3 {
  font-size:12px; text-transform:uppercase; color:#5a6473; margin:8px 0 4px; letter-spacing:.04em;
}
.suggestions .selection { text-transform:none; font-weight:400 }
.suggestions ul { list-style:none; margin:0; padding:0 }
.suggestion { margin:0 0 8px }
.suggestion-button {
  font:inherit; font-weight:600; max-width:100%; white-space:normal; text-align:left; overflow-wrap:anywhere;
  padding:4px 10px; border-radius:3px; border:1px solid #1a56b0; background:#fff; color:#1a56b0;
  cursor:pointer;
}
.recommended .suggestion-button { background:#1a56b0; color:#fff }
.recommended-tag {
  display:block; margin:0 0 2px; font-size:11px; font-weight:700; color:#1d6b2c; text-transform:uppercase;
  letter-spacing:.03em;
}
.recommended-tag::before { content:"\2605\00a0" }
.actions {
  list-style:none; margin:4px 0 0 2px; padding:0 0 0 8px; border-left:2px solid #dde3ea; font-size:12px;
  color:#3b4554;
}
.action-type {
  font-size:10px; font-weight:700; text-transform:uppercase; letter-spacing:.04em; color:#5a6473;
  border:1px solid #c3cad4; border-radius:2px; padding:0 3px; margin-right:2px;
}
.action-resource { display:block; color:#5a6473 }
.override {
  margin:8px 0 0; padding:4px 0 0; border:0; border-top:1px dashed #cfd6df; font-size:12px; min-width:0;
}
.override legend { font-weight:600; padding:0; float:left; width:100%; margin-top:2px }
.override-reasons { list-style:none; clear:both; margin:2px 0 6px; padding:0; color:#2c3440 }
.override-reasons label { display:flex; gap:6px; align-items:flex-start }
.override-reasons input { margin:2px 0 0 }
.dismiss-button {
  font:inherit; font-size:12px; padding:2px 8px; border:1px solid #8a94a3; border-radius:3px;
  background:#f3f5f8; color:#2c3440;
}
.links { margin:6px 0 0; padding-left:18px; font-size:12px }
.source { margin:6px 0 0; font-size:12px; color:#5a6473 }
.gallery-index { padding:16px; max-width:1200px }
.gallery-index h1 { margin:0 0 4px; font-size:20px }
.gallery-index table { border-collapse:collapse; width:100%; background:#fff; margin-top:12px }
.gallery-index th,.gallery-index td {
  border:1px solid #cfd6df; padding:5px 8px; text-align:left; vertical-align:top; overflow-wrap:break-word;
}
.gallery-index .nowrap { white-space:nowrap }
.gallery-index th { background:#f0f3f7 }
.gallery-index .num { text-align:right }
.pill {
  display:inline-block; white-space:nowrap; font-size:11px; font-weight:700; padding:0 6px; border-radius:3px;
  margin:0 4px 2px 0; color:#fff; background:#666;
}
.pill-critical { background:#c62828 }
.pill-warning { background:#f2b01e; color:#2b1d00 }
.pill-info { background:#1e63c4 }
""".replace("PANEL_WIDTH", f"{PANEL_WIDTH_PX}px")


def _document(title: str, body: str) -> str:
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{_e(title)}</title><style>{CSS}</style></head><body>{body}</body></html>\n")


def render_page(page: GalleryPage, previous: GalleryPage | None = None, following: GalleryPage | None = None) -> str:
    cards = page.cards
    nav = ['<a href="index.html">All scenarios</a>']
    if previous:
        nav.append(f'<a href="{_e(previous.filename)}" rel="prev">← {_e(previous.title)}</a>')
    if following:
        nav.append(f'<a href="{_e(following.filename)}" rel="next">{_e(following.title)} →</a>')
    facts = [("Hook", page.hook), ("Evaluated at", page.now), ("Cards", indicator_counts(cards))]
    facts_html = "".join(f"<dt>{_e(name)}</dt><dd>{_e(value)}</dd>" for name, value in facts if value)
    reasoning = f'<h2>Why these cards</h2><p class="reasoning">{_e(page.reasoning)}</p>' if page.reasoning else ""
    body_cards = "".join(render_card(card, number) for number, card in enumerate(cards, 1)) \
        or '<p class="empty">No cards: the service has nothing to say about this order.</p>'
    count = f"{len(cards)} card{'s' if len(cards) != 1 else ''}"
    body = (f'<header class="topbar"><span class="app">Milnacipran order check · card gallery</span>'
            f'<nav>{" · ".join(nav)}</nav></header>'
            f'<main class="layout">'
            f'<section class="chart"><h1>{_e(page.title)}</h1><p class="description">{_e(page.description)}</p>'
            f"<dl>{facts_html}</dl>{reasoning}</section>"
            f'<aside class="panel" aria-label="CDS Hooks cards" style="width:{PANEL_WIDTH_PX}px">'
            f'<div class="panel-head"><span>Decision support</span><span class="count">{count}</span></div>'
            f'<div class="panel-body">{body_cards}</div></aside></main>')
    return _document(f"{page.title} · card gallery", body)


def render_index(pages: list[GalleryPage]) -> str:
    total_cards = sum(len(page.cards) for page in pages)
    crowded = sum(1 for page in pages if len(page.cards) >= 4)
    mean = total_cards / len(pages) if pages else 0.0
    rows = []
    for page in pages:
        counts = Counter(indicator_of(card) for card in page.cards)
        pills = "".join(f'<span class="pill pill-{level}">{counts[level]} {_e(level)}</span>'
                        for level in (*INDICATORS, "unknown") if counts[level]) or "none"
        topics = ", ".join(_text((card.get("source") or {}).get("topic", {}).get("code", ""))
                           for card in page.cards if isinstance(card.get("source"), dict)
                           and isinstance(card["source"].get("topic"), dict))
        rows.append(f'<tr><td><a href="{_e(page.filename)}">{_e(page.title)}</a></td>'
                    f'<td>{_e(page.description)}</td><td class="nowrap">{_e(page.hook)}</td>'
                    f'<td class="num">{len(page.cards)}</td><td>{pills}</td><td>{_e(topics)}</td></tr>')
    body = (f'<header class="topbar"><span class="app">Milnacipran order check · card gallery</span></header>'
            f'<main class="gallery-index"><h1>Card gallery: {len(pages)} scenarios</h1>'
            f"<p>{total_cards} cards in all; {mean:.2f} cards per response on average; "
            f"{crowded} response{'s' if crowded != 1 else ''} with 4 or more cards.</p>"
            f"<table><thead><tr><th>Scenario</th><th>Patient and order</th><th>Hook</th><th>Cards</th>"
            f"<th>Indicators</th><th>Topics</th></tr></thead><tbody>{''.join(rows)}</tbody></table></main>")
    return _document("Card gallery", body)


# ---------------------------------------------------------------------------------------------
# Command line


DEFAULT_SCENARIOS = Path("fixtures") / "scenarios"


def add_command(subparsers: argparse._SubParsersAction, make_evaluate: Callable[[], Evaluate]) -> argparse.ArgumentParser:
    """Register ``gallery OUT_DIR [--scenarios DIR]``.

    ``make_evaluate`` is called when the command runs (not when it is registered), so that loading
    settings and policy happens only for this command and its errors reach the caller's handler.
    """
    parser = subparsers.add_parser("gallery", help="render every scenario's cards as HTML pages for review")
    parser.add_argument("out_dir", metavar="OUT_DIR", help="folder to write index.html and one page per scenario into")
    parser.add_argument("--scenarios", metavar="DIR", default=str(DEFAULT_SCENARIOS),
                        help=f"folder of scenario files (default {DEFAULT_SCENARIOS})")

    def run(args: argparse.Namespace) -> int:
        scenario_dir = Path(args.scenarios)
        if not scenario_dir.is_dir():
            print(f"no scenario folder {scenario_dir}", file=sys.stderr)
            return 2
        try:
            pages = gallery_pages(scenario_dir, make_evaluate())
            written = render_gallery(Path(args.out_dir), pages)
        except ValueError as error:
            print(f"gallery: {error}", file=sys.stderr)
            return 2
        except OSError as error:
            print(f"gallery: cannot write {args.out_dir}: {error.strerror}", file=sys.stderr)
            return 2
        cards = sum(len(page.cards) for page in pages)
        print(f"{written[0]}: {len(pages)} scenarios, {cards} cards")
        return 0

    parser.set_defaults(run=run)
    return parser

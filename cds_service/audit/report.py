"""The pharmacy and therapeutics committee's report: how often each rule's cards are accepted or overridden, and why.

``build_report`` is pure: it takes the cards issued in a period and the feedback they received
(plain values, from ``Store.report``) and counts, per rule id and indicator:

- ``issued``: cards shown (a card behind several rule ids counts once for each; cards suppressed
  as repeated alerts are counted apart, in ``suppressed``);
- ``accepted`` / ``overridden``: by the card's latest feedback item (by outcomeTimestamp), so a card
  counts once even when the EHR sent several items; ``noFeedback``: the rest (ignored cards send none);
- ``acceptanceRate``: accepted / (accepted + overridden), or null before any feedback;
- ``overrideReasons``: the reasons of the overridden cards, most frequent first (code null: none given);
- ``suggestions``: per suggestion label, how often it was offered and accepted.

Renderers: ``render_text``, ``render_csv``, ``render_json`` and ``render_html`` (one self-contained
page with inline CSS and SVG charts: no scripts, no external resources, safe to send by e-mail).
"""

import csv
import dataclasses
import datetime
import html
import io
import json
from collections import Counter
from collections import defaultdict
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any

NO_REASON = "No reason given"
TOP_REASONS = 5


@dataclasses.dataclass(frozen=True)
class CardFacts:
    card_uuid: str
    topic: str
    indicator: str
    issued_at: datetime.datetime
    rule_ids: tuple[str, ...]
    suggestions: Mapping[str, str]  # uuid -> label
    suppressed: bool = False
    policy_name: str = ""
    policy_hash: str = ""
    knowledge_version: str = ""


@dataclasses.dataclass(frozen=True)
class FeedbackFacts:
    card_uuid: str
    outcome: str
    accepted_suggestions: tuple[str, ...]
    reason_system: str | None
    reason_code: str | None
    reason_display: str | None
    outcome_timestamp: datetime.datetime
    received_at: datetime.datetime


@dataclasses.dataclass
class Report:
    since: datetime.datetime | None
    until: datetime.datetime | None
    generated_at: datetime.datetime
    totals: dict[str, Any]
    rules: list[dict[str, Any]]
    weekly: list[dict[str, Any]]
    policies: list[dict[str, Any]]

    def as_dict(self) -> dict[str, Any]:
        return {"since": _iso(self.since), "until": _iso(self.until), "generatedAt": _iso(self.generated_at),
                "totals": self.totals, "rules": self.rules, "weekly": self.weekly, "policies": self.policies}


def _iso(value: datetime.datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(datetime.timezone.utc).isoformat().replace("+00:00", "Z")


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _final_feedback(feedback: Sequence[FeedbackFacts]) -> dict[str, FeedbackFacts]:
    """Each card's latest feedback item (by outcomeTimestamp, then arrival)."""
    latest: dict[str, FeedbackFacts] = {}
    for item in feedback:
        current = latest.get(item.card_uuid)
        if current is None or (item.outcome_timestamp, item.received_at) > (current.outcome_timestamp,
                                                                               current.received_at):
            latest[item.card_uuid] = item
    return latest


def build_report(cards: Sequence[CardFacts], feedback: Sequence[FeedbackFacts], *, unmatched_feedback: int = 0,
                 since: datetime.datetime | None = None, until: datetime.datetime | None = None,
                 generated_at: datetime.datetime | None = None,
                 reason_displays: Mapping[str, str] | None = None) -> Report:
    """Count outcomes per (rule id, topic, indicator), per week and per policy. ``reason_displays`` maps a
    reason code to its display for clients (like the sandbox) that send only system and code."""
    final = _final_feedback(feedback)
    displays: dict[str, Counter] = defaultdict(Counter)
    for item in feedback:
        if item.reason_code and item.reason_display:
            displays[item.reason_code][item.reason_display] += 1

    def display_of(code: str | None) -> str:
        if code is None:
            return NO_REASON
        if reason_displays and code in reason_displays:
            return reason_displays[code]
        return displays[code].most_common(1)[0][0] if displays[code] else code

    groups: dict[tuple[str, str, str], dict[str, Any]] = {}
    weekly: dict[datetime.date, Counter] = defaultdict(Counter)
    policies: Counter = Counter()
    totals = Counter()
    for card in cards:
        outcome = final.get(card.card_uuid)
        state = "suppressed" if card.suppressed else (outcome.outcome if outcome else "noFeedback")
        totals[state] += 1
        if not card.suppressed:
            totals["issued"] += 1
            week = (card.issued_at.astimezone(datetime.timezone.utc) - datetime.timedelta(
                days=card.issued_at.astimezone(datetime.timezone.utc).weekday())).date()
            weekly[week]["issued"] += 1
            weekly[week][state] += 1
            policies[(card.policy_name, card.policy_hash, card.knowledge_version)] += 1
        for rule_id in card.rule_ids or ("(no rule id)",):
            group = groups.setdefault((rule_id, card.topic, card.indicator), {
                "counts": Counter(), "reasons": Counter(), "offered": Counter(), "accepted": Counter()})
            group["counts"][state] += 1
            if card.suppressed:
                continue
            group["counts"]["issued"] += 1
            if state == "overridden":
                group["reasons"][(outcome.reason_system, outcome.reason_code)] += 1
            for suggestion, label in card.suggestions.items():
                group["offered"][label] += 1
                if state == "accepted" and suggestion in outcome.accepted_suggestions:
                    group["accepted"][label] += 1

    rules = []
    for (rule_id, topic, indicator), group in groups.items():
        counts = group["counts"]
        rules.append({
            "ruleId": rule_id, "topic": topic, "indicator": indicator,
            "issued": counts["issued"], "accepted": counts["accepted"], "overridden": counts["overridden"],
            "noFeedback": counts["noFeedback"], "suppressed": counts["suppressed"],
            "acceptanceRate": _rate(counts["accepted"], counts["accepted"] + counts["overridden"]),
            "overrideRate": _rate(counts["overridden"], counts["accepted"] + counts["overridden"]),
            "overrideReasons": [{"system": system, "code": code, "display": display_of(code), "count": count}
                                for (system, code), count in sorted(group["reasons"].items(),
                                                                    key=lambda kv: (-kv[1], kv[0][1] or "~"))],
            "suggestions": [{"label": label, "offered": offered, "accepted": group["accepted"][label],
                             "acceptanceRate": _rate(group["accepted"][label], offered)}
                            for label, offered in sorted(group["offered"].items(), key=lambda kv: (-kv[1], kv[0]))],
        })
    rules.sort(key=lambda r: (-r["issued"], r["ruleId"], r["indicator"]))

    weeks = []
    if weekly:
        week, last = min(weekly), max(weekly)
        while week <= last:  # every week in the span, so the trend shows the quiet ones too
            counts = weekly.get(week, Counter())
            weeks.append({"weekStart": week.isoformat(), "issued": counts["issued"], "accepted": counts["accepted"],
                          "overridden": counts["overridden"], "noFeedback": counts["noFeedback"]})
            week += datetime.timedelta(days=7)

    return Report(
        since=since, until=until, generated_at=generated_at or datetime.datetime.now(datetime.timezone.utc),
        totals={"issued": totals["issued"], "accepted": totals["accepted"], "overridden": totals["overridden"],
                "noFeedback": totals["noFeedback"], "suppressed": totals["suppressed"],
                "acceptanceRate": _rate(totals["accepted"], totals["accepted"] + totals["overridden"]),
                "unmatchedFeedback": unmatched_feedback},
        rules=rules, weekly=weeks,
        policies=[{"name": name, "hash": digest, "knowledgeVersion": version, "issued": count}
                  for (name, digest, version), count in sorted(policies.items(), key=lambda kv: -kv[1])])


# -- renderers -------------------------------------------------------------------------------------

def _percent(rate: float | None) -> str:
    return "–" if rate is None else f"{rate * 100:.0f}%"


def _period(report: Report) -> str:
    since = report.since.date().isoformat() if report.since else "the beginning"
    until = report.until.date().isoformat() if report.until else "now"
    return f"cards issued from {since} until {until}" + (" (exclusive)" if report.until else "")


def _reason_text(reason: Mapping[str, Any]) -> str:
    return reason["display"] if reason["code"] is None else f"{reason['display']} [{reason['code']}]"


def render_json(report: Report) -> str:
    return json.dumps(report.as_dict(), indent=2, ensure_ascii=False) + "\n"


def render_csv(report: Report) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["ruleId", "topic", "indicator", "issued", "accepted", "overridden", "noFeedback", "suppressed",
                     "acceptanceRate", "overrideReasons", "suggestions"])
    for rule in report.rules:
        writer.writerow([
            rule["ruleId"], rule["topic"], rule["indicator"], rule["issued"], rule["accepted"], rule["overridden"],
            rule["noFeedback"], rule["suppressed"], "" if rule["acceptanceRate"] is None else rule["acceptanceRate"],
            "; ".join(f"{_reason_text(r)}: {r['count']}" for r in rule["overrideReasons"]),
            "; ".join(f"{s['label']}: {s['accepted']}/{s['offered']}" for s in rule["suggestions"]),
        ])
    return out.getvalue()


def render_text(report: Report) -> str:
    totals = report.totals
    lines = [
        "Milnacipran order check: card outcomes",
        f"Period: {_period(report)}. Generated {_iso(report.generated_at)}.",
        f"Cards issued: {totals['issued']}; accepted {totals['accepted']}, overridden {totals['overridden']}, "
        f"no feedback {totals['noFeedback']}; acceptance rate {_percent(totals['acceptanceRate'])} "
        "(of the cards with feedback).",
    ]
    if totals["suppressed"]:
        lines.append(f"Repeated alerts suppressed: {totals['suppressed']}.")
    if totals["unmatchedFeedback"]:
        lines.append(f"Feedback items for cards not in the audit log: {totals['unmatchedFeedback']}.")
    for policy in report.policies:
        lines.append(f"Policy {policy['name']} ({policy['hash']}), knowledge {policy['knowledgeVersion']}: "
                     f"{policy['issued']} cards.")
    if not report.rules:
        lines += ["", "No cards were issued in this period."]
    for rule in report.rules:
        lines += [
            "",
            f"{rule['ruleId']}  [{rule['topic']}, {rule['indicator']}]",
            f"  issued {rule['issued']}, accepted {rule['accepted']}, overridden {rule['overridden']}, "
            f"no feedback {rule['noFeedback']}, acceptance {_percent(rule['acceptanceRate'])}"
            + (f", suppressed {rule['suppressed']}" if rule["suppressed"] else ""),
        ]
        if rule["overrideReasons"]:
            lines.append("  top override reasons:")
            lines += [f"    {r['count']:>5}  {_reason_text(r)}" for r in rule["overrideReasons"][:TOP_REASONS]]
        if rule["suggestions"]:
            lines.append("  suggestions (accepted / offered):")
            lines += [f"    {s['accepted']:>5} / {s['offered']:<5} {s['label']}" for s in rule["suggestions"]]
    return "\n".join(lines) + "\n"


# -- HTML ------------------------------------------------------------------------------------------

CSS = """
body{font-family:Segoe UI,Helvetica,Arial,sans-serif;color:#1d2733;margin:24px;max-width:980px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #d5dbe1;padding-bottom:4px}
p.meta{color:#56606b;margin:2px 0}
table{border-collapse:collapse;width:100%;font-size:13px;margin:6px 0 14px}
th,td{border:1px solid #d5dbe1;padding:4px 6px;text-align:left;vertical-align:top}
th{background:#eef2f5}td.n{text-align:right;font-variant-numeric:tabular-nums}
.kpi{display:inline-block;border:1px solid #d5dbe1;border-radius:4px;padding:6px 12px;margin:4px 8px 4px 0}
.kpi b{display:block;font-size:20px}
ul{margin:2px 0;padding-left:18px}svg{max-width:100%;height:auto}
.critical{color:#a4161a;font-weight:600}.warning{color:#9a6700;font-weight:600}.info{color:#1f5f99}
"""
COLOURS = {"accepted": "#2e7d32", "overridden": "#c62828", "noFeedback": "#b0b8c1"}


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _override_chart(rules: Sequence[Mapping[str, Any]]) -> str:
    """Horizontal bars: the override rate of each rule id and indicator, with the counts behind it."""
    label_width, bar_width, row = 330, 420, 24
    height = row * len(rules) + 30
    parts = [f'<svg width="{label_width + bar_width + 120}" height="{height}" '
             f'viewBox="0 0 {label_width + bar_width + 120} {height}" role="img" '
             'aria-label="Override rate per rule" font-family="Helvetica,Arial,sans-serif" font-size="12">']
    for tick in (0, 25, 50, 75, 100):
        x = label_width + bar_width * tick / 100
        parts.append(f'<line x1="{x:.1f}" y1="0" x2="{x:.1f}" y2="{height - 22}" stroke="#e3e7eb"/>'
                     f'<text x="{x:.1f}" y="{height - 8}" text-anchor="middle" fill="#56606b">{tick}%</text>')
    for index, rule in enumerate(rules):
        y = index * row + 4
        answered = rule["accepted"] + rule["overridden"]
        parts.append(f'<text x="{label_width - 8}" y="{y + 14}" text-anchor="end">'
                     f'{_e(rule["ruleId"])} · {_e(rule["indicator"])}</text>')
        if answered:
            width = bar_width * rule["overridden"] / answered
            parts.append(f'<rect x="{label_width}" y="{y + 2}" width="{width:.1f}" height="16" '
                         f'fill="{COLOURS["overridden"]}"/>')
            parts.append(f'<text x="{label_width + width + 6:.1f}" y="{y + 14}" fill="#1d2733">'
                         f'{_percent(rule["overrideRate"])} ({rule["overridden"]}/{answered})</text>')
        else:
            parts.append(f'<text x="{label_width + 6}" y="{y + 14}" fill="#56606b">no feedback '
                         f'({rule["issued"]} issued)</text>')
    parts.append("</svg>")
    return "".join(parts)


def _weekly_chart(weeks: Sequence[Mapping[str, Any]]) -> str:
    """Stacked bars per week: accepted, overridden, no feedback."""
    left, top, plot_h, plot_w = 44, 10, 200, 820
    height = top + plot_h + 60
    peak = max((w["issued"] for w in weeks), default=0) or 1
    slot = plot_w / max(len(weeks), 1)
    bar = max(min(slot * 0.7, 40), 1)
    label_every = max(1, round(len(weeks) / 12))
    parts = [f'<svg width="{left + plot_w + 10}" height="{height}" '
             f'viewBox="0 0 {left + plot_w + 10} {height}" role="img" aria-label="Cards per week by outcome" '
             'font-family="Helvetica,Arial,sans-serif" font-size="11">']
    for fraction in (0, 0.5, 1):
        y = top + plot_h * (1 - fraction)
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" stroke="#e3e7eb"/>'
                     f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" fill="#56606b">'
                     f'{round(peak * fraction)}</text>')
    for index, week in enumerate(weeks):
        x = left + index * slot + (slot - bar) / 2
        y = top + plot_h
        for key in ("accepted", "overridden", "noFeedback"):
            h = plot_h * week[key] / peak
            if h > 0:
                y -= h
                parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}" fill="{COLOURS[key]}">'
                             f'<title>{_e(week["weekStart"])}: {week[key]} {key}</title></rect>')
        if index % label_every == 0:
            parts.append(f'<text x="{x + bar / 2:.1f}" y="{top + plot_h + 14}" text-anchor="middle" '
                         f'fill="#56606b">{_e(week["weekStart"][5:])}</text>')
    legend_y = top + plot_h + 36
    for offset, (key, name) in enumerate((("accepted", "accepted"), ("overridden", "overridden"),
                                          ("noFeedback", "no feedback"))):
        x = left + offset * 130
        parts.append(f'<rect x="{x}" y="{legend_y}" width="12" height="12" fill="{COLOURS[key]}"/>'
                     f'<text x="{x + 18}" y="{legend_y + 11}">{name}</text>')
    parts.append("</svg>")
    return "".join(parts)


def render_html(report: Report) -> str:
    totals = report.totals
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>Milnacipran order check: card outcomes</title>",
        f"<style>{CSS}</style></head><body>",
        "<h1>Milnacipran order check: card outcomes</h1>",
        f'<p class="meta">{_e(_period(report).capitalize())}. Generated {_e(_iso(report.generated_at))}.</p>',
    ]
    for policy in report.policies:
        out.append(f'<p class="meta">Policy {_e(policy["name"])} ({_e(policy["hash"])}), knowledge '
                   f'{_e(policy["knowledgeVersion"])}: {policy["issued"]} cards.</p>')
    out.append("<div>")
    for label, value in (("Cards issued", totals["issued"]), ("Accepted", totals["accepted"]),
                         ("Overridden", totals["overridden"]), ("No feedback", totals["noFeedback"]),
                         ("Acceptance rate", _percent(totals["acceptanceRate"])),
                         ("Suppressed repeats", totals["suppressed"]),
                         ("Feedback for unknown cards", totals["unmatchedFeedback"])):
        out.append(f'<span class="kpi">{_e(label)}<b>{_e(value)}</b></span>')
    out.append("</div>")
    out.append('<p class="meta">Acceptance rate = accepted / (accepted + overridden): cards without feedback '
               "(ignored, or from an EHR that sends none) are left out. A card behind several rules counts for each."
               "</p>")
    if not report.rules:
        out.append("<p>No cards were issued in this period.</p>")
    else:
        out.append("<h2>Override rate per rule</h2>")
        out.append(_override_chart(report.rules))
        out.append("<h2>Cards per week</h2>")
        out.append(_weekly_chart(report.weekly))
        out.append("<h2>Per rule and indicator</h2><table><tr><th>Rule</th><th>Topic</th><th>Indicator</th>"
                   "<th>Issued</th><th>Accepted</th><th>Overridden</th><th>No feedback</th><th>Acceptance</th>"
                   "<th>Top override reasons</th><th>Suggestions accepted / offered</th></tr>")
        for rule in report.rules:
            reasons = "".join(f"<li>{_e(_reason_text(r))}: {r['count']}</li>"
                              for r in rule["overrideReasons"][:TOP_REASONS])
            suggestions = "".join(f"<li>{_e(s['label'])}: {s['accepted']} / {s['offered']}</li>"
                                  for s in rule["suggestions"])
            out.append(
                f"<tr><td>{_e(rule['ruleId'])}</td><td>{_e(rule['topic'])}</td>"
                f'<td class="{_e(rule["indicator"])}">{_e(rule["indicator"])}</td>'
                f'<td class="n">{rule["issued"]}</td><td class="n">{rule["accepted"]}</td>'
                f'<td class="n">{rule["overridden"]}</td><td class="n">{rule["noFeedback"]}</td>'
                f'<td class="n">{_percent(rule["acceptanceRate"])}</td>'
                f"<td>{f'<ul>{reasons}</ul>' if reasons else '–'}</td>"
                f"<td>{f'<ul>{suggestions}</ul>' if suggestions else '–'}</td></tr>")
        out.append("</table>")
        out.append("<h2>Weekly counts</h2><table><tr><th>Week from</th><th>Issued</th><th>Accepted</th>"
                   "<th>Overridden</th><th>No feedback</th></tr>")
        for week in report.weekly:
            out.append(f"<tr><td>{_e(week['weekStart'])}</td><td class=\"n\">{week['issued']}</td>"
                       f"<td class=\"n\">{week['accepted']}</td><td class=\"n\">{week['overridden']}</td>"
                       f"<td class=\"n\">{week['noFeedback']}</td></tr>")
        out.append("</table>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


RENDERERS = {"text": render_text, "csv": render_csv, "json": render_json, "html": render_html}

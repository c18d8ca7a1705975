"""Composition: the findings of one request become one coherent answer, before any card is drawn.

Pure and deterministic, like the rules. In order:

1. **Routine notices of a new start** (the titration, the boxed warning, age cautions: the rule ids
   the registry marks as routine) become one "Starting milnacipran" card, or none when the site
   policy turns them off (or keeps them for ``order-select``), or when every draft is cancelled
   (there is no start to give notice of).
2. **A cancelled draft is not also changed**: when a card cancels a draft (a contraindication),
   every other suggestion that changes or keeps that draft is dropped; the other findings still show.
3. **One card per topic** carrying every finding of the topic, most severe first.
4. **Nothing said twice**: a detail line already said by an earlier card, or earlier in the same
   card, is left out.
5. **Order**: critical, warning, info; within a level, a card whose suggestion fixes the order
   first; then the order the rules ran in.
"""

import dataclasses
from collections.abc import Iterable
from collections.abc import Sequence

from cds_service.findings import Finding
from cds_service.findings import Suggestion


@dataclasses.dataclass(frozen=True)
class CardPlan:
    """What one card will say: its topic, its findings (most severe first) and its suggestions."""

    topic: str
    findings: tuple[Finding, ...]
    suggestions: tuple[Suggestion, ...]
    summary: str
    cancels_order: bool
    combined_notices: bool = False  # the routine notices' card: their briefs make the summary

    @property
    def lead(self) -> Finding:
        return self.findings[0]

    @property
    def rule_ids(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(finding.rule_id for finding in self.findings))


def _targets(suggestion: Suggestion) -> set[str]:
    """The draft orders a suggestion changes or removes, as 'MedicationRequest/<id>'."""
    found = set()
    for action in suggestion.actions:
        if action.type == "delete" and action.resource_id:
            found.add(action.resource_id)
        elif action.type == "update" and action.resource:
            found.add(f"{action.resource.get('resourceType')}/{action.resource.get('id')}")
    return found


def _cancelled(findings: Iterable[Finding], drafts: set[str]) -> set[str]:
    """The milnacipran drafts a contraindication cancels: a suggestion that deletes every draft of the
    order (removing one duplicate draft of several is not cancelling the order)."""
    cancelled = set()
    for finding in findings:
        for suggestion in finding.suggestions:
            deleted = {a.resource_id for a in suggestion.actions if a.type == "delete" and a.resource_id in drafts}
            if deleted and deleted >= drafts:
                cancelled |= deleted
    return cancelled


def _without_changes_to(finding: Finding, cancelled: set[str]) -> Finding:
    kept = tuple(s for s in finding.suggestions
                 if not (_targets(s) & cancelled) or all(a.type == "delete" for a in s.actions))
    return finding if kept == finding.suggestions else dataclasses.replace(finding, suggestions=kept)


def _new_start_summary(notices: Sequence[Finding]) -> str:
    return "Starting milnacipran: " + "; ".join(finding.brief or finding.summary.rstrip(".") for finding in notices) + "."


def _dedupe_lines(text: str, said: set[str]) -> str:
    """``text`` without the lines already in ``said`` (which it extends); blank lines kept as separators."""
    kept = []
    for line in text.split("\n"):
        key = line.strip()
        if key and key in said:
            continue
        if key:
            said.add(key)
        kept.append(line)
    joined = "\n".join(kept)
    while "\n\n\n" in joined:
        joined = joined.replace("\n\n\n", "\n\n")
    return joined.strip("\n")


def _fixes_order(plan: CardPlan, drafts: set[str]) -> bool:
    return any(_targets(suggestion) & drafts for suggestion in plan.suggestions)


def _unique(suggestions: Iterable[Suggestion]) -> tuple[Suggestion, ...]:
    """Each distinct suggestion once: the same label on the same drafts is the same button."""
    seen: dict[tuple, Suggestion] = {}
    for suggestion in suggestions:
        seen.setdefault((suggestion.label, tuple(sorted(_targets(suggestion)))), suggestion)
    return tuple(seen.values())


def compose(findings: Sequence[Finding], drafts: Iterable[str], routine_ids: Sequence[str],
            routine_notices: str = "all", hook: str = "order-sign") -> list[CardPlan]:
    """The cards of one response, as plans; ``drafts`` are the references of the milnacipran drafts
    that have an id (the ones a suggestion can name).

    ``routine_ids`` are the routine notices of a new start, in the order their card names them (its
    topic is the first one's); ``routine_notices`` is the site policy's choice: "all",
    "order-select" (shown only there) or "off".
    """
    drafts = set(drafts)
    routine = sorted((f for f in findings if f.indicator == "info" and f.rule_id in routine_ids),
                     key=lambda finding: routine_ids.index(finding.rule_id))
    others = [f for f in findings if f not in routine]
    cancelled = _cancelled(others, drafts)
    shown = (routine_notices == "all" or (routine_notices == "order-select" and hook == "order-select")) \
        and not (drafts and cancelled >= drafts)
    if cancelled:
        others = [f if _cancelled([f], drafts) else _without_changes_to(f, cancelled) for f in others]
        routine = [_without_changes_to(f, cancelled) for f in routine]

    by_topic: dict[str, list[Finding]] = {}
    for finding in others:
        by_topic.setdefault(finding.topic, []).append(finding)
    if routine and shown:
        by_topic.setdefault(routine[0].topic, []).extend(routine)
    plans = []
    for topic, group in by_topic.items():
        group = sorted(group, key=lambda finding: -finding.rank)
        suggestions = _unique(s for finding in group for s in finding.suggestions)
        combined = len(group) > 1 and all(f in routine for f in group)
        summary = _new_start_summary(group) if combined else group[0].summary
        plans.append(CardPlan(topic, tuple(group), suggestions, summary, bool(_cancelled(group, drafts)), combined))
    order = {id(plan): index for index, plan in enumerate(plans)}
    plans.sort(key=lambda plan: (-plan.lead.rank, not _fixes_order(plan, drafts), order[id(plan)]))

    said: set[str] = set()
    composed = []
    for plan in plans:
        findings_said = []
        for finding in plan.findings:
            findings_said.append(dataclasses.replace(finding, detail=_dedupe_lines(finding.detail, said)))
        composed.append(dataclasses.replace(plan, findings=tuple(findings_said)))
    return composed

"""Site policy: the pharmacy committee's overrides of thresholds, card indicators and override reasons.

A policy file (``CDS_POLICY_FILE``) is JSON::

    {"thresholds": {"bp_hr_window_days": 180},
     "indicators": {"M4": "critical", "A2": "off"},
     "overrideReasons": [{"system": "...", "code": "...", "display": "...", "topics": ["renal-function"],
                          "contraindication": false}],
     "routineNotices": "order-select"}

Without a file the defaults reproduce the knowledge reference. Anything invalid raises
``PolicyError`` naming the key, and the service refuses to start. The label's
contraindications (as the rule registry declares them) can be raised or lowered but never turned off.
A threshold may move only within the bounds ``thresholds.json`` declares for it (where the label
gives the number, only in the stricter direction), bands stay in order, and formula and unit
constants cannot be overridden at all (see ``knowledge/bounds.py``).

A policy is known by its identity: a name (the file's optional ``"name"``, else its file name) and
a hash of its content, shown in the card footer, the audit rows, the request log and ``/readyz``.
"""

import dataclasses
import hashlib
import json
import math
from collections.abc import Mapping
from collections.abc import Set
from pathlib import Path
from types import MappingProxyType
from typing import Any

from cds_service.contract import INDICATORS
from cds_service.contract import TOPICS
from cds_service.knowledge import Knowledge
from cds_service.knowledge.bounds import ThresholdBounds
from cds_service.knowledge.bounds import default_threshold_bounds

LEVELS = (*INDICATORS, "off")
ROUTINE_NOTICE_CHOICES = ("all", "order-select", "off")
# topics where every card is about a label contraindication: only reasons that fit one may be offered
CONTRAINDICATION_ONLY_TOPICS = ("maoi-contraindication",)
DEFAULT_POLICY_NAME = "label-defaults"
POLICY_KEYS = ("name", "thresholds", "indicators", "overrideReasons", "routineNotices", "_comment")


class PolicyError(ValueError):
    """The site policy file cannot be used; the message names the bad key."""


@dataclasses.dataclass(frozen=True)
class PolicyIdentity:
    """The policy in force: its name and ``sha256:`` + the first 16 hex digits of its canonical JSON."""

    name: str
    hash: str

    def __str__(self) -> str:
        return f"{self.name} ({self.hash})"


def policy_hash(raw: Any) -> str:
    canonical = json.dumps(raw, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()[:16]


DEFAULT_IDENTITY = PolicyIdentity(DEFAULT_POLICY_NAME, policy_hash({}))


@dataclasses.dataclass(frozen=True)
class Policy:
    knowledge: Knowledge
    thresholds: Mapping[str, float]
    indicators: Mapping[str, str]
    override_reasons: tuple[Mapping[str, str], ...]
    source: str = "knowledge defaults"
    routine_notices: str = "all"  # the "Starting milnacipran" card: "all", "order-select" (only there) or "off"
    identity: PolicyIdentity = DEFAULT_IDENTITY

    def threshold(self, name: str) -> float:
        return self.thresholds[name]

    def indicator(self, rule_id: str, default: str) -> str:
        return self.indicators.get(rule_id, default)


def default_policy(knowledge: Knowledge) -> Policy:
    return Policy(knowledge, knowledge.thresholds, MappingProxyType({}), knowledge.override_reasons)


def _within_bounds(name: str, value: float, bounds: ThresholdBounds) -> None:
    if bounds.minimum <= value <= bounds.maximum:
        return
    side, bound = ("min", bounds.minimum) if value < bounds.minimum else ("max", bounds.maximum)
    laxer = bounds.laxer_bound is not None and bounds.laxer_bound[0] == side
    what = "laxer than the bound" if laxer else "outside the bound"
    raise PolicyError(f"thresholds.{name}: {value:g} is {what} {side} {bound:g} "
                      f"(stricter is {bounds.stricter}; source: {bounds.source})")


def _in_order(merged: Mapping[str, float], bounds: Mapping[str, ThresholdBounds]) -> None:
    for name, item in bounds.items():
        if item.below is not None and not merged[name] < merged[item.below]:
            raise PolicyError(f"thresholds.{name}: {merged[name]:g} must stay below {item.below} "
                              f"({merged[item.below]:g}): bands stay in order")
        if item.at_most is not None and not merged[name] <= merged[item.at_most]:
            raise PolicyError(f"thresholds.{name}: {merged[name]:g} must not exceed {item.at_most} "
                              f"({merged[item.at_most]:g})")


def _thresholds(raw: Any, knowledge: Knowledge, bounds: Mapping[str, ThresholdBounds]) -> dict[str, float]:
    if not isinstance(raw, Mapping):
        raise PolicyError("'thresholds' must be an object of threshold name -> number")
    merged = dict(knowledge.thresholds)
    for name, value in raw.items():
        if name in knowledge.constants:
            raise PolicyError(f"thresholds.{name}: a formula or unit constant of the knowledge; it cannot be overridden")
        if name not in merged:
            raise PolicyError(f"thresholds.{name}: unknown threshold (known: see cds_service/knowledge/thresholds.json)")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise PolicyError(f"thresholds.{name}: must be a non-negative number, not {value!r}")
        if name not in bounds:
            raise PolicyError(f"thresholds.{name}: declares no bounds in the knowledge, so it cannot be overridden")
        _within_bounds(name, float(value), bounds[name])
        merged[name] = float(value)
    _in_order(merged, bounds)
    return merged


def _indicators(raw: Any, rules: Mapping[str, bool]) -> dict[str, str]:
    if not isinstance(raw, Mapping):
        raise PolicyError("'indicators' must be an object of rule id -> info|warning|critical|off")
    for rule_id, level in raw.items():
        if rule_id not in rules:
            raise PolicyError(f"indicators.{rule_id}: unknown rule id (see cds_service/rules/README.md)")
        if level not in LEVELS:
            raise PolicyError(f"indicators.{rule_id}: must be one of {', '.join(LEVELS)}, not {level!r}")
        if level == "off" and rules[rule_id]:
            raise PolicyError(f"indicators.{rule_id}: a label contraindication cannot be turned off")
    return dict(raw)


def _override_reasons(raw: Any, knowledge: Knowledge, contraindication_topics: Set[str]) -> tuple[dict, ...]:
    """Coded reasons with the topics they fit. A card that cancels the order (and every card of the MAOI
    topic) offers only reasons that say ``"contraindication": true``; other cards only the others.
    Refused: a topic left without a reason that fits its cards; a topic that can cancel the order left
    without a fitting reason; a reason that does not fit a contraindication attached to a topic where
    every card is about one (the MAOI topic), or one the knowledge marks unfit declared fit."""
    if not isinstance(raw, list) or not raw:
        raise PolicyError("'overrideReasons' must be a non-empty array of Codings")
    unfit = {reason["code"] for reason in knowledge.override_reasons if not reason.get("contraindication")}
    for index, reason in enumerate(raw):
        if not isinstance(reason, Mapping) or not all(isinstance(reason.get(k), str) and reason[k]
                                                      for k in ("system", "code", "display")):
            raise PolicyError(f"overrideReasons[{index}]: needs non-empty 'system', 'code' and 'display'")
        if not set(reason.get("topics", ())) <= set(TOPICS) or isinstance(reason.get("topics"), str):
            raise PolicyError(f"overrideReasons[{index}].topics: must list card topic codes")
        if not isinstance(reason.get("contraindication", False), bool):
            raise PolicyError(f"overrideReasons[{index}].contraindication: must be true or false")
        fits_contraindication = reason.get("contraindication", False)
        if fits_contraindication and reason["code"] in unfit:
            raise PolicyError(f"overrideReasons[{index}] ({reason['code']}): the knowledge marks this reason unfit "
                              "for a card that cancels the order")
        for topic in set(reason.get("topics", TOPICS)) & set(CONTRAINDICATION_ONLY_TOPICS):
            if not fits_contraindication:
                raise PolicyError(f"overrideReasons[{index}] ({reason['code']}): does not fit a contraindication, "
                                  f"so it cannot be offered on the {topic} card")
    uncovered = [topic for topic in TOPICS if not any(
        topic in r.get("topics", (topic,)) and r.get("contraindication", False) == (topic in CONTRAINDICATION_ONLY_TOPICS)
        for r in raw)]
    if uncovered:
        raise PolicyError(f"overrideReasons: no reason for the topic(s) {', '.join(uncovered)} "
                          "(every warning or critical card must offer one that fits it)")
    cancel_uncovered = [topic for topic in sorted(contraindication_topics) if not any(
        topic in r.get("topics", (topic,)) and r.get("contraindication", False) for r in raw)]
    if cancel_uncovered:
        raise PolicyError(f"overrideReasons: no reason fit for a contraindication on the topic(s) "
                          f"{', '.join(cancel_uncovered)} (a card that cancels the order must offer one)")
    return tuple(dict(reason) for reason in raw)


def _routine_notices(raw: Any) -> str:
    if raw not in ROUTINE_NOTICE_CHOICES:
        raise PolicyError(f"routineNotices: must be one of {', '.join(ROUTINE_NOTICE_CHOICES)}, not {raw!r}")
    return raw


def load_policy(path: str | None, knowledge: Knowledge, rules: Mapping[str, bool],
                contraindication_topics: Set[str] = frozenset(),
                bounds: Mapping[str, ThresholdBounds] | None = None) -> Policy:
    """The site policy from ``path`` (None: the defaults), validated against the knowledge, the
    thresholds' bounds and the rule registry: its catalogue (rule id -> whether it is a label
    contraindication) and the topics whose cards may cancel the order."""
    if path is None:
        _override_reasons(list(knowledge.override_reasons), knowledge, contraindication_topics)
        return default_policy(knowledge)
    try:
        raw = json.loads(Path(path).read_text())
    except OSError as error:
        raise PolicyError(f"CDS_POLICY_FILE {path}: {error.strerror}") from None
    except ValueError as error:
        raise PolicyError(f"CDS_POLICY_FILE {path}: not valid JSON ({error})") from None
    if not isinstance(raw, Mapping):
        raise PolicyError(f"CDS_POLICY_FILE {path}: must be a JSON object")
    unknown = set(raw) - set(POLICY_KEYS)
    if unknown:
        raise PolicyError(f"{', '.join(sorted(unknown))}: unknown key "
                          "(expected name, thresholds, indicators, overrideReasons, routineNotices)")
    name = raw.get("name", Path(path).stem)
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise PolicyError("name: must be a non-empty string of at most 200 characters")
    return Policy(
        knowledge=knowledge,
        thresholds=MappingProxyType(_thresholds(raw.get("thresholds", {}), knowledge,
                                                default_threshold_bounds() if bounds is None else bounds)),
        indicators=MappingProxyType(_indicators(raw.get("indicators", {}), rules)),
        override_reasons=_override_reasons(raw.get("overrideReasons", list(knowledge.override_reasons)), knowledge,
                                           contraindication_topics),
        source=str(path),
        routine_notices=_routine_notices(raw.get("routineNotices", "all")),
        identity=PolicyIdentity(name.strip(), policy_hash(raw)),
    )


def policy_changes(policy: Policy, bounds: Mapping[str, ThresholdBounds] | None = None) -> list[str]:
    """What ``policy`` changes against the label defaults, one line each, for the committee's minutes."""
    bounds = default_threshold_bounds() if bounds is None else bounds
    lines = []
    for name, value in policy.thresholds.items():
        default = policy.knowledge.thresholds[name]
        if value == default:
            continue
        item = bounds.get(name)
        direction = "changed"
        if item is not None and item.stricter != "neither":
            direction = "stricter" if (value > default) == (item.stricter == "higher") else "laxer (within the site range)"
        lines.append(f"threshold {name}: {default:g} -> {value:g} ({direction}; allowed {item.minimum:g}..{item.maximum:g})"
                     if item else f"threshold {name}: {default:g} -> {value:g}")
    for rule_id, level in sorted(policy.indicators.items()):
        lines.append(f"indicator {rule_id}: {level}")
    if policy.routine_notices != "all":
        lines.append(f"routine notices of a new start: {policy.routine_notices}")
    if policy.override_reasons != policy.knowledge.override_reasons:
        lines.append(f"override reasons: replaced by the site's {len(policy.override_reasons)} reason(s): "
                     + ", ".join(reason["code"] for reason in policy.override_reasons))
    return lines

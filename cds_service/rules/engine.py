"""The rule engine: runs the registry in order, stamps and checks each finding, isolates failures.

Each finding gets its rule's topic (and its rule id when the rule has one), is checked against
the registry (the rule id must be one its rule declares; indicator, texts and suggestions must be
well formed) and gets the site policy's indicator for its rule id ("off" drops it). A rule that
raises, or returns anything the engine refuses, costs only its own findings: its topic gets a
visible "check could not run" finding and every other rule's findings still stand.
"""

import dataclasses
import logging

from cds_service.contract import INDICATORS
from cds_service.findings import Finding
from cds_service.findings import Suggestion
from cds_service.findings import check_could_not_run
from cds_service.rules.registry import RULES
from cds_service.rules.registry import Rule

log = logging.getLogger(__name__)


class RefusedFinding(ValueError):
    """A rule produced something that is not a finding it may report."""


def _checked(rule: Rule, finding: object) -> Finding:
    if not isinstance(finding, Finding):
        raise RefusedFinding(f"{rule.name} returned {type(finding).__name__}, not a Finding")
    rule_id = finding.rule_id or (rule.ids[0] if len(rule.ids) == 1 else "")
    if rule_id not in rule.ids:
        raise RefusedFinding(f"{rule.name} reported rule id {finding.rule_id!r}, not one of {', '.join(rule.ids)}")
    if finding.topic not in ("", rule.topic):
        raise RefusedFinding(f"{rule.name} reported topic {finding.topic!r}; its topic is {rule.topic}")
    if finding.indicator not in INDICATORS:
        raise RefusedFinding(f"{rule.name} reported indicator {finding.indicator!r}")
    if not all(isinstance(value, str) and value for value in (finding.summary, finding.detail, finding.label_section)):
        raise RefusedFinding(f"{rule.name} reported an empty or non-text summary, detail or label section")
    if not all(isinstance(suggestion, Suggestion) for suggestion in finding.suggestions):
        raise RefusedFinding(f"{rule.name} reported a suggestion that is not a Suggestion")
    return dataclasses.replace(finding, topic=rule.topic, rule_id=rule_id)


def evaluate_rules(orders, snapshot, policy, rules=RULES) -> list[Finding]:
    """Every rule's findings, stamped, checked and given the policy's indicator, in table order."""
    findings = []
    for rule in rules:
        try:
            produced = [_checked(rule, finding) for finding in rule.check(orders, snapshot, policy)]
        except Exception:
            log.exception("rule failed", extra={"fields": {"rule": rule.name}})
            findings.append(check_could_not_run(rule.topic, rule.name))
            continue
        for finding in produced:
            indicator = policy.indicator(finding.rule_id, finding.indicator)
            if indicator != "off":
                findings.append(dataclasses.replace(finding, indicator=indicator))
    return findings

"""The rule table and the engine that runs it. See README.md beside this file for every rule.

``RULES`` is the one ordered table of (card topic, rule). The engine stamps each finding with
its topic, applies the site policy's indicator for the rule id ("off" drops it), and turns a
rule that raises into a visible "check could not run" finding on its topic, never silence.
"""

import dataclasses
import logging

from cds_service.cards.render import TOPICS
from cds_service.findings import Finding
from cds_service.rules import age
from cds_service.rules import bleeding_risk
from cds_service.rules import blood_pressure
from cds_service.rules import cardiovascular_drugs
from cds_service.rules import conditions
from cds_service.rules import data_availability
from cds_service.rules import dose_titration
from cds_service.rules import duplicate_therapy
from cds_service.rules import hepatic
from cds_service.rules import hyponatremia
from cds_service.rules import maoi_washout
from cds_service.rules import pregnancy_lactation
from cds_service.rules import renal_function
from cds_service.rules import serotonergic_drugs
from cds_service.rules import suicidality

log = logging.getLogger(__name__)

RULES = (
    ("maoi-contraindication", maoi_washout.psychiatric_maoi),
    ("maoi-contraindication", maoi_washout.linezolid_or_intravenous_methylene_blue),
    ("maoi-contraindication", maoi_washout.other_maoi),
    ("renal-function", renal_function.end_stage_renal_disease),
    ("renal-function", renal_function.renal_dose_ceiling),
    ("renal-function", renal_function.missing_renal_data),
    ("renal-function", renal_function.stale_or_unstable_renal_data),
    ("serotonin-syndrome", serotonergic_drugs.serotonergic_co_medication),
    ("serotonin-syndrome", serotonergic_drugs.recent_fluoxetine),
    ("blood-pressure-heart-rate", blood_pressure.blood_pressure_history),
    ("blood-pressure-heart-rate", blood_pressure.tachycardia),
    ("blood-pressure-heart-rate", blood_pressure.sustained_rise_on_treatment),
    ("blood-pressure-heart-rate", blood_pressure.missing_baseline),
    ("bleeding-risk", bleeding_risk.bleeding_risk),
    ("cardiovascular-interaction", cardiovascular_drugs.cardiovascular_interaction),
    ("duplicate-therapy", duplicate_therapy.duplicate_milnacipran),
    ("dose-titration", dose_titration.maximum_daily_dose),
    ("dose-titration", dose_titration.divided_doses),
    ("dose-titration", dose_titration.titration_on_new_start),
    ("age", age.age),
    ("suicidality", suicidality.suicidality),
    ("hepatic", hepatic.liver_disease),
    ("hepatic", hepatic.abnormal_liver_tests),
    *conditions.TOPIC_RULES,
    ("pregnancy-lactation", pregnancy_lactation.pregnancy_lactation),
    ("hyponatremia", hyponatremia.hyponatremia),
    ("data-availability", data_availability.unavailable_data),
)

RULE_IDS = {rule_id for module in (age, blood_pressure, bleeding_risk, cardiovascular_drugs, conditions,
                                   data_availability, dose_titration, duplicate_therapy, hepatic, hyponatremia,
                                   maoi_washout, pregnancy_lactation, renal_function, serotonergic_drugs, suicidality)
            for rule_id in module.IDS}


def _could_not_run(topic: str, rule) -> Finding:
    return Finding("warning", f"The {TOPICS[topic].lower()} check could not run: review this yourself.",
                   "An internal error stopped this check, so it gives no assurance. It was logged for the CDS team.",
                   "Savella prescribing information", topic=topic, rule_id=f"{rule.__name__}-failed")


def evaluate_rules(orders, snapshot, policy) -> list[Finding]:
    """Every rule's findings, stamped with topic and the policy's indicator, in table order."""
    findings = []
    for topic, rule in RULES:
        try:
            produced = rule(orders, snapshot, policy)
        except Exception:
            log.exception("rule failed", extra={"fields": {"rule": rule.__name__}})
            findings.append(_could_not_run(topic, rule))
            continue
        for finding in produced:
            indicator = policy.indicator(finding.rule_id, finding.indicator)
            if indicator != "off":
                findings.append(dataclasses.replace(finding, topic=topic, indicator=indicator))
    return findings

"""Digoxin, clonidine, epinephrine and norepinephrine (label 7.4, 7.6)."""

from cds_service.findings import Finding
from cds_service.rules.wording import describe_use

SECTION = "Savella PI §7.4 Epinephrine and norepinephrine; §7.6 Digoxin and clonidine"
PARENTERAL_ROUTES = {"intravenous", "injectable"}


def _is_emergency_epinephrine(use) -> bool:
    """PRN, an auto-injector (product or words), or combined with a local anaesthetic (kb §1f C4: never discourage these)."""
    return (use.as_needed or "auto-injector" in (use.dose_form or "") or "epinephrine_auto_injector" in use.forms
            or use.ingredient_count > 1)


def cardiovascular_interaction(orders, snapshot, policy):
    """C1 IV digoxin and C4 scheduled catecholamines (warning); C2 oral digoxin, C3 clonidine, C4p PRN epinephrine (info)."""
    findings = []
    for use in snapshot.medications_in("digoxin", "clonidine", "catecholamine"):
        if not use.is_current:
            continue
        line = describe_use(use, snapshot.now)
        if use.group == "digoxin" and use.routes & PARENTERAL_ROUTES:
            findings.append(Finding("warning",
                                    "IV digoxin is active: avoid with milnacipran (postural hypotension, tachycardia).",
                                    line, SECTION, rule_id="C1"))
        elif use.group == "digoxin":
            findings.append(Finding("info", "Digoxin is active: milnacipran may add to its haemodynamic effects; monitor.",
                                    line, SECTION, rule_id="C2"))
        elif use.group == "clonidine":
            findings.append(Finding("info", "Clonidine is active: milnacipran may blunt its antihypertensive effect; monitor BP.",
                                    line, SECTION, rule_id="C3"))
        elif use.ingredient.name == "epinephrine" and _is_emergency_epinephrine(use):
            findings.append(Finding("info", "Epinephrine (PRN or local) on record: paroxysmal hypertension possible; "
                                    "never withhold it for anaphylaxis.", line, SECTION, rule_id="C4p"))
        else:
            findings.append(Finding("warning", f"{use.ingredient.name.capitalize()} is active: paroxysmal hypertension and "
                                    "arrhythmia possible with milnacipran. Monitor closely.", line, SECTION, rule_id="C4"))
    return findings


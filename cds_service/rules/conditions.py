"""Label precautions that follow from the problem list alone: seizure, mania, angle closure.

Each is one category of conditions.csv, one card topic, one label section. These categories are
"history-of" (code-families.md §5): an inactive, remitted or resolved record counts too, and the
card then says "History of".
"""

from cds_service.findings import Finding
from cds_service.rules.wording import bullet_list
from cds_service.snapshot.problem_list import history_only


def condition_summary(found, concept: str, advice: str) -> str:
    """'Bipolar disorder or mania: ...', or 'History of bipolar disorder or mania: ...' when none is active."""
    if history_only(found):
        return f"History of {concept[0].lower()}{concept[1:]}: {advice}"
    return f"{concept}: {advice}"


def precaution(category: str, indicator: str, concept: str, advice: str, section: str):
    """A rule that fires when the problem list holds a condition of ``category``."""
    def check(orders, snapshot, policy):
        found = snapshot.conditions_in(category)
        if not found:
            return []
        return [Finding(indicator, condition_summary(found, concept, advice), bullet_list([str(c) for c in found]),
                        section)]
    check.__name__ = category
    check.__doc__ = f"A {category} condition ({indicator})."
    return check


seizure = precaution(
    "seizure", "info", "Seizure disorder", "prescribe milnacipran with care.",
    "Savella PI §5.5 Seizures")
bipolar_mania = precaution(
    "bipolar_mania", "warning", "Bipolar disorder or mania",
    "milnacipran may activate mania or hypomania. Screen and use cautiously.",
    "Savella PI §5.10 Activation of mania")
angle_closure_glaucoma = precaution(
    "angle_closure_glaucoma", "warning", "Angle-closure glaucoma or narrow angles",
    "pupil dilation may trigger an attack. Check for a patent iridectomy.",
    "Savella PI §5.12 Angle-closure glaucoma")

"""Label precautions that follow from the problem list alone: alcohol, seizure, mania, angle closure.

Each is one category of conditions.csv, one card topic, one label section.
"""

from cds_service.findings import Finding
from cds_service.rules.wording import bullet_list


def precaution(category: str, indicator: str, summary: str, section: str):
    """A rule that fires when the problem list holds a condition of ``category``."""
    def check(orders, snapshot, policy):
        found = snapshot.conditions_in(category)
        if not found:
            return []
        return [Finding(indicator, summary, bullet_list([str(c) for c in found]), section)]
    check.__name__ = category
    check.__doc__ = f"A {category} condition ({indicator})."
    return check


alcohol_use_disorder = precaution(
    "alcohol_use_disorder", "warning",
    "Alcohol use disorder: milnacipran should ordinarily not be prescribed with substantial alcohol use.",
    "Savella PI §5.6 Hepatotoxicity; §5.13 Concomitant use with alcohol")
seizure = precaution(
    "seizure", "info", "Seizure disorder on the problem list: prescribe milnacipran with care.",
    "Savella PI §5.5 Seizures")
bipolar_mania = precaution(
    "bipolar_mania", "warning",
    "Bipolar disorder or mania: milnacipran may activate mania or hypomania. Screen and use cautiously.",
    "Savella PI §5.10 Activation of mania")
angle_closure_glaucoma = precaution(
    "angle_closure_glaucoma", "warning",
    "Angle-closure glaucoma or narrow angles: pupil dilation may trigger an attack. Check for a patent iridectomy.",
    "Savella PI §5.12 Angle-closure glaucoma")

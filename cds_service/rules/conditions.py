"""Label precautions that follow from the problem list alone: alcohol, seizure, mania, angle closure.

Each is one category of conditions.csv, one card topic, one label section.
"""

from cds_service.findings import Finding
from cds_service.rules.wording import bullet_list

IDS = ("AL1", "SZ1", "BP1", "G1")

# (rule id, condition category, card topic, indicator, summary, label section)
PRECAUTIONS = (
    ("AL1", "alcohol_use_disorder", "alcohol", "warning",
     "Alcohol use disorder: milnacipran should ordinarily not be prescribed with substantial alcohol use.",
     "Savella PI §5.6 Hepatotoxicity; §5.13 Concomitant use with alcohol"),
    ("SZ1", "seizure", "seizure", "info",
     "Seizure disorder on the problem list: prescribe milnacipran with care.",
     "Savella PI §5.5 Seizures"),
    ("BP1", "bipolar_mania", "mania", "warning",
     "Bipolar disorder or mania: milnacipran may activate mania or hypomania. Screen and use cautiously.",
     "Savella PI §5.10 Activation of mania"),
    ("G1", "angle_closure_glaucoma", "angle-closure-glaucoma", "warning",
     "Angle-closure glaucoma or narrow angles: pupil dilation may trigger an attack. Check for a patent iridectomy.",
     "Savella PI §5.12 Angle-closure glaucoma"),
)


def precaution(rule_id, category, indicator, summary, section):
    def check(orders, snapshot, policy):
        found = snapshot.conditions_in(category)
        if not found:
            return []
        return [Finding(indicator, summary, bullet_list([str(c) for c in found]),
                        section, rule_id=rule_id)]
    check.__name__ = category
    check.__doc__ = f"{rule_id}: a {category} condition ({indicator})."
    return check


TOPIC_RULES = tuple((topic, precaution(rule_id, category, indicator, summary, section))
                    for rule_id, category, topic, indicator, summary, section in PRECAUTIONS)

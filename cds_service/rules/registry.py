"""The one rule registry: every rule declared once, keyed by its rule ids.

A ``Rule`` names its card topic, the function that checks it, the rule ids that function may
report, and which of those ids are label contraindications that no site policy may switch off.
The engine runs the table in order; everything else (the ids the policy accepts, the protected
contraindications, the table in ``README.md``) is derived from it or checked against it by a test.
A rule with one id may leave ``Finding.rule_id`` empty: the engine stamps it.
"""

import dataclasses
from collections.abc import Callable
from collections.abc import Mapping

from cds_service.rules import age
from cds_service.rules import alcohol
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


@dataclasses.dataclass(frozen=True)
class Rule:
    topic: str
    check: Callable
    ids: tuple[str, ...]
    contraindications: tuple[str, ...] = ()  # ids that are label contraindications: never "off"
    routine: tuple[str, ...] = ()  # ids that are routine notices of a new start: one combined card

    @property
    def name(self) -> str:
        return self.check.__name__


RULES = (
    Rule("maoi-contraindication", maoi_washout.psychiatric_maoi, ("M1", "M1u"), contraindications=("M1",)),
    Rule("maoi-contraindication", maoi_washout.linezolid_or_intravenous_methylene_blue,
         ("M2", "M2u", "M3", "M3u", "M3o"), contraindications=("M2", "M3")),
    Rule("maoi-contraindication", maoi_washout.other_maoi, ("M4",)),
    Rule("renal-function", renal_function.end_stage_renal_disease, ("R5",), contraindications=("R5",)),
    Rule("renal-function", renal_function.renal_dose_ceiling, ("R2", "R3", "R4", "R4b")),
    Rule("renal-function", renal_function.missing_renal_data, ("R6",)),
    Rule("renal-function", renal_function.stale_or_unstable_renal_data, ("R7",)),
    Rule("serotonin-syndrome", serotonergic_drugs.serotonergic_co_medication, ("S1", "S2", "S3", "S4")),
    Rule("serotonin-syndrome", serotonergic_drugs.recent_fluoxetine, ("S5",)),
    Rule("blood-pressure-heart-rate", blood_pressure.blood_pressure_history, ("V2", "V3")),
    Rule("blood-pressure-heart-rate", blood_pressure.tachycardia, ("V4",)),
    Rule("blood-pressure-heart-rate", blood_pressure.sustained_rise_on_treatment, ("V5",)),
    Rule("blood-pressure-heart-rate", blood_pressure.missing_baseline, ("V1",)),
    Rule("bleeding-risk", bleeding_risk.bleeding_risk, ("B1", "B2", "B3")),
    Rule("cardiovascular-interaction", cardiovascular_drugs.cardiovascular_interaction, ("C1", "C2", "C3", "C4", "C4p")),
    Rule("duplicate-therapy", duplicate_therapy.duplicate_milnacipran, ("D5",)),
    Rule("dose-titration", dose_titration.dose_not_checked, ("D0",)),
    Rule("dose-titration", dose_titration.maximum_daily_dose, ("D1",)),
    Rule("dose-titration", dose_titration.divided_doses, ("D2",)),
    Rule("dose-titration", dose_titration.titration_on_new_start, ("D3",), routine=("D3",)),
    Rule("suicidality", suicidality.suicidality, ("SU1", "SU2"), routine=("SU1",)),
    Rule("age", age.age, ("A1", "A2", "A3"), routine=("A2", "A3")),
    Rule("hepatic", hepatic.liver_disease, ("H1", "H2")),
    Rule("hepatic", hepatic.abnormal_liver_tests, ("H3",)),
    Rule("alcohol", alcohol.alcohol_use, ("AL1", "AL2")),
    Rule("seizure", conditions.seizure, ("SZ1",)),
    Rule("mania", conditions.bipolar_mania, ("BP1",)),
    Rule("angle-closure-glaucoma", conditions.angle_closure_glaucoma, ("G1",)),
    Rule("pregnancy-lactation", pregnancy_lactation.pregnancy_lactation, ("P1", "P2")),
    Rule("hyponatremia", hyponatremia.hyponatremia, ("NA1",)),
    Rule("data-availability", data_availability.unavailable_data, ("DA1",)),
    Rule("data-availability", data_availability.implausible_values, ("DA2",)),
)


def rules_by_id(rules=RULES) -> Mapping[str, Rule]:
    """Rule id -> its rule; an id declared twice is a programming error caught at import."""
    by_id: dict[str, Rule] = {}
    for rule in rules:
        for rule_id in rule.ids:
            if by_id.setdefault(rule_id, rule) is not rule:
                raise ValueError(f"rule id {rule_id} is declared by {by_id[rule_id].name} and {rule.name}")
        if not set(rule.contraindications) | set(rule.routine) <= set(rule.ids):
            raise ValueError(f"{rule.name}: a contraindication or routine id is not among its ids")
    return by_id


RULES_BY_ID = rules_by_id()
# topics with a label contraindication: their cards may cancel the order
CONTRAINDICATION_TOPICS = frozenset(rule.topic for rule in RULES if rule.contraindications)
# the routine notices of a new start, in the order the combined card names them
ROUTINE_NOTICES = tuple(rule_id for rule in RULES for rule_id in rule.routine)
# rule id -> whether it is a label contraindication (what the site policy validates against)
RULE_CATALOGUE = {rule_id: rule_id in rule.contraindications for rule_id, rule in RULES_BY_ID.items()}

"""The names other systems depend on: the two CDS services and the card topic vocabulary.

Service ids, hooks and topic codes are the contract of ``shared/design.md``; they live only here,
below every pipeline stage, so that the policy, the rules and the cards read one vocabulary.
"""

import dataclasses


@dataclasses.dataclass(frozen=True)
class Service:
    id: str
    hook: str
    title: str
    description: str


SERVICES = (
    Service("milnacipran-order-select", "order-select", "Milnacipran order check (select)",
            "Checks a newly selected milnacipran (Savella) order against the prescribing information: "
            "MAOI and other interacting drugs, conditions, renal function and blood pressure history."),
    Service("milnacipran-order-sign", "order-sign", "Milnacipran order check (sign)",
            "Checks a milnacipran (Savella) order before signature: renal dose ceiling (Cockcroft-Gault CrCl), "
            "MAOI washout, serotonergic and bleeding interactions, BP/HR, dose and titration, label precautions."),
)
SERVICES_BY_ID = {service.id: service for service in SERVICES}

INDICATORS = ("info", "warning", "critical")  # least to most urgent
SUMMARY_LIMIT = 139  # a card summary is under 140 characters (CDS Hooks 2.0)

TOPIC_SYSTEM = "urn:milnacipran-cds:card-topic"
TOPICS = {
    "renal-function": "Renal function",
    "maoi-contraindication": "MAOI contraindication",
    "serotonin-syndrome": "Serotonin syndrome",
    "bleeding-risk": "Bleeding risk",
    "cardiovascular-interaction": "Cardiovascular interaction",
    "blood-pressure-heart-rate": "Blood pressure and heart rate",
    "dose-titration": "Dose and titration",
    "duplicate-therapy": "Duplicate therapy",
    "age": "Age",
    "suicidality": "Suicidality",
    "hepatic": "Hepatic",
    "alcohol": "Alcohol",
    "pregnancy-lactation": "Pregnancy and lactation",
    "seizure": "Seizure",
    "mania": "Mania",
    "angle-closure-glaucoma": "Angle-closure glaucoma",
    "hyponatremia": "Hyponatremia",
    "data-availability": "Data availability",
}

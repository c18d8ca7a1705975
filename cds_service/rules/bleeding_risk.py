"""Increased risk of bleeding (label 5.9, 2023): anticoagulants, antiplatelets, NSAIDs, aspirin."""

from cds_service.fhir.dates import show_date
from cds_service.findings import Finding
from cds_service.rules.wording import bullet_list
from cds_service.rules.wording import describe_use
from cds_service.rules.wording import summary_naming

SECTION = "Savella PI §5.9 Increased risk of bleeding"
NON_SYSTEMIC_ROUTES = {"topical", "ophthalmic"}  # kb §0.5 Decision 7


def _latest_inr(snapshot) -> str:
    latest = next(iter(snapshot.labs.get("inr", ())), None)
    return f" Latest INR {latest.value:g} ({show_date(latest.when)})." if latest and latest.when else " No INR on record."


def bleeding_risk(orders, snapshot, policy):
    """B1/B2 (warning) and B3: systemic NSAID or aspirin, info unless B1/B2, age >= 65 or a bleeding disorder.

    Not counted: topical NSAIDs (by route, or by the words of a text-only medication: gel, cream, patch,
    ...) and heparin flushes or catheter locks (forms.json), which are not anticoagulation.
    """
    anticoagulants = [u for u in snapshot.medications_in("anticoagulant")
                      if u.is_current and "heparin_flush_lock" not in u.forms]
    antiplatelets = [u for u in snapshot.medications_in("antiplatelet") if u.is_current]
    nsaids = [u for u in snapshot.medications_in("nsaid", "aspirin")
              if u.is_current and not (u.routes and u.routes <= NON_SYSTEMIC_ROUTES) and "topical_nsaid" not in u.forms]
    if not (anticoagulants or antiplatelets or nsaids):
        return []
    factors = [str(c) for c in snapshot.conditions_in("bleeding_disorder")]
    if snapshot.age is not None and snapshot.age >= policy.threshold("elderly_age"):
        factors.append(f"age {snapshot.age}")
    lines = [describe_use(u, snapshot.now) for u in anticoagulants + antiplatelets + nsaids]
    if factors:
        lines.append("Added risk: " + "; ".join(factors))
    names = [u.ingredient.name for u in anticoagulants + antiplatelets + nsaids]
    elderly = f" at age {snapshot.age}" if f"age {snapshot.age}" in factors else ""
    rule_id = "B1" if anticoagulants else "B2" if antiplatelets else "B3"
    serious = anticoagulants or antiplatelets or factors
    detail = ("Drugs that interfere with serotonin reuptake raise bleeding risk, more so with aspirin, NSAIDs, "
              "warfarin and other anticoagulants (events range from ecchymosis to life-threatening haemorrhage)."
              + (" Monitor INR and for bleeding." + _latest_inr(snapshot)
                 if any(u.ingredient.name == "warfarin" for u in anticoagulants) else "")
              + "\n\n" + bullet_list(lines))
    return [Finding("warning" if serious else "info",
                    summary_naming(f"Bleeding risk with {{names}}{elderly}: monitor for bleeding"
                                   + (" and INR." if "warfarin" in names else "."), names),
                    detail, SECTION, rule_id=rule_id)]


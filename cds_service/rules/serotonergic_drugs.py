"""Other serotonergic drugs (label 5.2, 7): one card listing every co-medication, with status and dates."""

import datetime

from cds_service.findings import Finding
from cds_service.rules.wording import bullet_list
from cds_service.rules.wording import describe_use
from cds_service.rules.wording import summary_naming

SECTION = "Savella PI §5.2 Serotonin syndrome; §7 Drug interactions"
LABEL_LIST_GROUPS = ("triptan", "tca", "serotonergic_opioid", "other_serotonergic", "amphetamine")
REUPTAKE_INHIBITOR_GROUPS = ("ssri", "snri")


def serotonergic_co_medication(orders, snapshot, policy):
    """S1–S4: active serotonergic drugs (the 2023 label list, SSRIs/SNRIs, tapentadol, clomipramine)."""
    uses = [u for u in snapshot.medications_in(*LABEL_LIST_GROUPS, *REUPTAKE_INHIBITOR_GROUPS) if u.is_current]
    if not uses:
        return []
    names = sorted({u.ingredient.name for u in uses})
    lines = [describe_use(u, snapshot.now) for u in uses]
    if "clomipramine" in names:
        lines.append("Clomipramine: switching to milnacipran was followed by euphoria and postural hypotension "
                     "(label §7.5).")
    rule_id = "S4" if "clomipramine" in names else "S3" if names == ["tapentadol"] else \
        "S2" if all(u.group in REUPTAKE_INHIBITOR_GROUPS for u in uses) else "S1"
    summary = summary_naming("Serotonin syndrome risk with {names}: counsel the patient and monitor closely.", names)
    return [Finding("warning", summary,
                    "Concomitant serotonergic drugs raise the risk of serotonin syndrome. If co-use is clinically "
                    "warranted (e.g. a planned cross-taper), counsel the patient and monitor.\n\n" + bullet_list(lines),
                    SECTION, rule_id=rule_id)]


def recent_fluoxetine(orders, snapshot, policy):
    """S5: fluoxetine stopped within ~5 weeks (long half-life); not a label statement (info)."""
    days = policy.threshold("fluoxetine_recent_stop_days")
    uses = [u for u in snapshot.medications_in("ssri") if u.ingredient.name == "fluoxetine"
            and u.status == "stopped" and u.stopped_at and snapshot.now - u.stopped_at < datetime.timedelta(days=days)]
    if not uses:
        return []
    return [Finding("info", "Fluoxetine stopped within 5 weeks: its long half-life may still add serotonergic effect.",
                    bullet_list([describe_use(u, snapshot.now) for u in uses]), SECTION, rule_id="S5")]


"""Suicidality (boxed warning, label 5.1): every new start, and a history of suicidal ideation or attempt."""

from cds_service.findings import Finding
from cds_service.rules.new_start import is_new_start
from cds_service.rules.wording import bullet_list

SECTION = "Savella PI Boxed warning; §5.1 Suicidality and antidepressant drugs"


def suicidality(orders, snapshot, policy):
    """SU2 history of suicidality (warning); SU1 any new start (info, not on renewals)."""
    history = snapshot.conditions_in("suicidality")
    if history:
        summary = ("Suicidal ideation or behaviour on the problem list: assess current risk; monitor closely."
                   if any(condition.active for condition in history) else
                   "History of suicidal ideation or attempt: monitor closely for worsening and suicidality.")
        return [Finding("warning", summary,
                        "Antidepressants increase suicidal thinking and behaviour; prescribe the smallest practical "
                        "quantity.\n\n" + bullet_list([str(c) for c in history]),
                        SECTION, rule_id="SU2")]
    if is_new_start(snapshot, policy):
        return [Finding("info", "New start: watch for clinical worsening and suicidality, especially early and at dose changes.",
                        "Boxed warning: monitor all patients for worsening, suicidality and unusual changes in behaviour; "
                        "prescribe the smallest practical quantity.", SECTION, rule_id="SU1",
                        brief="watch for suicidality (boxed warning)")]
    return []


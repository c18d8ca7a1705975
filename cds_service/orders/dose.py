"""Dose in mg from an R4 ``dosageInstruction``: mg per dose, doses per day, mg per day.

A dose is derived only from structured data: ``doseAndRate[].doseQuantity`` in mg (or g), or
in tablets times the product's strength (a ``doseRange`` counts at its high end, the dose the
order allows); frequency from ``timing.repeat`` (frequency per period, or the number of
``when`` times a day) or a common timing code. Instructions with the same ``sequence`` (or
none) are taken together, as FHIR means them: 100 mg in the morning and 100 mg at bedtime is
200 mg/day. Anything else (free-text sigs, mL of an unknown solution) is unknown, never guessed.
"""

import dataclasses
from collections.abc import Mapping

from cds_service.fhir.read import child
from cds_service.fhir.read import items
from cds_service.fhir.read import number
from cds_service.fhir.read import text
from cds_service.fhir.vocabulary import DAY
from cds_service.fhir.vocabulary import MASS_MG
from cds_service.fhir.vocabulary import TABLETS
from cds_service.fhir.vocabulary import TIME

# HL7 v3 GTSAbbreviation codes and the usual sig abbreviations.
DOSES_PER_DAY_BY_CODE = {
    "QD": 1, "DAILY": 1, "QDAY": 1, "AM": 1, "PM": 1, "QAM": 1, "QPM": 1, "QHS": 1, "HS": 1,
    "BID": 2, "Q12H": 2, "TID": 3, "Q8H": 3, "QID": 4, "Q6H": 4, "Q4H": 6, "QOD": 0.5, "Q48H": 0.5,
}


@dataclasses.dataclass(frozen=True)
class DoseStep:
    """One dosage instruction: how much per dose and how often, each possibly unknown."""

    mg_per_dose: float | None       # the largest single dose
    doses_per_day: float | None
    sequence: int | None
    mg_per_day: float | None = None

    def __post_init__(self):
        if self.mg_per_day is None and self.mg_per_dose is not None and self.doses_per_day is not None:
            object.__setattr__(self, "mg_per_day", self.mg_per_dose * self.doses_per_day)

    def describe(self) -> str:
        """e.g. '50 mg twice a day (100 mg/day)'."""
        dose = f"{_number(self.mg_per_dose)} mg" if self.mg_per_dose is not None else "dose not stated"
        if self.mg_per_day is not None and self.doses_per_day and self.mg_per_dose is not None \
                and self.mg_per_day != self.mg_per_dose * self.doses_per_day:
            dose = f"up to {dose} a dose,"  # unequal doses taken together
        if self.doses_per_day is None:
            return f"{dose}, frequency not stated"
        return f"{dose} {_frequency_words(self.doses_per_day)} ({_number(self.mg_per_day)} mg/day)" \
            if self.mg_per_day is not None else f"{dose} {_frequency_words(self.doses_per_day)}"


@dataclasses.dataclass(frozen=True)
class Dosing:
    """All dosage instructions of one order, in sequence order."""

    steps: tuple[DoseStep, ...]

    @property
    def daily_doses_mg(self) -> tuple[float, ...]:
        return tuple(step.mg_per_day for step in self.steps if step.mg_per_day is not None)

    @property
    def max_daily_mg(self) -> float | None:
        return max(self.daily_doses_mg, default=None)

    @property
    def maintenance(self) -> DoseStep | None:
        """The last step: the dose the order settles on."""
        return self.steps[-1] if self.steps else None

    @property
    def is_titrated(self) -> bool:
        """More than one step with rising daily doses, as in a titration sig."""
        daily = self.daily_doses_mg
        return len(daily) > 1 and daily[0] < daily[-1]

    def describe(self) -> str:
        return "; then ".join(step.describe() for step in self.steps)


def _number(value: float | None) -> str:
    return f"{value:g}" if value is not None else "?"


def _frequency_words(per_day: float) -> str:
    words = {1: "once a day", 2: "twice a day", 3: "three times a day", 4: "four times a day"}
    return words.get(per_day, f"{_number(per_day)} times a day")


def _quantity_in_mg(quantity: Mapping, strength_mg: float | None) -> float | None:
    value = number(quantity, "value")
    if value is None:
        return None
    for unit in filter(None, (text(quantity, "code"), text(quantity, "unit"))):
        unit = unit.strip().lower()
        if unit in MASS_MG:
            return value * MASS_MG[unit]
        if unit in TABLETS:
            return value * strength_mg if strength_mg else None
    return None


def _dose_quantity(instruction: Mapping) -> Mapping:
    for dose_and_rate in items(instruction, "doseAndRate"):
        if child(dose_and_rate, "doseQuantity"):
            return child(dose_and_rate, "doseQuantity")
        if child(child(dose_and_rate, "doseRange"), "high"):
            return child(child(dose_and_rate, "doseRange"), "high")
    return child(instruction, "doseQuantity")  # STU3 shape, still sent by some clients


def doses_per_day(timing: Mapping) -> float | None:
    """Doses a day from ``timing.repeat`` (frequency per period) or a common timing code; None if unstated."""
    per_day = _doses_per_day_from_repeat(child(timing, "repeat"))
    if per_day is not None:
        return per_day
    code = child(timing, "code")
    for candidate in [text(c, "code") for c in items(code, "coding")] + [text(code, "text")]:
        if candidate and candidate.strip().upper() in DOSES_PER_DAY_BY_CODE:
            return float(DOSES_PER_DAY_BY_CODE[candidate.strip().upper()])
    return None


def _doses_per_day_from_repeat(repeat: Mapping) -> float | None:
    times = repeat.get("when") or repeat.get("timeOfDay")
    times_a_day = len(times) if isinstance(times, list) and times else None
    period, unit = number(repeat, "period"), text(repeat, "periodUnit")
    if period is None and unit in TIME:
        period = 1.0  # "2 per day" written without the 1
    if period is None or period <= 0 or unit not in TIME:
        return float(times_a_day) if times_a_day else None  # ["MORN", "EVE"]: times of day, so per day
    frequency = number(repeat, "frequency")
    if frequency is None or frequency <= 0:
        frequency = times_a_day or 1
    return frequency / (period * (TIME[unit] / DAY))


def _together(lines: list[DoseStep]) -> DoseStep:
    """Instructions given at the same time (same sequence): largest dose, doses and mg added up."""
    if len(lines) == 1:
        return lines[0]
    known = all(line.mg_per_day is not None for line in lines)
    return DoseStep(
        mg_per_dose=max((line.mg_per_dose for line in lines if line.mg_per_dose is not None), default=None),
        doses_per_day=sum(line.doses_per_day for line in lines) if all(line.doses_per_day for line in lines) else None,
        sequence=lines[0].sequence,
        mg_per_day=sum(line.mg_per_day for line in lines) if known else None,
    )


def extract_dosing(medication_request: Mapping, strength_mg: float | None) -> Dosing | None:
    """The order's dosing, or None when it has no dosage instruction at all."""
    instructions = items(medication_request, "dosageInstruction")
    if not instructions:
        return None
    steps = [
        DoseStep(
            mg_per_dose=_quantity_in_mg(_dose_quantity(instruction), strength_mg),
            doses_per_day=doses_per_day(child(instruction, "timing")),
            sequence=int(number(instruction, "sequence")) if number(instruction, "sequence") is not None else None,
        )
        for instruction in instructions
    ]
    by_sequence: dict[int | None, list[DoseStep]] = {}
    for step in steps:
        by_sequence.setdefault(step.sequence, []).append(step)
    ordered = sorted(by_sequence.items(), key=lambda item: item[0] if item[0] is not None else 0)
    return Dosing(tuple(_together(lines) for _, lines in ordered))

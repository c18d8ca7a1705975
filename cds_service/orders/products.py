"""Which listed ingredients a FHIR medication names, and by which route it is given.

Matching goes by RxNorm code first (milnacipran codes, ingredient RxCUIs, then product RxCUIs
from the product table), and falls back to ingredient names in the text only when no code
matched, for EHRs that send local codes or free text. A milnacipran known only by its text or its
ingredient, brand or dose-form code takes its tablet strength from the words ("SAVELLA 100 MG TABLET"), when they
name exactly one listed strength, and is a titration pack when they say so. ``medicationReference`` is resolved to
a contained Medication or another known Medication (Bundle entry, prefetch, FHIR read).
"""

import dataclasses
import re
from collections.abc import Mapping

from cds_service.fhir.read import child
from cds_service.fhir.read import items
from cds_service.fhir.read import text
from cds_service.fhir.vocabulary import code_system
from cds_service.knowledge import Ingredient
from cds_service.knowledge import Knowledge

MILNACIPRAN_RXCUI = "588250"  # ingredient, kb §3.1 [D]
# Route words in an order's dosage route (text, display or code), mapped to the rules' route
# names. Words are matched, not SNOMED codes: route codes are not in the knowledge reference.
ROUTE_WORDS = (
    ("intravenous", "intravenous"), ("iv", "intravenous"), ("intramuscular", "intramuscular"),
    ("im", "intramuscular"), ("subcutaneous", "subcutaneous"), ("intradermal", "local injection"),
    ("infiltration", "local injection"), ("transdermal", "transdermal"), ("topical", "topical"),
    ("cutaneous", "topical"), ("ophthalmic", "ophthalmic"), ("oral", "oral"), ("by mouth", "oral"),
    ("po", "oral"), ("nasal", "nasal"), ("rectal", "rectal"),
)
ROUTE_PATTERN = re.compile(r"\b(" + "|".join(re.escape(word) for word, _ in ROUTE_WORDS) + r")\b")
ROUTE_BY_WORD = dict(ROUTE_WORDS)
# Dose-form words in a medication's name, for a product route when no code gave one
# ("selegiline 5 mg capsule" is oral; "... 6 mg/24 hr patch" transdermal).
FORM_WORDS = (
    ("tablet", "oral"), ("tab", "oral"), ("tabs", "oral"), ("capsule", "oral"), ("cap", "oral"), ("caps", "oral"),
    ("odt", "oral"), ("oral", "oral"), ("by mouth", "oral"), ("patch", "transdermal"), ("transdermal", "transdermal"),
    ("injection", "injectable"), ("injectable", "injectable"), ("vial", "injectable"), ("infusion", "injectable"),
    ("iv", "injectable"),
)
FORM_PATTERN = re.compile(r"\b(" + "|".join(re.escape(word) for word, _ in FORM_WORDS) + r")\b")
FORM_BY_WORD = dict(FORM_WORDS)


# A strength in a medication's name or text: "SAVELLA 100 MG TABLET", "milnacipran 50mg tab". Not a
# concentration or a daily amount ("10 mg/mL", "100 mg/day"), which are not a tablet strength.
STRENGTH_PATTERN = re.compile(
    r"(?<![\d.])(\d+(?:\.\d+)?)\s*(?:mg|milligrams?)\b(?!\s*/\s*(?:ml|l|dl|day|d|kg|m2|24|hr|h|dose)\b)", re.IGNORECASE)
TITRATION_PACK_PATTERN = re.compile(r"\b(titration|starter|initiation)\b", re.IGNORECASE)


def strength_from_text(text: str, strengths: set[float]) -> float | None:
    """The one milnacipran tablet strength a text names, when it names exactly one of ``strengths``."""
    found = {float(value) for value in STRENGTH_PATTERN.findall(text or "")}
    return found.pop() if len(found) == 1 and found <= strengths else None


def route_from_name(name: str) -> str | None:
    """The route a medication's name implies by its dose-form words, when they all agree."""
    routes = {FORM_BY_WORD[word] for word in FORM_PATTERN.findall(name.lower())}
    return routes.pop() if len(routes) == 1 else None


@dataclasses.dataclass(frozen=True)
class MedicationMatch:
    """One listed ingredient found in a medication, with what is known of the product."""

    ingredient: Ingredient
    route_hint: str | None      # from the product table: oral, injectable, transdermal, ...
    rxcui: str | None           # the code that matched; None for a text match
    strength_mg: float | None   # milnacipran tablets only
    titration_pack: bool = False
    strength_in_words: bool = False     # the strength was read from the medication's name or text


@dataclasses.dataclass(frozen=True)
class Medication:
    """What a resource's medication[x] says: codings, display text and the matches."""

    display: str
    matches: tuple[MedicationMatch, ...]
    unresolved_reference: str | None = None     # a medicationReference nobody could resolve


class MedicationMatcher:
    """Built once per knowledge version; identifies medications in FHIR resources."""

    TEXT_CACHE_SIZE = 4096  # distinct medication texts remembered (drug names repeat across charts)

    def __init__(self, knowledge: Knowledge):
        self.knowledge = knowledge
        self._text_cache: dict[str, tuple[MedicationMatch, ...]] = {}

    def identify(self, resource: Mapping, known_medications: Mapping[str, Mapping] = {}) -> Medication:
        """The medication of a MedicationRequest/Statement/Order, resolving references."""
        concepts, display = self._concepts(resource, known_medications)
        matches = self._coded_matches(concepts)
        if not matches or any(_strength_unknown(match) for match in matches):  # the words are read only then
            words = " ".join([display] + [t for c in concepts for t in _concept_texts(c)])
            matches = [self._with_strength_from_text(match, words) for match in matches or self._text_matches(words)]
        reference = text(child(resource, "medicationReference"), "reference")
        unresolved = reference if reference and not concepts and not child(resource, "medicationCodeableConcept") else None
        return Medication(display or "unnamed medication", tuple(matches), unresolved if not matches else None)

    def _concepts(self, resource: Mapping, known: Mapping[str, Mapping]) -> tuple[list[Mapping], str]:
        concept = child(resource, "medicationCodeableConcept")
        if concept:
            return [concept], _concept_text(concept)
        reference = child(resource, "medicationReference")
        display = text(reference, "display") or ""
        medication = _resolve(text(reference, "reference"), resource, known)
        if medication is None:
            return [], display
        concepts = [child(medication, "code")] + [child(item, "itemCodeableConcept") for item in items(medication, "ingredient")]
        concepts = [c for c in concepts if c]
        return concepts, display or (_concept_text(concepts[0]) if concepts else "")

    def _coded_matches(self, concepts: list[Mapping]) -> list[MedicationMatch]:
        matches = []
        for code in _rxnorm_codes(concepts):
            milnacipran = self.knowledge.milnacipran_codes.get(code)
            if milnacipran is not None:
                matches.append(MedicationMatch(self.knowledge.ingredients[MILNACIPRAN_RXCUI], "oral", code,
                                               milnacipran.strength_mg, milnacipran.titration_pack))
            elif code in self.knowledge.ingredients:
                matches.append(MedicationMatch(self.knowledge.ingredients[code], None, code, None))
            else:
                matches.extend(MedicationMatch(item.ingredient, item.route_hint, code, None)
                               for item in self.knowledge.product_ingredients.get(code, ()))
        return matches

    def _with_strength_from_text(self, match: MedicationMatch, words: str) -> MedicationMatch:
        """A milnacipran known by text, or by a code without a strength (ingredient, brand, dose form): its strength
        (or titration pack) from the words. A coded tablet or pack keeps what its code says."""
        if not _strength_unknown(match):
            return match
        if TITRATION_PACK_PATTERN.search(words):
            return dataclasses.replace(match, titration_pack=True)
        strengths = {code.strength_mg for code in self.knowledge.milnacipran_codes.values() if code.strength_mg}
        strength = strength_from_text(words, strengths)
        return dataclasses.replace(match, strength_mg=strength, strength_in_words=True) if strength is not None else match

    def _text_matches(self, text: str) -> list[MedicationMatch]:
        """Ingredients named in ``text``; the regular-expression search runs once per distinct text."""
        found = self._text_cache.get(text)
        if found is None:
            found = tuple(MedicationMatch(ingredient, route, None, None)
                          for ingredient, route in self.knowledge.ingredients_in_text(text))
            if len(self._text_cache) >= self.TEXT_CACHE_SIZE:
                self._text_cache.clear()  # bounded; a thread racing this only recomputes
            self._text_cache[text] = found
        return list(found)


def _strength_unknown(match: MedicationMatch) -> bool:
    """A milnacipran whose code gives neither a tablet strength nor a titration pack."""
    return match.ingredient.rxcui == MILNACIPRAN_RXCUI and match.strength_mg is None and not match.titration_pack


def _concept_texts(concept: Mapping) -> list[str]:
    """The concept's text and every coding's display (local codes often carry the drug name there)."""
    return [t for t in [text(concept, "text")] + [text(c, "display") for c in items(concept, "coding")] if t]


def _concept_text(concept: Mapping) -> str:
    """The first of ``_concept_texts``, the others unread."""
    return text(concept, "text") or next(filter(None, (text(c, "display") for c in items(concept, "coding"))), "")


def _rxnorm_codes(concepts: list[Mapping]) -> list[str]:
    return [text(coding, "code").strip() for concept in concepts for coding in items(concept, "coding")
            if code_system(text(coding, "system")) == "rxnorm" and text(coding, "code")]


def _resolve(reference: str | None, resource: Mapping, known: Mapping[str, Mapping]) -> Mapping | None:
    if reference is None:
        return None
    if reference.startswith("#"):
        return next((c for c in items(resource, "contained") if c.get("id") == reference[1:]), None)
    reference = reference.split("/_history/", 1)[0]
    return known.get(reference) or known.get("/".join(reference.rsplit("/", 2)[-2:]))


def order_route(resource: Mapping) -> str | None:
    """The route an order or statement names in its dosage, as a rule route name."""
    for dosage in items(resource, "dosageInstruction") + items(resource, "dosage"):
        route = child(dosage, "route")
        words = [text(route, "text")] + [text(coding, key) for coding in items(route, "coding") for key in ("display", "code")]
        routes = [ROUTE_BY_WORD[found] for word in filter(None, words) for found in ROUTE_PATTERN.findall(word.lower())]
        if routes:  # "IM/IV": any IV mention wins, the conservative reading for the IV-only contraindications
            return "intravenous" if "intravenous" in routes else routes[0]
    return None


def medication_index(entries: list[Mapping]) -> dict[str, Mapping]:
    """Medication resources of Bundle entries, keyed by ``Medication/id`` and by fullUrl."""
    index = {}
    for entry in entries:
        resource = child(entry, "resource")
        if text(resource, "resourceType") != "Medication":
            continue
        if text(resource, "id"):
            index[f"Medication/{resource['id']}"] = resource
        if text(entry, "fullUrl"):
            index[entry["fullUrl"]] = resource
    return index

"""Versioned clinical knowledge for the milnacipran (Savella) order checks.

The data files next to this module are built from
``shared/reference/milnacipran-knowledge.md`` (the "kb"), its addendum and
``shared/reference/rxnorm-products.csv``.  Every row keeps the kb's source
key(s) in a ``source`` column/field; ``sources.json`` maps each key to its
citation.  Codes the kb still marks NOT VERIFIED (SNOMED 82313006, St John's
wort extract RxCUI 258326) are deliberately absent.

``load_knowledge()`` reads the files once (stdlib csv/json only) and returns a
frozen :class:`Knowledge` holding ready-made indexes, so rules never touch raw
rows.  The app calls it at start-up; ``default_knowledge()`` is a cached
convenience wrapper for the packaged files.

Text matching (``Knowledge.text_names`` / ``ingredients_in_text``):
besides every ingredient name, a few synonyms and brand names that appear in
the reference are listed in ``_TEXT_SYNONYMS``.  Two of them are *text-only
pseudo-ingredients* with ``rxcui == ""``: St John's wort (its RxCUI 258326 is
not verified) and plain "lithium" (RxCUI 6448 is not on the kb list).  Both are
in group ``other_serotonergic`` so rule S1 can fire on free-text medication
entries.  A pseudo-ingredient never appears in ``Knowledge.ingredients``.
"""

from __future__ import annotations

import csv
import functools
import json
import re
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from types import MappingProxyType
from typing import Iterable
from typing import Mapping

from cds_service.fhir.vocabulary import code_system as _norm_system

__all__ = [
    "Ingredient",
    "ProductIngredient",
    "MilnacipranCode",
    "Knowledge",
    "load_knowledge",
    "default_knowledge",
    "source_keys",
]

_DEFAULT_DIR = Path(__file__).resolve().parent

# Leading source keys of a source cell: "D,C,W", "V: v2022/...", "L-RX 2.2",
# "design (kb §2.4)".  Cells may hold several "; "-separated segments.
_KEYS_RE = re.compile(r"^\s*([A-Za-z][A-Za-z0-9-]*(?:\s*,\s*[A-Za-z][A-Za-z0-9-]*)*)")


def source_keys(cell: str) -> tuple[str, ...]:
    """Leading source keys of a source cell (first segment), e.g. "D,C,W" -> ("D", "C", "W")."""
    m = _KEYS_RE.match(cell or "")
    if not m:
        return ()
    return tuple(k.strip() for k in m.group(1).split(","))


@dataclass(frozen=True, slots=True)
class Ingredient:
    rxcui: str  # "" for a text-only pseudo-ingredient
    name: str
    group: str


@dataclass(frozen=True, slots=True)
class ProductIngredient:
    ingredient: Ingredient
    route_hint: str  # oral, injectable, transdermal, topical, ophthalmic, nasal, rectal, other
    dose_form: str  # may be "" where the RxNorm name was truncated
    ingredient_count: int  # all active ingredients of the product (lower bound if name truncated)


@dataclass(frozen=True, slots=True)
class MilnacipranCode:
    rxcui: str
    tty: str
    name: str
    strength_mg: float | None
    titration_pack: bool


# (text, ingredient rxcui or pseudo key) -- source of each synonym in the comment.
_SJW = Ingredient(rxcui="", name="st john's wort", group="other_serotonergic")
_LITHIUM = Ingredient(rxcui="", name="lithium", group="other_serotonergic")
_TEXT_SYNONYMS: tuple[tuple[str, str | Ingredient], ...] = (
    # St John's wort: kb §1d S1 / §3.3 (258326 NOT VERIFIED -> text only); "Hyperici herba" kb §3.2;
    # hypericum extract names kb addendum.
    ("st john's wort", _SJW),
    ("st. john's wort", _SJW),
    ("st johns wort", _SJW),
    ("st. johns wort", _SJW),
    ("saint john's wort", _SJW),
    ("st. john's wort extract", _SJW),
    ("hypericum", _SJW),
    ("hyperici herba", _SJW),
    # lithium 6448 exists in RxNorm but is not on the kb list (kb §3.3 note; RXP limitation 7).
    ("lithium", _LITHIUM),
    # kb §3.3 notes / §3.2 ATC names
    ("mefenamic acid", "257844"),
    ("meclofenamic acid", "588003"),
    ("methylthioninium chloride", "6878"),
    ("dabigatran", "1037042"),
    ("milnacipran hydrochloride", "588250"),
    # brand names that appear in the reference
    ("savella", "588250"),  # kb title, L-DM
    ("ixel", "588250"),  # kb L-IX (non-US)
    ("fetzima", "1433212"),  # kb §1b D5
    ("zoloft", "36437"),  # rxnorm-products.md limitation 2
    ("flector", "3355"),  # rxnorm-products.md route_hint rules (topical patch)
    ("zecuity", "37418"),  # rxnorm-products.md route_hint rules
    ("subsys", "4337"),  # rxnorm-products.md route_hint rules
    ("qdolo", "10689"),  # rxnorm-products.md cross-check
)


def _norm_code(system: str, code: str) -> str:
    code = (code or "").strip()
    if system == "icd10cm":
        return code.replace(".", "").replace(" ", "").upper()
    return code


def _norm_text(text: str) -> str:
    return (text or "").lower().replace("\u2019", "'").replace("\u2018", "'")


@dataclass(frozen=True, eq=False)  # identity hash: usable as a cache key
class Knowledge:
    version: str
    ingredients: Mapping[str, Ingredient]
    product_ingredients: Mapping[str, tuple[ProductIngredient, ...]]
    text_names: Mapping[str, tuple[tuple[Ingredient, str | None], ...]]  # name -> (ingredient, route hint)
    milnacipran_codes: Mapping[str, MilnacipranCode]
    observation_kinds: Mapping[str, str]
    observation_displays: Mapping[str, str]
    egfr_preference: Mapping[str, int]  # 1 = most preferred
    thresholds: Mapping[str, float]   # what a site policy may tune
    constants: Mapping[str, float]    # formula and substance constants (Cockcroft-Gault, IBW, creatinine units): never tuned
    override_reasons: tuple[dict, ...]
    _condition_exact: Mapping[tuple[str, str], str] = field(repr=False)
    _condition_prefix: tuple[tuple[str, str, str], ...] = field(repr=False)  # (system, prefix, category)
    _condition_rows: Mapping[str, tuple[tuple[str, str, str], ...]] = field(repr=False)  # category -> (system, code, match)
    _name_pattern: re.Pattern = field(repr=False, compare=False)

    def condition_category(self, system_uri: str, code: str) -> str | None:
        """Category of a Condition/Procedure coding, or None.

        Accepts FHIR system URIs for SNOMED CT and ICD-10-CM (plus the ICD-10 and
        OID aliases), ICD codes with or without the dot, any case.  Exact codes win
        over prefix (code-family) entries; the longest prefix wins among those.
        """
        system = _norm_system(system_uri)
        if system is None or not code:
            return None
        norm = _norm_code(system, code)
        hit = self._condition_exact.get((system, norm))
        if hit is not None:
            return hit
        for sys_key, prefix, category in self._condition_prefix:
            if sys_key == system and norm.startswith(prefix):
                return category
        return None

    def codes_in_category(self, category: str, system: str = "snomed", *, include_prefixes: bool = False
                          ) -> tuple[str, ...]:
        """Codes of one category as stored (ICD-10-CM dotted), e.g. for prefetch token searches.

        ``system`` is "snomed"/"icd10cm" or a FHIR system URI.  Prefix (code-family)
        rows such as ICD H40.2 are left out unless ``include_prefixes``: a token
        search cannot express them, so match those with :meth:`condition_category`.
        """
        key = _norm_system(system)
        return tuple(code for sys_key, code, match in self._condition_rows.get(category, ())
                     if sys_key == key and (include_prefixes or match == "exact"))

    def loinc_of(self, kind: str) -> str:
        """The first LOINC code of an observation kind in observations.csv (e.g. 2160-0 for creatinine_mass)."""
        return next(code for code, code_kind in self.observation_kinds.items() if code_kind == kind)

    def snomed_codes_in_category(self, category: str) -> tuple[str, ...]:
        """SNOMED CT codes of one category (all SNOMED rows are exact codes)."""
        return self.codes_in_category(category, "snomed")

    def ingredients_in_text(self, text: str) -> tuple[tuple[Ingredient, str | None], ...]:
        """(ingredient, route hint) named in free text, whole words, longest name first, in order of appearance.

        Names are ingredient names, the synonyms above, and the brand names of the product table
        (``[nardil]``), which carry their products' route when all share one (Emsam: transdermal).
        """
        found: dict[Ingredient, str | None] = {}
        for m in self._name_pattern.finditer(_norm_text(text or "")):
            for ing, route in self.text_names[m.group(0)]:
                found.setdefault(ing, route)
        return tuple(found.items())


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _read_json(path: Path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


_BRAND = re.compile(r"\[([a-z][^\]]{4,})\]\s*$")  # "... oral tablet [nardil]": brands of 5+ characters


def _brand_names(product_rows: Iterable[Mapping[str, str]], ingredients: Mapping[str, Ingredient]
                 ) -> dict[str, tuple[tuple[Ingredient, str | None], ...]]:
    """Brand -> its listed ingredients, each with the route hint its products share (None if they differ)."""
    routes: dict[str, dict[Ingredient, set[str]]] = {}
    for row in product_rows:
        match = _BRAND.search(row["product_name"])
        if match:
            brand = re.sub(r"\s+reformulated\b.*$", "", match.group(1))
            routes.setdefault(brand, {}).setdefault(ingredients[row["ingredient_rxcui"]], set()).add(row["route_hint"])
    return {brand: tuple((ing, next(iter(hints)) if len(hints) == 1 else None) for ing, hints in by_ing.items())
            for brand, by_ing in routes.items()}


def _build_names(ingredients: Mapping[str, Ingredient], product_rows: list[Mapping[str, str]]
                 ) -> dict[str, tuple[tuple[Ingredient, str | None], ...]]:
    names: dict[str, tuple[tuple[Ingredient, str | None], ...]] = {
        ing.name.lower(): ((ing, None),) for ing in ingredients.values()}
    for text, target in _TEXT_SYNONYMS:
        names.setdefault(text, ((target if isinstance(target, Ingredient) else ingredients[target], None),))
    for brand, found in _brand_names(product_rows, ingredients).items():
        names.setdefault(brand, found)
    return names


def _name_regex(names: Iterable[str]) -> re.Pattern:
    alternation = "|".join(re.escape(n) for n in names)  # already longest first
    return re.compile(rf"(?<![a-z0-9])(?:{alternation})(?![a-z0-9])")


def load_knowledge(directory: str | Path | None = None) -> Knowledge:
    """Load and index the knowledge files from ``directory`` (default: this package)."""
    d = Path(directory) if directory is not None else _DEFAULT_DIR
    manifest = _read_json(d / "manifest.json")

    ingredients: dict[str, Ingredient] = {}
    for r in _read_csv(d / "ingredients.csv"):
        ingredients[r["rxcui"]] = Ingredient(rxcui=r["rxcui"], name=r["name"], group=r["group"])

    products: dict[str, list[ProductIngredient]] = {}
    product_rows = _read_csv(d / "products.csv")
    for r in product_rows:
        try:
            ing = ingredients[r["ingredient_rxcui"]]
        except KeyError:
            raise ValueError(
                f"products.csv: product {r['product_rxcui']} has unknown ingredient {r['ingredient_rxcui']}"
            ) from None
        products.setdefault(r["product_rxcui"], []).append(
            ProductIngredient(
                ingredient=ing,
                route_hint=r["route_hint"],
                dose_form=r["dose_form"],
                ingredient_count=int(r["ingredient_count"] or 0),
            )
        )

    milnacipran: dict[str, MilnacipranCode] = {}
    for r in _read_csv(d / "milnacipran_codes.csv"):
        milnacipran[r["rxcui"]] = MilnacipranCode(
            rxcui=r["rxcui"],
            tty=r["tty"],
            name=r["name"],
            strength_mg=float(r["strength_mg"]) if r["strength_mg"] else None,
            titration_pack=r["titration_pack"].strip().lower() == "yes",
        )

    kinds: dict[str, str] = {}
    displays: dict[str, str] = {}
    egfr: dict[str, int] = {}
    for r in _read_csv(d / "observations.csv"):
        kinds[r["loinc"]] = r["kind"]
        displays[r["loinc"]] = r["display"]
        if r["egfr_preference"]:
            egfr[r["loinc"]] = int(r["egfr_preference"])

    exact: dict[tuple[str, str], str] = {}
    prefixes: list[tuple[str, str, str]] = []
    by_category: dict[str, list[tuple[str, str, str]]] = {}
    for r in _read_csv(d / "conditions.csv"):
        system, match, category = r["system"], r["match"], r["category"]
        if system not in ("snomed", "icd10cm"):
            raise ValueError(f"conditions.csv: unknown system {system!r} for {r['code']}")
        code = _norm_code(system, r["code"])
        by_category.setdefault(category, []).append((system, r["code"].strip(), match))
        if match == "exact":
            prev = exact.setdefault((system, code), category)
            if prev != category:
                raise ValueError(f"conditions.csv: {system} {r['code']} in both {prev} and {category}")
        elif match == "prefix":
            prefixes.append((system, code, category))
        else:
            raise ValueError(f"conditions.csv: unknown match {match!r} for {r['code']}")
    prefixes.sort(key=lambda p: -len(p[1]))

    raw_thresholds = _read_json(d / "thresholds.json")
    thresholds: dict[str, float] = {}
    constants: dict[str, float] = {}
    for name, spec in raw_thresholds.items():
        value = spec["value"]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"thresholds.json: {name} is not numeric")
        (constants if spec.get("kind") == "constant" else thresholds)[name] = float(value)

    overrides = _read_json(d / "override_reasons.json")
    names = _build_names(ingredients, product_rows)

    return Knowledge(
        version=manifest["version"],
        ingredients=MappingProxyType(ingredients),
        product_ingredients=MappingProxyType({k: tuple(v) for k, v in products.items()}),
        text_names=MappingProxyType(names),
        milnacipran_codes=MappingProxyType(milnacipran),
        observation_kinds=MappingProxyType(kinds),
        observation_displays=MappingProxyType(displays),
        egfr_preference=MappingProxyType(egfr),
        thresholds=MappingProxyType(thresholds),
        constants=MappingProxyType(constants),
        override_reasons=tuple(dict(r) for r in overrides["reasons"]),
        _condition_exact=MappingProxyType(exact),
        _condition_prefix=tuple(prefixes),
        _condition_rows=MappingProxyType({k: tuple(v) for k, v in by_category.items()}),
        _name_pattern=_name_regex(sorted(names, key=lambda name: (-len(name), name))),
    )


@functools.cache
def default_knowledge() -> Knowledge:
    """The packaged knowledge, loaded once per process."""
    return load_knowledge()

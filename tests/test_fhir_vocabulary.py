"""Code systems as EHRs spell them, folded to one short name; units folded to one key."""

import pytest

from cds_service.fhir.vocabulary import _SYSTEM_BY_SPELLING
from cds_service.fhir.vocabulary import code_system
from cds_service.fhir.vocabulary import unit_key


@pytest.mark.parametrize("spelling, name", [
    ("http://loinc.org", "loinc"), ("HTTP://LOINC.ORG/", "loinc"), ("  http://loinc.org/ ", "loinc"),
    ("urn:oid:2.16.840.1.113883.6.1", "loinc"), ("http://www.nlm.nih.gov/research/umls/rxnorm", "rxnorm"),
    ("http://www.cms.gov/Medicare/Coding/ICD10", "icd10pcs"), ("http://hl7.org/fhir/sid/icd-10", "icd10cm"),
    ("SNOMED", "snomed"), ("http://example.org/local", None), ("", None), (None, None), (12, None), (["x"], None),
])
def test_code_system_folds_every_spelling(spelling, name):
    assert code_system(spelling) == name


def test_listed_spellings_are_already_folded():
    """``code_system`` looks a spelling up as sent before folding it: right only if every listed key is folded."""
    assert all(key == key.strip().rstrip("/").lower() for key in _SYSTEM_BY_SPELLING)


@pytest.mark.parametrize("unit, key", [("µmol/L", "umol/l"), ("μmol/L", "umol/l"), ("mL/min/{1.73_m2}", "ml/min/1.73m2"),
                                       (" mg/dL ", "mg/dl"), ("m²", "m2"), ("[lb_av]", "[lbav]")])
def test_unit_key_folds_spellings(unit, key):
    assert unit_key(unit) == key


def test_long_unit_texts_are_folded_but_not_kept():
    """The unit cache is bounded in bytes too: a chart's 100 kB unit texts are not remembered."""
    import gc
    import tracemalloc

    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    keys = [unit_key(f"{n} MG/DL" + "x" * 100_000) for n in range(50)]
    assert keys[0] == "0mg/dl" + "x" * 100_000
    del keys
    gc.collect()
    kept = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert kept < 1_000_000, kept      # remembered, the 50 texts and their keys would hold 10 MB

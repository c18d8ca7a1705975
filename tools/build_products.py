"""Build cds_service/knowledge/products.csv from shared/reference/rxnorm-products.csv.

Usage:  python tools/build_products.py [path/to/rxnorm-products.csv]

Keeps the rows whose ingredient RxCUI is in cds_service/knowledge/ingredients.csv.
Tryptophan (10898) keeps only single-ingredient oral products: rxnorm-products.md
limitation 5 says the parenteral amino-acid / nutrition solutions should not alert.
Every output row gets source "RXP".
"""
import csv
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KNOWLEDGE = ROOT / "cds_service" / "knowledge"
DEFAULT_SRC = ROOT.parent / "shared" / "reference" / "rxnorm-products.csv"
COLUMNS = ["product_rxcui", "product_name", "ingredient_rxcui", "route_hint",
           "dose_form", "ingredient_count", "tty", "source"]
TRYPTOPHAN = "10898"


def keep(row: dict, ingredients: set[str]) -> bool:
    if row["ingredient_rxcui"] not in ingredients:
        return False
    if row["ingredient_rxcui"] == TRYPTOPHAN:
        return row["ingredient_count"] == "1" and row["route_hint"] == "oral"
    return True


def main(src: Path = DEFAULT_SRC) -> int:
    with open(KNOWLEDGE / "ingredients.csv", newline="", encoding="utf-8") as f:
        ingredients = {r["rxcui"] for r in csv.DictReader(f)}
    with open(src, newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if keep(r, ingredients)]
    with open(KNOWLEDGE / "products.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(COLUMNS)
        for r in rows:
            w.writerow([r[c] for c in COLUMNS[:-1]] + ["RXP"])
    print(f"products.csv: {len(rows)} rows")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_SRC))

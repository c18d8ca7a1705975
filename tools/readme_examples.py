"""Rewrite the README's `cds-service evaluate` examples with what the command prints now.

    .venv/bin/python tools/readme_examples.py

Run it after a change to the cards, review the diff of README.md, and commit both;
tests/test_readme.py fails while an example differs from the command's output.
"""

import io
import re
import sys
from contextlib import redirect_stdout
from pathlib import Path

from cds_service.cli import main

README = Path(__file__).resolve().parent.parent / "README.md"
EXAMPLE = re.compile(r"^\$ cds-service evaluate (\S+)\n((?:  .*\n|     .*\n)*)", flags=re.M)


def printed(path: str) -> str:
    out = io.StringIO()
    with redirect_stdout(out):
        main(["evaluate", path])
    return out.getvalue()


def rewrite() -> int:
    text = README.read_text()
    updated = EXAMPLE.sub(lambda m: f"$ cds-service evaluate {m.group(1)}\n{printed(m.group(1))}", text)
    README.write_text(updated)
    print(f"{len(EXAMPLE.findall(text))} examples; README {'changed' if updated != text else 'unchanged'}")
    return 0


if __name__ == "__main__":
    sys.exit(rewrite())

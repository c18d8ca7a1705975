"""Dump the cards every scenario fixture gets through `cds-service evaluate`, uuids masked, to compare two trees.

    python tools/card_diff.py dump OUT.json       # before a change
    python tools/card_diff.py compare OUT.json    # after it: exits 1 and prints the scenarios whose cards changed

Used to show that a refactor left every card (summary, detail, suggestions, override reasons) as it was.
"""

import io
import json
import re
import sys
from contextlib import redirect_stdout
from pathlib import Path

from cds_service.cli import main

SCENARIOS = Path(__file__).resolve().parent.parent / "fixtures" / "scenarios"
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def responses() -> dict[str, object]:
    found = {}
    for path in sorted(SCENARIOS.glob("*.json")):
        out = io.StringIO()
        with redirect_stdout(out):
            main(["evaluate", "--format", "json", str(path)])
        found[path.stem] = json.loads(UUID.sub("<uuid>", out.getvalue()))
    return found


def run(command: str, file: str) -> int:
    if command == "dump":
        Path(file).write_text(json.dumps(responses(), indent=1, sort_keys=True))
        return 0
    before, after = json.loads(Path(file).read_text()), responses()
    changed = sorted(name for name in before.keys() | after.keys() if before.get(name) != after.get(name))
    print(f"{len(after)} scenarios, {len(changed)} changed" + "".join(f"\n  {name}" for name in changed))
    return 1 if changed else 0


if __name__ == "__main__":
    sys.exit(run(*sys.argv[1:3]))

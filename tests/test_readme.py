"""The README stays true: its `evaluate` examples print what the README shows, its policy example loads."""

import json
import sys
from pathlib import Path

import pytest

from cds_service.cli import main
from cds_service.knowledge import default_knowledge
from cds_service.policy import load_policy
from cds_service.rules.registry import CONTRAINDICATION_TOPICS
from cds_service.rules.registry import RULE_CATALOGUE

REPO = Path(__file__).resolve().parent.parent
README = (REPO / "README.md").read_text()
sys.path.insert(0, str(REPO / "tools"))
from readme_examples import EXAMPLE  # noqa: E402  (the tool that rewrites the examples reads them the same way)

EXAMPLES = EXAMPLE.findall(README)


def test_the_readme_shows_evaluate_examples():
    assert len(EXAMPLES) >= 3


@pytest.mark.parametrize("path, shown", EXAMPLES, ids=[path for path, _ in EXAMPLES])
def test_each_evaluate_example_prints_what_the_readme_shows(capsys, monkeypatch, path, shown):
    monkeypatch.chdir(REPO)
    assert main(["evaluate", path]) == 0
    assert capsys.readouterr().out == shown, "run tools/readme_examples.py and review the README diff"


def test_the_readme_policy_example_is_a_policy_the_service_accepts(tmp_path):
    section = README.split("## Site policy", 1)[1].split("\n## ", 1)[0]
    example = json.loads(section.split("```json\n", 1)[1].split("```", 1)[0])
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(example))
    policy = load_policy(str(path), default_knowledge(), RULE_CATALOGUE, CONTRAINDICATION_TOPICS)
    assert policy.routine_notices == "order-select" and policy.indicator("M4", "warning") == "critical"

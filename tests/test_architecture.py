"""The shape of the code: stages that import one way, one rule registry, isolation, and the
"Adding a check" recipe, whose every forgotten step makes one of these tests fail."""

import ast
import hashlib
import inspect
import json
import re
from pathlib import Path

import pytest
from builders import POLICY
from builders import orders
from builders import snapshot
from builders import use

import cds_service
from cds_service.cards import cards_for
from cds_service.findings import Action
from cds_service.findings import Finding
from cds_service.findings import Suggestion
from cds_service.policy import PolicyError
from cds_service.policy import load_policy
from cds_service.rules import maoi_washout
from cds_service.rules.engine import evaluate_rules
from cds_service.rules.registry import RULE_CATALOGUE
from cds_service.rules.registry import RULES
from cds_service.rules.registry import Rule
from cds_service.rules.registry import rules_by_id

PACKAGE = Path(cds_service.__file__).parent
REPO = PACKAGE.parent
KNOWLEDGE = PACKAGE / "knowledge"

# The pipeline's stages, first to last. A module may import from its own stage or an earlier one,
# never from a later one. The drivers at the end (HTTP, the composition root, the command line and
# its tools) sit on top of the pipeline and may import all of it.
STAGES = (
    ("vocabulary", ("cds_service.contract", "cds_service.errors", "cds_service.fhir", "cds_service.settings",
                    "cds_service.logs", "cds_service.metrics")),
    ("knowledge", ("cds_service.knowledge",)),
    ("policy", ("cds_service.policy",)),
    ("auth", ("cds_service.auth",)),
    ("request", ("cds_service.request",)),
    ("orders", ("cds_service.orders",)),
    ("chart", ("cds_service.chart",)),
    ("snapshot", ("cds_service.snapshot",)),
    ("findings", ("cds_service.findings",)),
    ("rules", ("cds_service.rules",)),
    ("cards", ("cds_service.cards",)),
    ("audit", ("cds_service.audit",)),
    ("pipeline", ("cds_service.pipeline",)),
    ("http", ("cds_service.http",)),
    ("drivers", ("cds_service", "cds_service.cli", "cds_service.scenario", "cds_service.gallery",
                 "cds_service.server")),
)


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def stage_of(module: str) -> int:
    matches = [(len(prefix), rank) for rank, (_, prefixes) in enumerate(STAGES) for prefix in prefixes
               if module == prefix or module.startswith(prefix + ".")]
    assert matches, f"{module} belongs to no stage: add it to STAGES (and to the README's map)"
    return max(matches)[1]


def imports_of(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("cds_service"):
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("cds_service")}
    return found


MODULES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=[module_name(p) for p in MODULES])
def test_no_module_imports_from_a_later_stage(path):
    importer = module_name(path)
    for imported in imports_of(path):
        target = imported if (REPO / Path(*imported.split("."))).with_suffix(".py").exists() or \
            (REPO / Path(*imported.split("."))).is_dir() else imported.rsplit(".", 1)[0]
        assert stage_of(target) <= stage_of(importer), \
            f"{importer} ({STAGES[stage_of(importer)][0]}) imports {target} ({STAGES[stage_of(target)][0]}), a later stage"


def test_the_stage_check_catches_a_backward_arrow(tmp_path):
    backward = tmp_path / "rules_module.py"
    backward.write_text("from cds_service.cards.render import render_cards\n")
    assert stage_of("cds_service.cards.render") > stage_of("cds_service.rules.age")
    assert "cds_service.cards.render.render_cards" in imports_of(backward)


def test_the_readme_map_names_every_package_of_the_tree():
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Where things live", 1)[1].split("\n## ", 1)[0]
    named = set(re.findall(r"`cds_service/([a-z_]+)(?:/|\.py)`", section)) - {"__init__"}
    tree = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    tree |= {p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    assert named == tree, f"README map lacks {sorted(tree - named)}, names what is gone {sorted(named - tree)}"


# --- the registry ---------------------------------------------------------------------------------

def test_the_policy_accepts_exactly_the_registered_rule_ids_and_protects_the_contraindications(tmp_path):
    assert set(RULE_CATALOGUE) == {rule_id for rule in RULES for rule_id in rule.ids}
    assert {rule_id for rule_id, protected in RULE_CATALOGUE.items() if protected} == {"M1", "M2", "M3", "R5"}
    path = tmp_path / "policy.json"
    for rule_id in RULE_CATALOGUE:
        path.write_text(json.dumps({"indicators": {rule_id: "off"}}))
        if RULE_CATALOGUE[rule_id]:
            with pytest.raises(PolicyError, match="contraindication cannot be turned off"):
                load_policy(str(path), POLICY.knowledge, RULE_CATALOGUE)
        else:
            assert load_policy(str(path), POLICY.knowledge, RULE_CATALOGUE).indicator(rule_id, "info") == "off"


def test_a_rule_id_declared_twice_is_refused():
    twice = (RULES[0], Rule("age", RULES[0].check, RULES[0].ids[:1]))
    with pytest.raises(ValueError, match="declared by"):
        rules_by_id(twice)


def rule_functions() -> set:
    """Every public function of a rule module with a rule's signature (orders, snapshot, policy)."""
    found = set()
    for path in (PACKAGE / "rules").glob("*.py"):
        module = __import__(f"cds_service.rules.{path.stem}", fromlist=["_"])
        for name, value in vars(module).items():
            if (inspect.isfunction(value) and not name.startswith("_") and getattr(value, "__module__", "") == module.__name__
                    and list(inspect.signature(value).parameters) == ["orders", "snapshot", "policy"]):
                found.add(value)
    return found


def test_every_rule_function_is_registered():
    registered = {rule.check for rule in RULES}
    forgotten = sorted(function.__name__ for function in rule_functions() - registered)
    assert not forgotten, f"rule functions not in rules/registry.py: {forgotten}"


def readme_rule_table() -> set[tuple[str, str, str]]:
    """(module, topic, rule id) of each row of the table in rules/README.md."""
    rows, module, topic = set(), None, None
    for line in (PACKAGE / "rules" / "README.md").read_text().splitlines():
        match = re.match(r"^\| (?:`(\w+)` \(([a-z-]+)\)[^|]*)?\| (\w+) \|", line)
        if match:
            module, topic = (match.group(1), match.group(2)) if match.group(1) else (module, topic)
            rows.add((module, topic, match.group(3)))
    return rows


def test_the_rules_readme_lists_every_registered_rule_with_its_module_and_topic():
    registered = {(rule.check.__module__.rsplit(".", 1)[1], rule.topic, rule_id) for rule in RULES for rule_id in rule.ids}
    table = readme_rule_table()
    assert registered - table == set(), f"missing from rules/README.md: {sorted(registered - table)}"
    assert table - registered == set(), f"in rules/README.md but not registered: {sorted(table - registered)}"


def test_every_rule_id_is_exercised_by_a_test_or_a_scenario():
    sources = [p.read_text() for p in (REPO / "tests").glob("test_*.py") if p.name != "test_architecture.py"]
    sources += [p.read_text() for p in (REPO / "fixtures" / "scenarios").glob("*.json")]
    text = "\n".join(sources)
    untested = sorted(rule_id for rule_id in RULE_CATALOGUE if f'"{rule_id}"' not in text)
    assert not untested, f"no test or scenario names these rule ids: {untested}"


# --- knowledge version ----------------------------------------------------------------------------

def knowledge_digest() -> str:
    digest = hashlib.sha256()
    for path in sorted(KNOWLEDGE.glob("*")):
        if path.suffix in (".csv", ".json") and path.name != "manifest.json":
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def test_changed_knowledge_bumps_the_knowledge_version():
    manifest = json.loads((KNOWLEDGE / "manifest.json").read_text())
    assert manifest["content_sha256"] == knowledge_digest(), (
        "the knowledge files changed: bump 'version' in cds_service/knowledge/manifest.json and set "
        f"'content_sha256' to {knowledge_digest()}")


# --- isolation ------------------------------------------------------------------------------------

def critical_maoi_findings():
    return dict(draft_orders=orders(), patient=snapshot(medications=(use("phenelzine"),)))


def broken(how: str):
    def rule(orders, snapshot, policy):
        if how == "raises":
            raise ZeroDivisionError
        if how == "not a finding":
            return ["a string"]
        finding = Finding("warning", "Broken", "Broken detail.", "label")
        return [{
            "bad indicator": Finding("severe", "Broken", "Broken detail.", "label"),
            "foreign topic": Finding("warning", "Broken", "Broken detail.", "label", topic="renal-function"),
            "undeclared id": Finding("warning", "Broken", "Broken detail.", "label", rule_id="H9"),
            "empty summary": Finding("warning", "", "Broken detail.", "label"),
            "card fails to render": Finding("warning", "Broken", "Broken detail.", "label", suggestions=(
                Suggestion("Go", (Action("update", "Update", resource=object()),)),)),
        }.get(how, finding)]
    rule.__name__ = f"broken_{how.replace(' ', '_')}"
    return rule


@pytest.mark.parametrize("how", ["raises", "not a finding", "bad indicator", "foreign topic", "undeclared id",
                                 "empty summary", "card fails to render"])
def test_a_broken_rule_costs_only_its_own_topic(how):
    rules = (Rule("hepatic", broken(how), ("H1", "H2")),
             Rule("maoi-contraindication", maoi_washout.psychiatric_maoi, ("M1", "M1u"), ("M1",)))
    facts = critical_maoi_findings()
    findings = evaluate_rules(facts["draft_orders"], facts["patient"], POLICY, rules=rules)
    cards = cards_for(findings, [order.reference for order in facts["draft_orders"]], POLICY, "order-sign").cards
    by_topic = {card["source"]["topic"]["code"]: card for card in cards}
    assert set(by_topic) == {"maoi-contraindication", "hepatic"}
    assert by_topic["maoi-contraindication"]["indicator"] == "critical"
    assert cards[0] is by_topic["maoi-contraindication"]
    assert "could not run" in by_topic["hepatic"]["summary"] and by_topic["hepatic"]["indicator"] == "warning"


def test_a_well_formed_single_id_rule_gets_its_id_and_topic_stamped():
    [finding] = evaluate_rules(orders(), snapshot(), POLICY, rules=(Rule("hepatic", broken("fine"), ("H1",)),))
    assert (finding.rule_id, finding.topic) == ("H1", "hepatic")

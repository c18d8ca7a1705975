"""The command line: `cds-service evaluate` prints the response a request or scenario would get."""

import json

from conformance import assert_conformant_response
from conftest import FIXTURES

from cds_service.cli import main


def evaluate(capsys, *args):
    code = main(["evaluate", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def test_evaluate_prints_the_response_to_a_request_file(capsys):
    code, out, _ = evaluate(capsys, FIXTURES / "requests" / "sandbox-order-sign.json", "--now", "2026-11-20T15:00:00Z",
                            "--format", "json")
    assert code == 0
    response = json.loads(out)
    assert_conformant_response(response)
    assert [card["source"]["topic"]["code"] for card in response["cards"]] == ["dose-titration"]


def test_evaluate_reads_as_a_clinician_sees_the_cards_by_default(capsys):
    code, out, _ = evaluate(capsys, FIXTURES / "scenarios" / "18-maoi-phenelzine-active.json")
    assert code == 0
    assert out.splitlines() == [
        "  critical maoi-contraindication | Phenelzine (an MAOI) is active: milnacipran is contraindicated. Cancel this order.",
        "     suggestion: Cancel the milnacipran order -> delete MedicationRequest/draft-milnacipran-1",
    ]


def test_evaluate_takes_a_scenario_with_its_own_time(capsys):
    code, out, _ = evaluate(capsys, FIXTURES / "scenarios" / "18-maoi-phenelzine-active.json", "--format", "json")
    assert code == 0
    assert json.loads(out)["cards"][0]["indicator"] == "critical"


def test_evaluate_a_non_milnacipran_order(capsys):
    code, out, _ = evaluate(capsys, FIXTURES / "requests" / "non-milnacipran-order.json", "--format", "json")
    assert (code, json.loads(out)) == (0, {"cards": []})
    assert evaluate(capsys, FIXTURES / "requests" / "non-milnacipran-order.json")[1] == "  no cards\n"


def test_evaluate_reports_unusable_files_without_a_traceback(capsys, tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    code, out, err = evaluate(capsys, broken)
    assert code == 2 and out == "" and "not valid JSON" in err
    code, _, err = evaluate(capsys, tmp_path / "absent.json")
    assert code == 2 and "cannot read" in err

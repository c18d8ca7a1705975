"""Command line: ``cds-service serve``, ``evaluate REQUEST.json``, ``gallery``, ``policy check FILE``, and the
audit database's ``migrate``, ``report`` and ``purge`` (cds_service/audit/commands.py)."""

import argparse
import json
import sys
from pathlib import Path

from cds_service import gallery
from cds_service.audit import commands as audit_commands
from cds_service.auth import TrustConfigError
from cds_service.errors import BadRequest
from cds_service.errors import CdsError
from cds_service.policy import PolicyError
from cds_service.settings import SettingsError
from cds_service.settings import load_settings


def serve(args: argparse.Namespace) -> int:
    """Run the production WSGI server (gunicorn; see ``cds_service.server``)."""
    from cds_service import server

    settings = load_settings()
    return server.serve(args.host or settings.host, args.port or settings.port, args.workers or settings.workers,
                        settings)


def make_evaluator():
    """``(request, now) -> response`` through the served pipeline (``create_app``, authentication off)."""
    from cds_service import create_app
    from cds_service.http.components import components
    from cds_service.pipeline import utc_now
    from cds_service.request.envelope import parse_envelope

    moment = [utc_now()]
    check = components(create_app({"require_jwt": False, "log_level": "ERROR", "audit_enabled": False},
                                  clock=lambda: moment[0])).check

    def evaluate_request(request: dict, now) -> dict:
        moment[0] = now or utc_now()
        return check.evaluate(parse_envelope(request, expected_hook=str(request.get("hook"))))
    return evaluate_request


def evaluate(args: argparse.Namespace) -> int:
    """Print the response a request (or scenario) file would get, without a server or authentication.

    A scenario file (``fixtures/scenarios/*.json``) carries its evaluation time (``now``);
    ``--now`` overrides the time for either kind of file.
    """
    from cds_service.fhir.dates import parse_time
    from cds_service.scenario import load_scenario

    try:
        scenario = load_scenario(Path(args.request))
        if not isinstance(scenario.request, dict):
            raise BadRequest("not a CDS Hooks request: the file holds no JSON object")
        response = make_evaluator()(scenario.request, parse_time(args.now) or scenario.now)
    except OSError as error:
        print(f"cannot read {args.request}: {error.strerror}", file=sys.stderr)
        return 2
    except ValueError as error:  # a scenario whose facts cannot build a request
        print(f"{args.request}: not a usable request or scenario file ({error})", file=sys.stderr)
        return 2
    except CdsError as error:
        print(f"{args.request}: {error.message}", file=sys.stderr)
        return 2
    if args.format == "json":
        json.dump(response, sys.stdout, indent=2, ensure_ascii=False)
        print()
    else:
        print(readable(response))
    return 0


def _action(action: dict) -> str:
    if action["type"] == "create":
        resource = action.get("resource", {})
        codes = ", ".join(f"LOINC {c['code']}" for c in resource.get("code", {}).get("coding", []))
        return f"create {resource.get('resourceType')}" + (f" ({codes})" if codes else "")
    target = action.get("resourceId") or f"{action['resource']['resourceType']}/{action['resource']['id']}"
    return f"{action['type']} {target}"


def readable(response: dict) -> str:
    """The cards as a clinician reads them: indicator, topic and summary, then each suggestion."""
    if not response["cards"]:
        return "  no cards"
    lines = []
    for card in response["cards"]:
        lines.append(f"  {card['indicator']} {card['source']['topic']['code']} | {card['summary']}")
        for suggestion in card.get("suggestions", []):
            recommended = " (recommended)" if suggestion.get("isRecommended") else ""
            actions = ", ".join(_action(action) for action in suggestion["actions"])
            lines.append(f"     suggestion: {suggestion['label']}{recommended} -> {actions}")
    return "\n".join(lines)
def policy_check(args: argparse.Namespace) -> int:
    """Validate a site policy as the service would at start; print what it changes against the label defaults."""
    from cds_service.knowledge import default_knowledge
    from cds_service.policy import load_policy
    from cds_service.policy import policy_changes
    from cds_service.rules.registry import CONTRAINDICATION_TOPICS
    from cds_service.rules.registry import RULE_CATALOGUE

    try:
        policy = load_policy(args.file, default_knowledge(), RULE_CATALOGUE, CONTRAINDICATION_TOPICS)
    except PolicyError as error:
        print(f"REFUSED: {args.file}: {error}", file=sys.stderr)
        print("The service would not start with this policy.", file=sys.stderr)
        return 1
    changes = policy_changes(policy)
    print(f"Policy {policy.identity.name} ({policy.identity.hash}), knowledge {policy.knowledge.version}: accepted.")
    print("Changes against the label defaults:" if changes else "No change against the label defaults.")
    for line in changes:
        print(f"  - {line}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cds-service", description="Milnacipran order check (CDS Hooks 2.0)")
    commands = parser.add_subparsers(dest="command", required=True)
    serve_parser = commands.add_parser("serve", help="run the production server")
    serve_parser.add_argument("--host", help="listen address (default CDS_HOST or 127.0.0.1)")
    serve_parser.add_argument("--port", type=int, help="listen port (default CDS_PORT or 8080)")
    serve_parser.add_argument("--workers", type=int, help="worker processes (default CDS_WORKERS or 2)")
    serve_parser.set_defaults(run=serve)
    evaluate_parser = commands.add_parser("evaluate", help="print the response to a request file")
    evaluate_parser.add_argument("request", help="a CDS Hooks request JSON file, or a scenario file")
    evaluate_parser.add_argument("--now", help="evaluation time, e.g. 2026-11-20T15:00:00Z (default: now)")
    evaluate_parser.add_argument("--format", choices=("text", "json"), default="text",
                                 help="text: indicator, topic, summary and suggestions (default); json: the response")
    evaluate_parser.set_defaults(run=evaluate)
    gallery.add_command(commands, make_evaluator)
    policy_parser = commands.add_parser("policy", help="site policy tools")
    policy_commands = policy_parser.add_subparsers(dest="policy_command", required=True)
    check_parser = policy_commands.add_parser(
        "check", help="validate a policy file and print what it changes (exit 1 if the service would refuse it)")
    check_parser.add_argument("file", help="the site policy JSON file")
    check_parser.set_defaults(run=policy_check)
    audit_commands.add_commands(commands)
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except (SettingsError, PolicyError, TrustConfigError) as error:
        print(f"configuration error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

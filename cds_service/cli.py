"""Command line: ``cds-service serve`` and ``cds-service evaluate REQUEST.json``."""

import argparse
import json
import sys
from pathlib import Path

from cds_service import gallery
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
    check = components(create_app({"require_jwt": False, "log_level": "ERROR"}, clock=lambda: moment[0])).check

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
    json.dump(response, sys.stdout, indent=2, ensure_ascii=False)
    print()
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
    evaluate_parser.add_argument("--format", choices=("json",), default="json", help="output format (default json)")
    evaluate_parser.set_defaults(run=evaluate)
    gallery.add_command(commands, make_evaluator)
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except (SettingsError, PolicyError, TrustConfigError) as error:
        print(f"configuration error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

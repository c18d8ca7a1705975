"""``cds-service migrate``, ``report`` and ``purge``: the audit database from the command line.

``add_commands(subparsers)`` registers them on cli.py's sub-parsers; each sets ``run`` to a
function ``(args) -> exit code`` and reads the database from ``CDS_DATABASE_URL`` (cds_service/settings.py).
"""

import argparse
import datetime
import sys
from pathlib import Path

from cds_service.audit.report import RENDERERS
from cds_service.audit.store import AuditError
from cds_service.audit.store import Store
from cds_service.audit.store import masked_url
from cds_service.settings import SettingsError
from cds_service.settings import load_settings


def _day_or_time(text: str) -> tuple[datetime.datetime, bool]:
    """(the time, whether a bare date was given). A time without a zone is UTC."""
    try:
        if len(text) == 10:
            return datetime.datetime.combine(datetime.date.fromisoformat(text), datetime.time(),
                                             datetime.timezone.utc), True
        value = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD) or an ISO date-time") from None
    return (value if value.tzinfo else value.replace(tzinfo=datetime.timezone.utc)), False


def _since(text: str) -> datetime.datetime:
    return _day_or_time(text)[0]


def _until(text: str) -> datetime.datetime:
    """A bare date includes that whole day (UTC); a date-time is the exclusive end."""
    value, is_date = _day_or_time(text)
    return value + datetime.timedelta(days=1) if is_date else value


def _days(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a whole number of days, at least 1")
    return value


def _open_store() -> Store:
    url = load_settings().audit_database_url
    store = Store.from_url(url)
    print(f"database: {masked_url(url)}", file=sys.stderr)
    return store


def _run(action) -> int:
    try:
        return action()
    except (AuditError, SettingsError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def migrate(args: argparse.Namespace) -> int:
    def action():
        store = _open_store()
        try:
            print(f"database schema at revision {store.migrate()}", file=sys.stderr)
        finally:
            store.dispose()
        return 0
    return _run(action)


def report(args: argparse.Namespace) -> int:
    if args.since and args.until and args.since >= args.until:
        print("error: --since must be before --until", file=sys.stderr)
        return 2

    def action():
        store = _open_store()
        try:
            store.migrate()
            text = RENDERERS[args.format](store.report(args.since, args.until))
        finally:
            store.dispose()
        if args.output:
            try:
                Path(args.output).write_text(text, encoding="utf-8")
            except OSError as error:
                print(f"error: cannot write {args.output}: {error.strerror}", file=sys.stderr)
                return 2
            print(f"report written to {args.output}", file=sys.stderr)
        else:
            sys.stdout.write(text)
        return 0
    return _run(action)


def purge(args: argparse.Namespace) -> int:
    def action():
        days = args.older_than or load_settings().audit_retention_days
        store = _open_store()
        try:
            store.migrate()
            removed = store.purge(days)
        finally:
            store.dispose()
        print(f"purged rows older than {days} days: {removed['cards']} cards, {removed['feedback']} feedback items, "
              f"{removed['replayTokens']} expired JWT ids")
        return 0
    return _run(action)


def add_commands(subparsers) -> None:
    """Register ``migrate``, ``report`` and ``purge`` on an ``argparse`` sub-parsers object."""
    migrate_parser = subparsers.add_parser("migrate", help="create or upgrade the audit database schema")
    migrate_parser.set_defaults(run=migrate)

    report_parser = subparsers.add_parser("report", help="the committee's report of card outcomes")
    report_parser.add_argument("--since", type=_since, help="first day (YYYY-MM-DD, UTC) or date-time, inclusive")
    report_parser.add_argument("--until", type=_until,
                               help="last day (YYYY-MM-DD, UTC, inclusive) or date-time (exclusive); default: now")
    report_parser.add_argument("--format", choices=sorted(RENDERERS), default="text", help="default: text")
    report_parser.add_argument("--output", help="write to this file instead of standard output")
    report_parser.set_defaults(run=report)

    purge_parser = subparsers.add_parser("purge", help="delete audit rows older than the retention period")
    purge_parser.add_argument("--older-than", type=_days, metavar="DAYS",
                              help="default: CDS_AUDIT_RETENTION_DAYS (400)")
    purge_parser.set_defaults(run=purge)

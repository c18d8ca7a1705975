"""FHIR date, dateTime and instant strings as aware UTC datetimes.

A partial date ("2026", "2026-10", "2026-10-28") is the start of that period, or its end when
``end_of_period`` is set: a stop known only as a date counts from the end of that day anywhere
on Earth (midnight at UTC-12, i.e. 12:00 UTC the next day), the conservative reading of kb §0.5
Decision 4 whatever the site's time zone. A time without a zone is taken as UTC.
"""

import calendar
import datetime
import re

LATE_ZONE = datetime.timedelta(hours=12)           # UTC-12, the last time zone to reach a given clock time
LATEST_MIDNIGHT = datetime.timedelta(days=1) + LATE_ZONE  # the end of a day as seen at UTC-12
PARTIAL_DATE = re.compile(r"^(\d{4})(?:-(\d{2}))?(?:-(\d{2}))?$")


def parse_time(text: object, end_of_period: bool = False) -> datetime.datetime | None:
    """The moment ``text`` names, or None when it is not a FHIR date/dateTime/instant."""
    if not isinstance(text, str):
        return None
    partial = PARTIAL_DATE.match(text.strip())
    if partial:
        return _period_bound(*partial.groups(), end_of_period)
    try:
        moment = datetime.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:  # not valid FHIR; an end read as UTC-12 is never early, anything else as UTC
        moment = moment.replace(tzinfo=datetime.timezone.utc) + (LATE_ZONE if end_of_period else datetime.timedelta())
    return moment.astimezone(datetime.timezone.utc)


def _period_bound(year: str, month: str | None, day: str | None, end: bool) -> datetime.datetime | None:
    try:
        y = int(year)
        m = int(month) if month else (12 if end else 1)
        d = int(day) if day else (calendar.monthrange(y, m)[1] if end else 1)
        start = datetime.datetime(y, m, d, tzinfo=datetime.timezone.utc)
    except ValueError:
        return None
    return start + LATEST_MIDNIGHT if end else start


def show_date(moment: datetime.datetime | None) -> str:
    """``2026-11-20`` for card text, or 'date unknown'."""
    return moment.strftime("%Y-%m-%d") if moment else "date unknown"


def show_time(moment: datetime.datetime) -> str:
    """``2026-11-20 15:00 UTC`` for card text."""
    return moment.strftime("%Y-%m-%d %H:%M UTC")

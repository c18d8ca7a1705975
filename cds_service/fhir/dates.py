"""FHIR date, dateTime and instant strings as aware UTC datetimes, and shown in the site's zone.

A partial date ("2026", "2026-10", "2026-10-28") is the start of that period, or its end when
``end_of_period`` is set: a stop known only as a date counts from the end of that day anywhere
on Earth (midnight at UTC-12, i.e. 12:00 UTC the next day), the conservative reading of kb §0.5
Decision 4 whatever the site's time zone. A time without a zone is taken as UTC.

Cards show dates and times in the site's zone (``CDS_TIME_ZONE``), which the order check sets for
each request with ``shown_in``; a time names its zone.
"""

import calendar
import contextlib
import contextvars
import datetime
import re
import zoneinfo

UTC = datetime.timezone.utc
LATE_ZONE = datetime.timedelta(hours=12)           # UTC-12, the last time zone to reach a given clock time
LATEST_MIDNIGHT = datetime.timedelta(days=1) + LATE_ZONE  # the end of a day as seen at UTC-12
# A moment outside these years is no chart date (a typing slip, 9999-12-31 as "no end", a hostile value):
# it reads as no date, like any other unreadable value, and never reaches date arithmetic that would overflow.
EARLIEST = datetime.datetime(1800, 1, 1, tzinfo=UTC)
LATEST = datetime.datetime(2200, 1, 1, tzinfo=UTC)
PARTIAL_DATE = re.compile(r"^(\d{4})(?:-(\d{2}))?(?:-(\d{2}))?$")
_SHOWN_IN: contextvars.ContextVar[zoneinfo.ZoneInfo] = contextvars.ContextVar("shown_in", default=zoneinfo.ZoneInfo("UTC"))


@contextlib.contextmanager
def shown_in(zone: zoneinfo.ZoneInfo):
    """Show dates and times in ``zone`` within this block (one request's card text)."""
    token = _SHOWN_IN.set(zone)
    try:
        yield
    finally:
        _SHOWN_IN.reset(token)


def parse_time(text: object, end_of_period: bool = False) -> datetime.datetime | None:
    """The moment ``text`` names, or None when it is not a FHIR date/dateTime/instant between 1800 and 2200."""
    if not isinstance(text, str) or not EARLIEST.year <= _year(text) < LATEST.year:
        return None
    text = text.strip()
    partial = PARTIAL_DATE.match(text) if text[10:11] != "T" else None  # a time after the date: not partial
    if partial:
        return _period_bound(*partial.groups(), end_of_period)
    try:
        moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:  # not valid FHIR; an end read as UTC-12 is never early, anything else as UTC
        return moment.replace(tzinfo=UTC) + (LATE_ZONE if end_of_period else datetime.timedelta())
    return moment if moment.tzinfo is UTC else moment.astimezone(UTC)


def _year(text: str) -> int:
    year = text.lstrip()[:4]
    return int(year) if year.isascii() and year.isdigit() else 0


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
    """``2026-11-20`` (the date in the site's zone) for card text, or 'date unknown'."""
    return moment.astimezone(_SHOWN_IN.get()).strftime("%Y-%m-%d") if moment else "date unknown"


def show_time(moment: datetime.datetime) -> str:
    """``2026-11-20 09:00 America/Chicago`` (the site's zone, named) for card text."""
    zone = _SHOWN_IN.get()
    return f"{moment.astimezone(zone):%Y-%m-%d %H:%M} {zone.key}"

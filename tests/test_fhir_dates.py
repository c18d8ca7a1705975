"""FHIR date, dateTime and instant strings read as UTC moments: partial dates, offsets, no zone, bad input."""

import datetime

import pytest

from cds_service.fhir.dates import parse_time


def utc(*parts: int) -> datetime.datetime:
    return datetime.datetime(*parts, tzinfo=datetime.timezone.utc)


@pytest.mark.parametrize("text, start, end", [
    ("2026", utc(2026, 1, 1), utc(2027, 1, 1, 12)),                  # a year: to the end of 31 Dec at UTC-12
    ("2026-02", utc(2026, 2, 1), utc(2026, 3, 1, 12)),
    ("2026-10-28", utc(2026, 10, 28), utc(2026, 10, 29, 12)),
    ("2026-10-28T10:00:00Z", utc(2026, 10, 28, 10), utc(2026, 10, 28, 10)),
    ("2026-10-28T10:00:00.250Z", utc(2026, 10, 28, 10, 0, 0, 250000), utc(2026, 10, 28, 10, 0, 0, 250000)),
    ("2026-10-28T10:00:00+02:00", utc(2026, 10, 28, 8), utc(2026, 10, 28, 8)),
    ("2026-10-28T10:00:00-05:30", utc(2026, 10, 28, 15, 30), utc(2026, 10, 28, 15, 30)),
    (" 2026-10-28T10:00:00Z\n", utc(2026, 10, 28, 10), utc(2026, 10, 28, 10)),
    ("2026-10-28T10:00:00", utc(2026, 10, 28, 10), utc(2026, 10, 28, 22)),  # no zone: UTC, an end UTC-12
    ("2026-10-28T10:00", utc(2026, 10, 28, 10), utc(2026, 10, 28, 22)),
])
def test_a_date_or_time_is_a_utc_moment(text, start, end):
    assert parse_time(text) == start and parse_time(text).tzinfo is datetime.timezone.utc
    assert parse_time(text, end_of_period=True) == end


@pytest.mark.parametrize("text", ["2026-13-45", "2026-13", "2026-02-30", "yesterday", "", " ", "2026-10-28T25:00:00Z",
                                  "2026-10-28T", "2026-10-28TZ", None, 12, ["2026"], {"start": "2026"},
                                  "9999-12-31T23:59:59-12:00", "0001-01-01T00:00:00+01:00", "9999-12-31", "0001",
                                  "1799-12-31", "2200-01-01", "\u0661\u0669\u0669\u0669-01-01"])
def test_what_is_not_a_date_reads_as_none(text):
    assert parse_time(text) is None and parse_time(text, end_of_period=True) is None

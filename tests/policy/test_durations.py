"""Durations as operators write them: words (as ``uv --exclude-newer``) and ISO 8601
(as ``pip --uploaded-prior-to``), and the one canonical text they are shown in."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tilsit.config.durations import InvalidDuration, format_duration, iso_duration, parse_duration

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("7 days", 7 * DAY),
        ("1 day", DAY),
        ("36 hours", 36 * HOUR),
        ("90 minutes", timedelta(minutes=90)),
        ("45 seconds", timedelta(seconds=45)),
        ("1 week", 7 * DAY),
        ("2 weeks", 14 * DAY),
        ("7d", 7 * DAY),
        ("12h", 12 * HOUR),
        ("  3 Days ", 3 * DAY),
        ("1 day 6 hours", 30 * HOUR),
        ("1 day, 6 hours", 30 * HOUR),
        ("P7D", 7 * DAY),
        ("p7d", 7 * DAY),
        ("PT12H", 12 * HOUR),
        ("P1DT6H", 30 * HOUR),
        ("PT90M", timedelta(minutes=90)),
        ("PT30S", timedelta(seconds=30)),
        ("P1W", 7 * DAY),
        ("P1DT1H1M1S", DAY + HOUR + timedelta(minutes=1, seconds=1)),
    ],
)
def test_accepted(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "7 dayz",
            "'7 dayz' is not a duration: use '7 days', '36 hours' or ISO 8601 'P7D'",
        ),
        ("", "'' is not a duration: use '7 days', '36 hours' or ISO 8601 'P7D'"),
        ("days", "'days' is not a duration: use"),
        ("7", "'7' is not a duration: use"),
        ("1.5 days", "'1.5 days' is not a duration: use"),
        ("7 days ago", "'7 days ago' is not a duration: use"),
        ("P", "'P' is not a duration: use"),
        ("P1DT", "'P1DT' is not a duration: use"),
        ("P7X", "'P7X' is not a duration: use"),
        ("0 days", "'0 days' is zero: a duration must be longer than zero"),
        ("PT0S", "'PT0S' is zero: a duration must be longer than zero"),
        ("-7 days", "'-7 days' is negative: a duration must be longer than zero"),
        ("-P7D", "'-P7D' is negative"),
        ("P1M", "'P1M' counts years or months, whose length varies: give days or weeks"),
        ("P1Y", "'P1Y' counts years or months"),
        ("99999 days", "'99999 days' is longer than 3650 days"),
    ],
)
def test_refused_with_what_is_accepted(text: str, message: str) -> None:
    with pytest.raises(InvalidDuration) as caught:
        parse_duration(text)
    assert str(caught.value).startswith(message)


def test_minutes_in_the_time_part_are_not_months() -> None:
    assert parse_duration("PT1M") == timedelta(minutes=1)


@pytest.mark.parametrize(
    ("value", "words", "iso"),
    [
        (7 * DAY, "7 days", "P7D"),
        (DAY, "1 day", "P1D"),
        (36 * HOUR, "1 day 12 hours", "P1DT12H"),
        (timedelta(minutes=90), "1 hour 30 minutes", "PT1H30M"),
        (timedelta(seconds=1), "1 second", "PT1S"),
        (DAY + timedelta(seconds=61), "1 day 1 minute 1 second", "P1DT1M1S"),
    ],
)
def test_canonical_text_round_trips(value: timedelta, words: str, iso: str) -> None:
    assert format_duration(value) == words
    assert iso_duration(value) == iso
    assert parse_duration(words) == parse_duration(iso) == value


def test_formatting_refuses_what_parsing_refuses() -> None:
    for value in (timedelta(0), -DAY):
        with pytest.raises(ValueError):
            format_duration(value)
        with pytest.raises(ValueError):
            iso_duration(value)

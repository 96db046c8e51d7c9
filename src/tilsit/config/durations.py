"""Durations an operator writes: ``7 days``, ``36 hours``, ``1 week``, or ISO 8601 ``P7D``.

The words are those ``uv --exclude-newer`` reads ("3 days", "1 week") and the
ISO form is what ``pip --uploaded-prior-to`` reads (``P3D``), so one policy can
be told in either and compared with both. Years and months are refused: their
length depends on the date they start from, and a cool-down must not.
"""

from __future__ import annotations

import re
from datetime import timedelta

__all__ = ["InvalidDuration", "format_duration", "iso_duration", "parse_duration"]


class InvalidDuration(ValueError):
    """Text that is not a positive duration; the message says what is accepted."""


_HINT = "use '7 days', '36 hours' or ISO 8601 'P7D'"

_UNIT_SECONDS = {
    "second": 1,
    "minute": 60,
    "hour": 3600,
    "day": 86400,
    "week": 7 * 86400,
}
# Every spelling of each unit, singular, plural and the usual abbreviations.
_UNITS: dict[str, str] = {
    **dict.fromkeys(("s", "sec", "secs", "second", "seconds"), "second"),
    **dict.fromkeys(("m", "min", "mins", "minute", "minutes"), "minute"),
    **dict.fromkeys(("h", "hr", "hrs", "hour", "hours"), "hour"),
    **dict.fromkeys(("d", "day", "days"), "day"),
    **dict.fromkeys(("w", "wk", "wks", "week", "weeks"), "week"),
}
# One "<number> <unit>" part; a duration is one or more of them ("1 day 6 hours").
_PART = re.compile(r"\s*(\d+)\s*([a-z]+)\s*,?", re.ASCII)
_ISO = re.compile(
    r"P(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+)S)?)?",
    re.ASCII,
)
# Longer than any cool-down or exemption means anything; keeps datetime arithmetic in range.
_MAX = timedelta(days=3650)


def parse_duration(text: str) -> timedelta:
    """The duration ``text`` names; :class:`InvalidDuration` if it names none, or zero,
    or a negative one, or one longer than ten years."""
    stripped = text.strip()
    if stripped.startswith("-"):
        raise InvalidDuration(f"{text!r} is negative: a duration must be longer than zero")
    if stripped[:1] in ("P", "p"):
        value = _parse_iso(text, stripped.upper())
    else:
        value = _parse_words(text, stripped.lower())
    if value <= timedelta(0):
        raise InvalidDuration(f"{text!r} is zero: a duration must be longer than zero")
    if value > _MAX:
        raise InvalidDuration(f"{text!r} is longer than {_MAX.days} days: give a shorter duration")
    return value


def _parse_words(text: str, lower: str) -> timedelta:
    total = 0
    position = 0
    seen = 0
    while position < len(lower):
        match = _PART.match(lower, position)
        if match is None or match.group(2) not in _UNITS:
            raise InvalidDuration(f"{text!r} is not a duration: {_HINT}")
        total += int(match.group(1)) * _UNIT_SECONDS[_UNITS[match.group(2)]]
        position = match.end()
        seen += 1
    if not seen:
        raise InvalidDuration(f"{text!r} is not a duration: {_HINT}")
    return timedelta(seconds=total)


def _parse_iso(text: str, upper: str) -> timedelta:
    if re.fullmatch(r"P.*\d+[YM].*", upper.split("T")[0]):
        raise InvalidDuration(
            f"{text!r} counts years or months, whose length varies: give days or weeks ('P30D')"
        )
    match = _ISO.fullmatch(upper)
    # "P" alone and "P1DT" are not durations, though the pattern accepts them.
    if match is None or not any(match.groupdict().values()) or upper.endswith("T"):
        raise InvalidDuration(f"{text!r} is not a duration: {_HINT}")
    parts = {unit: int(value) for unit, value in match.groupdict().items() if value}
    return timedelta(**parts)


def format_duration(value: timedelta) -> str:
    """The canonical words for ``value``: ``7 days``, ``1 day 12 hours``, ``90 minutes``
    reads ``1 hour 30 minutes``; whole seconds (a fraction is dropped).
    ``parse_duration(format_duration(d)) == d`` for every parsed ``d``."""
    seconds = int(value.total_seconds())
    if seconds <= 0:
        raise ValueError(f"{value!r} is not a positive duration")
    words = []
    for unit in ("day", "hour", "minute", "second"):
        count, seconds = divmod(seconds, _UNIT_SECONDS[unit])
        if count:
            words.append(f"{count} {unit}{'' if count == 1 else 's'}")
    return " ".join(words)


def iso_duration(value: timedelta) -> str:
    """``value`` in ISO 8601 (``P7D``, ``PT36H`` reads ``P1DT12H``), as pip's
    ``--uploaded-prior-to`` takes it."""
    seconds = int(value.total_seconds())
    if seconds <= 0:
        raise ValueError(f"{value!r} is not a positive duration")
    days, seconds = divmod(seconds, 86400)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    text = f"P{days}D" if days else "P"
    time = "".join(f"{n}{u}" for n, u in ((hours, "H"), (minutes, "M"), (seconds, "S")) if n)
    return text + (f"T{time}" if time else "")

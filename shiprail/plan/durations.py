"""Human durations (`30s`, `5m`, `1h30m`, `28d`) as a pydantic type.

Plans are written by people, so durations read like Prometheus ranges; they are kept as
`timedelta` in memory and written back in the same compact form so a plan survives a
round trip through Temporal's payloads unchanged.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
DURATION_PATTERN = r"^(\d+(\.\d+)?(ms|s|m|h|d|w))+$"
# Far beyond any bake, window or budget period, and well inside what `timedelta` can hold.
MAX_DAYS = 3650


def _checked(seconds: float, value: Any) -> timedelta:
    if seconds != seconds or seconds > MAX_DAYS * 86400:  # NaN, infinity, or years on end
        raise ValueError(f"duration {value!r} is longer than {MAX_DAYS}d")
    return timedelta(seconds=seconds)


def parse_duration(value: Any) -> timedelta:
    """Parse `90s`, `5m`, `1h30m`, `28d` (or a timedelta, or plain seconds)."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError("a duration is a string such as 30s, 5m, 2h or 28d")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return _checked(float(value), value)
    if not isinstance(value, str):
        raise ValueError("a duration is a string such as 30s, 5m, 2h or 28d")
    text = value.strip()
    if text == "0":
        return timedelta(0)
    pos = 0
    seconds = 0.0
    for match in _PART.finditer(text):
        if match.start() != pos:
            break
        seconds += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise ValueError(
            f"bad duration {value!r}: use a number and a unit (ms, s, m, h, d, w), e.g. 30s, 5m, 1h30m"
        )
    return _checked(seconds, value)


def format_duration(value: timedelta) -> str:
    """The shortest exact spelling: 90 s → `1m30s`, 0 → `0s`."""
    total_ms = round(value.total_seconds() * 1000)
    if total_ms == 0:
        return "0s"
    parts: list[str] = []
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)):
        count, total_ms = divmod(total_ms, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema({"type": "string", "pattern": DURATION_PATTERN, "examples": ["30s", "5m", "2h", "28d"]}),
]

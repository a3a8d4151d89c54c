"""Deploy windows: when may the next step start?

Pure calendar arithmetic in the plan's time zone (DST-aware through zoneinfo). A step that
is already baking is never interrupted; only the next actuation waits for a window.
"""

from __future__ import annotations

import zoneinfo
from datetime import UTC, date, datetime, timedelta

from shiprail.plan.models import DeployWindows

_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HORIZON_DAYS = 400


def _denied(day: date, windows: DeployWindows) -> str | None:
    for deny in windows.deny:
        if deny.from_ <= day <= deny.to:
            return deny.reason or f"freeze {deny.from_}..{deny.to}"
    return None


def next_open(now: datetime, windows: DeployWindows) -> datetime | None:
    """`now` if a step may start now, else the start of the next window (UTC); None if
    nothing opens within the next 400 days."""
    zone = zoneinfo.ZoneInfo(windows.timezone)
    local_now = now.astimezone(zone)
    for offset in range(_HORIZON_DAYS):
        day = local_now.date() + timedelta(days=offset)
        if _denied(day, windows):
            continue
        if not windows.allow:
            start = datetime.combine(day, datetime.min.time(), zone)
            return now if offset == 0 else start.astimezone(UTC)
        candidates = []
        for allow in windows.allow:
            if _DAYS[day.weekday()] not in allow.days:
                continue
            opens = datetime.combine(day, allow.start, zone)
            closes = datetime.combine(day, allow.end, zone)
            if local_now < closes:
                candidates.append(max(opens, local_now))
        if candidates:
            best = min(candidates)
            return now if best == local_now else best.astimezone(UTC)
    return None


def closed_reason(now: datetime, windows: DeployWindows) -> str:
    zone = zoneinfo.ZoneInfo(windows.timezone)
    day = now.astimezone(zone).date()
    return _denied(day, windows) or f"outside the deploy windows ({windows.timezone})"

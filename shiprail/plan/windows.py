"""Deploy windows: when may the next step start, and why not now?

Pure calendar arithmetic in each window set's time zone (DST-aware through zoneinfo).
Everything is one calendar: consecutive spans, each open or closed with its reason, built
from weekly allow windows, freezes (whole days or wall-clock times) and public holidays.
`windows show` prints it; the rollout asks it at every step start. A step that is already
baking is never interrupted, and rollbacks never wait: only the next actuation does.

Wall-clock times are taken literally across DST: a window that opens at 02:30 on a
spring-forward day opens when the clock passes 02:30 (at 03:30 summer time), and an
ambiguous autumn time means its first occurrence. Deny beats allow. Several window sets
(a plan's and its train's) must all be open for a step to start.
"""

from __future__ import annotations

import itertools
import zoneinfo
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from shiprail.plan.holidays import holidays_in
from shiprail.plan.models import AllowWindow, DeployWindows, wall_clock

_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HORIZON = timedelta(days=400)
_CHUNK = timedelta(days=35)
OUTSIDE = "outside the deploy windows"


@dataclass(frozen=True)
class Span:
    """[start, end) in UTC, open or closed, and why."""

    start: datetime
    end: datetime
    open: bool
    reason: str

    def to_dict(self, zone: zoneinfo.ZoneInfo | None = None) -> dict[str, object]:
        return {
            "start": (self.start.astimezone(zone) if zone else self.start).isoformat(),
            "end": (self.end.astimezone(zone) if zone else self.end).isoformat(),
            "open": self.open,
            "reason": self.reason,
        }


def _as_list(windows: DeployWindows | Sequence[DeployWindows]) -> list[DeployWindows]:
    return [windows] if isinstance(windows, DeployWindows) else list(windows)


def _utc(local: datetime, zone: zoneinfo.ZoneInfo) -> datetime:
    return local.replace(tzinfo=zone).astimezone(UTC)


def _describe_allow(allow: AllowWindow) -> str:
    return f"allowed {','.join(allow.days)} {allow.start:%H:%M}–{allow.end:%H:%M}"


def _days(start: datetime, end: datetime, zone: zoneinfo.ZoneInfo) -> list[date]:
    first = start.astimezone(zone).date() - timedelta(days=1)
    last = end.astimezone(zone).date() + timedelta(days=1)
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def _allowed(windows: DeployWindows, start: datetime, end: datetime) -> list[tuple[datetime, datetime, str]]:
    zone = zoneinfo.ZoneInfo(windows.timezone)
    if not windows.allow:
        return [(start, end, "open (no allow windows)")]
    spans = []
    for day in _days(start, end, zone):
        for allow in windows.allow:
            if _DAYS[day.weekday()] not in allow.days:
                continue
            closes_on = day + timedelta(days=1) if allow.end <= allow.start else day
            opens = _utc(datetime.combine(day, allow.start), zone)
            closes = _utc(datetime.combine(closes_on, allow.end), zone)
            spans.append((opens, closes, _describe_allow(allow)))
    return spans


def _denied(windows: DeployWindows, start: datetime, end: datetime) -> list[tuple[datetime, datetime, str]]:
    zone = zoneinfo.ZoneInfo(windows.timezone)
    spans = []
    for deny in windows.deny:
        reason = deny.reason or f"freeze {deny.from_}..{deny.to}"
        spans.append(
            (_utc(wall_clock(deny.from_, end=False), zone), _utc(wall_clock(deny.to, end=True), zone), reason)
        )
    years = range(start.astimezone(zone).year - 1, end.astimezone(zone).year + 2)
    for calendar in windows.holidays:
        where = calendar.country + (f"-{calendar.subdiv}" if calendar.subdiv else "")
        for year in years:
            for day, name in holidays_in(
                calendar.country, calendar.subdiv, tuple(calendar.categories), calendar.language, year
            ):
                midnight = datetime.combine(day, time())
                spans.append(
                    (
                        _utc(midnight, zone),
                        _utc(midnight + timedelta(days=1), zone),
                        f"{name} ({where} holiday)",
                    )
                )
    return [s for s in spans if s[1] > start and s[0] < end]


def _sweep(
    start: datetime,
    end: datetime,
    allowed: Iterable[tuple[datetime, datetime, str]],
    denied: Iterable[tuple[datetime, datetime, str]],
) -> list[Span]:
    """Cut [start, end) at every boundary; a segment is open when some allow span and no
    deny span covers it. The first deny (in input order) gives a closed segment its reason."""
    events: list[tuple[datetime, int, int, str, int]] = []  # time, +1/-1, kind, reason, order
    for order, (a, b, reason) in enumerate(allowed):
        events += [(a, 1, 0, reason, order), (b, -1, 0, reason, order)]
    for order, (a, b, reason) in enumerate(denied):
        events += [(a, 1, 1, reason, order), (b, -1, 1, reason, order)]
    events.sort(key=lambda e: e[0])
    active: list[dict[int, str]] = [{}, {}]
    spans: list[Span] = []
    cursor, index = start, 0
    while cursor < end:
        while index < len(events) and events[index][0] <= cursor:
            _, delta, kind, reason, order = events[index]
            if delta > 0:
                active[kind][order] = reason
            else:
                active[kind].pop(order, None)
            index += 1
        upto = min(events[index][0], end) if index < len(events) else end
        if active[1]:
            span = Span(cursor, upto, False, active[1][min(active[1])])
        elif active[0]:
            span = Span(cursor, upto, True, active[0][min(active[0])])
        else:
            span = Span(cursor, upto, False, OUTSIDE)
        spans.append(span)
        cursor = upto
    return _merged(spans)


def _merged(spans: list[Span]) -> list[Span]:
    out: list[Span] = []
    for span in spans:
        if out and out[-1].open == span.open and out[-1].reason == span.reason and out[-1].end == span.start:
            out[-1] = Span(out[-1].start, span.end, span.open, span.reason)
        else:
            out.append(span)
    return out


def _overlay(calendars: list[list[Span]]) -> list[Span]:
    """Open only where every calendar is open; a closed span keeps the first closed reason."""
    if len(calendars) == 1:
        return calendars[0]
    cuts = sorted({s.start for c in calendars for s in c} | {c[-1].end for c in calendars if c})
    spans, positions = [], [0] * len(calendars)
    for a, b in itertools.pairwise(cuts):
        covering = []
        for n, cal in enumerate(calendars):
            while cal[positions[n]].end <= a:
                positions[n] += 1
            covering.append(cal[positions[n]])
        closed = [s for s in covering if not s.open]
        reason = closed[0].reason if closed else "; ".join(dict.fromkeys(s.reason for s in covering))
        spans.append(Span(a, b, not closed, reason))
    return _merged(spans)


def calendar(windows: DeployWindows | Sequence[DeployWindows], start: datetime, end: datetime) -> list[Span]:
    """Consecutive spans covering [start, end): when steps may start, and why (not)."""
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    sets = _as_list(windows)
    if not sets:
        return [Span(start, end, True, "open (no deploy windows)")]
    return _overlay([_sweep(start, end, _allowed(w, start, end), _denied(w, start, end)) for w in sets])


def next_open(now: datetime, windows: DeployWindows | Sequence[DeployWindows]) -> datetime | None:
    """`now` if a step may start now, else when the next window opens (UTC); None if
    nothing opens within the next 400 days."""
    cursor = now
    while cursor < now + _HORIZON:
        for span in calendar(windows, cursor, cursor + _CHUNK):
            if span.open:
                return now if span.start <= now else span.start
        cursor += _CHUNK
    return None


def closed_reason(now: datetime, windows: DeployWindows | Sequence[DeployWindows]) -> str:
    """Why no step may start at `now` (or why it may)."""
    return calendar(windows, now, now + timedelta(seconds=1))[0].reason


def wait_note(now: datetime, opens: datetime, windows: DeployWindows | Sequence[DeployWindows]) -> str:
    """What a waiting rollout says, in the time zone of the first window set: "reopens Mon
    2027-01-04 09:00 Europe/Berlin after year-end freeze", naming the freezes and holidays
    in between, or "(outside the deploy windows)" when only the weekly windows are shut."""
    zone = zoneinfo.ZoneInfo(_as_list(windows)[0].timezone)
    when = f"reopens {opens.astimezone(zone):%a %Y-%m-%d %H:%M} {zone.key}"
    closed = [s.reason for s in calendar(windows, now, max(opens, now + timedelta(seconds=1))) if not s.open]
    named = list(dict.fromkeys(r for r in closed if r != OUTSIDE))
    return f"{when} after {', '.join(named)}" if named else f"{when} ({OUTSIDE})"

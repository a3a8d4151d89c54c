"""A train's nominal departure times, as Temporal's Schedule computes them before jitter.

Temporal answers "when are the next departures" itself (with jitter applied); this is only
needed where Temporal wants the nominal time, such as a `skip` entry, which must match a
departure to the second.
"""

from __future__ import annotations

import zoneinfo
from datetime import UTC, datetime, timedelta

from croniter import croniter

from shiprail.plan.train import TrainSchedule


def _cron_times(expression: str, schedule: TrainSchedule, start: datetime, end: datetime) -> list[datetime]:
    fields = expression.split()
    local = start.astimezone(_zone(schedule)) - timedelta(seconds=1)
    seven = len(fields) == 7
    it = (
        croniter(" ".join(fields), local, second_at_beginning=seven) if seven else croniter(expression, local)
    )
    out: list[datetime] = []
    while True:
        moment = it.get_next(datetime)
        if moment >= end:
            return out
        out.append(moment.astimezone(UTC))


def _zone(schedule: TrainSchedule) -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(schedule.timezone)


def nominal_departures(schedule: TrainSchedule, start: datetime, end: datetime) -> list[datetime]:
    """Every nominal departure in [start, end), UTC, sorted."""
    times: set[datetime] = set()
    for expression in schedule.cron:
        times.update(_cron_times(expression, schedule, start, end))
    if schedule.every is not None:
        step = schedule.every.total_seconds()
        epoch = datetime(1970, 1, 1, tzinfo=UTC)
        n = int(-(-(start - epoch).total_seconds() // step))
        moment = epoch + timedelta(seconds=n * step)
        while moment < end:
            times.add(moment)
            moment += schedule.every
    return sorted(t for t in times if start <= t < end)


def nominal_for(schedule: TrainSchedule, departs: datetime) -> datetime | None:
    """The nominal departure that `departs` (a time Temporal reported, jitter included) is."""
    window = schedule.jitter + timedelta(seconds=1)
    candidates = [
        t
        for t in nominal_departures(schedule, departs - window, departs + timedelta(seconds=1))
        if t <= departs
    ]
    return candidates[-1] if candidates else None

"""Cars of a release train: boarding rules, departure order and failure propagation.

Pure functions over `Car` records, so that the train workflow's validators and the
departure workflow share one set of rules and the rules are tested without Temporal.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from pydantic import BaseModel, Field

from shiprail.plan.models import RolloutPlan


class Car(BaseModel):
    """A boarded plan, booked on one departure (its nominal time, UTC)."""

    car: str
    plan: RolloutPlan
    depends_on: list[str] = Field(default_factory=list)
    departure: datetime
    boarded_by: str = "unknown"
    boarded_at: datetime | None = None

    @property
    def services(self) -> list[str]:
        return [s.name for s in self.plan.spec.services]


def boarding_problem(car: Car, boarded: Sequence[Car]) -> str | None:
    """Why `car` cannot board next to the cars already `boarded` (None: it can)."""
    same = {c.car: c for c in boarded}
    if car.car in same:
        other = same[car.car]
        return f"plan {car.car} is already boarded (on the departure at {other.departure.isoformat()})"
    if car.car in car.depends_on:
        return f"car {car.car} cannot depend on itself"
    fellow = [c for c in boarded if c.departure == car.departure]
    for dependency in car.depends_on:
        if dependency not in same:
            return f"car {car.car} depends on {dependency}, which is not boarded"
        if same[dependency].departure != car.departure:
            return (
                f"car {car.car} would depart at {car.departure.isoformat()} but {dependency} departs at"
                f" {same[dependency].departure.isoformat()}: a dependency must travel on the same departure"
            )
    for other in fellow:
        shared = sorted(set(other.services) & set(car.services))
        if shared:
            return (
                f"service {', '.join(shared)} is already on car {other.car} of the departure at"
                f" {car.departure.isoformat()}: one departure drives a service once"
            )
    return None


def unboarding_problem(name: str, boarded: Sequence[Car]) -> str | None:
    if name not in {c.car for c in boarded}:
        return f"car {name} is not boarded"
    dependents = [c.car for c in boarded if name in c.depends_on]
    if dependents:
        return f"car {', '.join(dependents)} depends on {name}: unboard {'it' if len(dependents) == 1 else 'them'} first"
    return None


def take_for_departure(boarded: Sequence[Car], upto: datetime) -> tuple[list[Car], list[Car]]:
    """(departing, staying): every car booked on a departure at or before `upto`; a car that
    would bring a service a second time (two bookings merged by a skipped departure)
    waits for the next departure, together with the cars depending on it."""
    departing: list[Car] = []
    staying: list[Car] = []
    services: set[str] = set()
    for car in boarded:
        deferred = {c.car for c in staying}
        if car.departure > upto or set(car.services) & services or deferred & set(car.depends_on):
            staying.append(car)
            continue
        departing.append(car)
        services |= set(car.services)
    return departing, staying


def car_waves(cars: Sequence[Car], *, parallel: bool) -> list[list[str]]:
    """The order cars depart in: dependencies first, boarding order otherwise. With
    `parallel`, each wave holds every car whose dependencies are in earlier waves; without
    it, one car a wave."""
    done: set[str] = set()
    left = list(cars)
    waves: list[list[str]] = []
    while left:
        ready = [c for c in left if set(c.depends_on) <= done]
        if not ready:  # a cycle cannot board; a dependency outside the departure is no wait
            ready = [c for c in left if not set(c.depends_on) & {x.car for x in left}] or left[:1]
        wave = ready if parallel else ready[:1]
        waves.append([c.car for c in wave])
        done |= {c.car for c in wave}
        left = [c for c in left if c.car not in done]
    return waves


def blocked_by(car: Car, failed: Iterable[str]) -> str | None:
    """The failed car this car depends on, directly, if any."""
    failed_set = set(failed)
    return next((d for d in car.depends_on if d in failed_set), None)

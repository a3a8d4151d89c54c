"""Release trains without Temporal: the file format, boarding rules, departure order,
and the nominal departure times a skip must match."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import yaml

from shiprail.plan import PlanError, parse_plan
from shiprail.plan.cadence import nominal_departures, nominal_for
from shiprail.plan.cars import (
    Car,
    blocked_by,
    boarding_problem,
    car_waves,
    take_for_departure,
    unboarding_problem,
)
from shiprail.plan.loader import parse_train
from tests.helpers import plan_document

T1 = datetime(2026, 12, 8, 9, tzinfo=UTC)
T2 = T1 + timedelta(days=7)


def train_text(**spec: object) -> str:
    spec.setdefault("schedule", {"cron": ["0 10 * * tue"], "timezone": "Europe/Berlin"})
    return yaml.safe_dump(
        {"apiVersion": "shiprail/v1", "kind": "ReleaseTrain", "metadata": {"name": "weekly"}, "spec": spec}
    )


def car(
    name: str, services: list[str], *, depends_on: list[str] | None = None, departure: datetime = T1
) -> Car:
    plan = parse_plan(
        yaml.safe_dump(
            plan_document("http://x/exposure", [{"name": s} for s in services], metadata={"name": name})
        )
    )
    return Car(car=name, plan=plan, depends_on=depends_on or [], departure=departure)


def test_a_valid_train_has_small_catchup_and_skip_overlap_by_default() -> None:
    train = parse_train(train_text())
    assert train.spec.overlap == "skip"
    assert train.spec.catchup_window == timedelta(minutes=1)
    assert train.spec.on_failure == "stop"


def test_every_problem_of_a_train_is_reported_at_its_line() -> None:
    text = train_text(
        schedule={"cron": ["0 10 * * tux", "1 2 3"], "timezone": "Mars/Base", "jitter": "5 minutes"},
        cutof="2h",
        overlap="allow_all",
        catchup_window="1s",
        on_failure="retry",
        windows={"holidays": {"country": "DE", "subdiv": "ZZ"}},
    )
    with pytest.raises(PlanError) as caught:
        parse_train(text, "train.yaml")
    messages = "\n".join(str(i) for i in caught.value.issues)
    for expected in [
        "spec.schedule.cron[0]: cron '0 10 * * tux' is not a valid cron expression",
        "spec.schedule.cron[1]: cron '1 2 3' has 3 fields",
        "spec.schedule.timezone: unknown time zone 'Mars/Base'",
        "spec.schedule.jitter",
        "spec.cutof: unknown field 'cutof'; did you mean 'cutoff'?",
        "spec.overlap",
        "spec.catchup_window: catchup_window must be at least 10s",
        "spec.on_failure",
        "DE has no subdivision 'ZZ'",
    ]:
        assert expected in messages
    assert all(i.file == "train.yaml" and i.line > 0 for i in caught.value.issues)


def test_a_schedule_needs_a_cadence_and_a_cutoff_shorter_than_it() -> None:
    with pytest.raises(PlanError, match="a schedule needs cron, every, or both"):
        parse_train(train_text(schedule={"timezone": "UTC"}))
    with pytest.raises(PlanError, match="cutoff must be shorter than the interval"):
        parse_train(train_text(schedule={"every": "10s"}, cutoff="10s"))
    assert parse_train(train_text(schedule={"every": "10s", "cron": "*/5 * * * * * *"})).spec.schedule.cron


def test_boarding_refuses_a_second_boarding_a_shared_service_and_unknown_dependencies() -> None:
    payments = car("pay", ["payments"])
    boarded = [payments]
    assert boarding_problem(car("pay", ["ledger"]), boarded) == (
        f"plan pay is already boarded (on the departure at {T1.isoformat()})"
    )
    assert "service payments is already on car pay" in str(
        boarding_problem(car("pay2", ["payments"]), boarded)
    )
    assert boarding_problem(car("pay2", ["payments"], departure=T2), boarded) is None
    assert boarding_problem(car("chk", ["checkout"], depends_on=["nope"]), boarded) == (
        "car chk depends on nope, which is not boarded"
    )
    assert "must travel on the same departure" in str(
        boarding_problem(car("chk", ["checkout"], depends_on=["pay"], departure=T2), boarded)
    )
    assert boarding_problem(car("chk", ["checkout"], depends_on=["pay"]), boarded) is None
    assert (
        boarding_problem(car("chk", ["checkout"], depends_on=["chk"]), boarded)
        == "car chk cannot depend on itself"
    )


def test_unboarding_a_car_others_depend_on_is_refused() -> None:
    boarded = [car("pay", ["payments"]), car("chk", ["checkout"], depends_on=["pay"])]
    assert unboarding_problem("pay", boarded) == "car chk depends on pay: unboard it first"
    assert unboarding_problem("chk", boarded) is None
    assert unboarding_problem("nope", boarded) == "car nope is not boarded"


def test_a_departure_takes_cars_booked_up_to_it_and_defers_a_repeated_service() -> None:
    early = car("a", ["payments"])
    later = car("b", ["checkout"], departure=T2)
    assert take_for_departure([early, later], T1) == ([early], [later])
    # A skipped departure merges two bookings; the second payments car waits, with its dependents.
    again = car("c", ["payments"], departure=T2)
    dependent = car("d", ["search"], depends_on=["c"], departure=T2)
    departing, staying = take_for_departure([early, again, dependent, later], T2)
    assert [c.car for c in departing] == ["a", "b"]
    assert [c.car for c in staying] == ["c", "d"]


def test_cars_depart_in_dependency_order_then_boarding_order() -> None:
    cars = [
        car("frontend", ["fe"], depends_on=["checkout"]),
        car("checkout", ["co"], depends_on=["payments"]),
        car("search", ["se"]),
        car("payments", ["pa"]),
    ]
    sequential = [w[0] for w in car_waves(cars, parallel=False)]
    assert sequential.index("payments") < sequential.index("checkout") < sequential.index("frontend")
    assert sequential == ["search", "payments", "checkout", "frontend"]
    assert car_waves(cars, parallel=True) == [["search", "payments"], ["checkout"], ["frontend"]]
    assert blocked_by(cars[1], ["payments"]) == "payments"
    assert blocked_by(cars[2], ["payments"]) is None


def test_nominal_departures_follow_cron_in_the_zone_and_intervals_from_the_epoch() -> None:
    train = parse_train(
        train_text(schedule={"cron": ["0 10 * * tue"], "timezone": "Europe/Berlin", "every": "1d"})
    )
    found = nominal_departures(
        train.spec.schedule, datetime(2026, 12, 7, tzinfo=UTC), datetime(2026, 12, 9, tzinfo=UTC)
    )
    assert found == [datetime(2026, 12, 7, tzinfo=UTC), datetime(2026, 12, 8, tzinfo=UTC), T1]
    jittered = parse_train(
        train_text(schedule={"cron": "0 10 * * tue", "timezone": "Europe/Berlin", "jitter": "5m"})
    )
    assert nominal_for(jittered.spec.schedule, T1 + timedelta(minutes=3, seconds=7)) == T1
    seconds = parse_train(train_text(schedule={"cron": "*/20 * * * * * *", "timezone": "UTC"}))
    start = datetime(2026, 12, 8, 9, 0, 5, tzinfo=UTC)
    assert nominal_departures(seconds.spec.schedule, start, start + timedelta(minutes=1)) == [
        start.replace(second=s) for s in (20, 40)
    ] + [start.replace(minute=1, second=0)]

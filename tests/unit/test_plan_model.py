from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shiprail.plan import build_schedule, format_duration, parse_duration, parse_plan, resolve_services
from shiprail.plan.models import DeployWindows
from shiprail.plan.templates import render, with_label
from shiprail.plan.waves import compute_waves, dependents, find_cycle
from shiprail.plan.windows import next_open


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("5m", 300), ("2h", 7200), ("28d", 2419200), ("1h30m", 5400), ("250ms", 0.25), ("0", 0)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text).total_seconds() == seconds


@pytest.mark.parametrize("text", ["5", "5x", "m5", "", "1h 30m", "-5s"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_duration_round_trip() -> None:
    for text in ["30s", "1m30s", "2h", "28d", "250ms"]:
        assert format_duration(parse_duration(text)) == text


def test_waves_diamond() -> None:
    graph = {
        "ledger": [],
        "payments": ["ledger"],
        "inventory": ["ledger"],
        "checkout": ["payments", "inventory"],
    }
    assert compute_waves(graph) == [["ledger"], ["payments", "inventory"], ["checkout"]]
    assert dependents(graph, "payments") == {"payments", "checkout"}
    assert dependents(graph, "ledger") == {"ledger", "payments", "inventory", "checkout"}


def test_cycle_is_named() -> None:
    assert find_cycle({"a": ["b"], "b": ["c"], "c": ["a"]}) == ["a", "b", "c", "a"]
    with pytest.raises(ValueError, match="a → b → a"):
        compute_waves({"a": ["b"], "b": ["a"]})


PLAN = """
apiVersion: shiprail/v1
kind: RolloutPlan
metadata: {name: sched}
spec:
  defaults: {steps: [10, 100], bake: 1m, interval: 10s}
  max_parallel: 1
  services:
    - {name: a, version: '1', actuator: {type: http, url: 'http://x'}}
    - {name: b, version: '1', actuator: {type: http, url: 'http://x'}, bake: 2m}
    - {name: c, version: '1', depends_on: [a, b], actuator: {type: http, url: 'http://x'}, steps: [100]}
"""


def test_overrides_and_schedule_with_max_parallel() -> None:
    plan = parse_plan(PLAN)
    settings = {s.name: s for s in resolve_services(plan)}
    assert settings["b"].bake == timedelta(minutes=2) and settings["b"].steps == [10, 100]
    assert settings["c"].steps == [100] and settings["c"].wave == 1
    schedule = build_schedule(plan)
    # a (2m) then b (4m) one at a time, then c (1m)
    assert schedule.total == timedelta(minutes=7)
    starts = {(s.service, s.index): s.start for s in schedule.steps}
    assert starts[("b", 0)] == timedelta(minutes=2)
    assert starts[("c", 0)] == timedelta(minutes=6)


def test_render_escapes_label_values() -> None:
    query = render('x{version="{{version}}"}', {"version": 'evil"} or vector(1) #'})
    assert query == 'x{version="evil\\"} or vector(1) #"}'


def test_with_label() -> None:
    assert with_label('m{a="b"}', "le", "0.3") == 'm{a="b",le="0.3"}'
    assert with_label("m", "le", "+Inf") == 'm{le="+Inf"}'
    assert with_label("m{}", "le", "1") == 'm{le="1"}'


WINDOWS = DeployWindows.model_validate(
    {
        "timezone": "Europe/Berlin",
        "allow": [{"days": ["mon", "tue", "wed", "thu"], "start": "09:00", "end": "16:00"}],
        "deny": [{"from": "2026-12-20", "to": "2027-01-04", "reason": "year-end freeze"}],
    }
)


def test_windows_open_now() -> None:
    now = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)  # Monday 11:00 in Berlin
    assert next_open(now, WINDOWS) == now


def test_windows_after_hours_wait_for_next_morning() -> None:
    now = datetime(2026, 11, 23, 16, 0, tzinfo=UTC)  # Monday 17:00 Berlin
    assert next_open(now, WINDOWS) == datetime(2026, 11, 24, 8, 0, tzinfo=UTC)


def test_windows_weekend_and_freeze() -> None:
    friday = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
    assert next_open(friday, WINDOWS) == datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
    in_freeze = datetime(2026, 12, 21, 10, 0, tzinfo=UTC)
    assert next_open(in_freeze, WINDOWS) == datetime(2027, 1, 5, 8, 0, tzinfo=UTC)


def test_windows_yaml_sexagesimal_clock() -> None:
    # Unquoted 09:00 is read by YAML 1.1 as 540; it must still mean nine o'clock.
    plan = parse_plan(
        "apiVersion: shiprail/v1\nkind: RolloutPlan\nmetadata: {name: x}\nspec:\n"
        "  windows: {allow: [{days: [mon], start: 09:00, end: 16:30}]}\n"
        "  services: [{name: a, version: '1', actuator: {type: http, url: 'http://x'}}]\n"
    )
    assert plan.spec.windows is not None
    assert plan.spec.windows.allow[0].start.hour == 9 and plan.spec.windows.allow[0].end.minute == 30


def test_placeholders_are_escaped_for_where_they_stand() -> None:
    from shiprail.plan.templates import UnsafeValue, render, substitute

    hostile = {"version": "a\"b'c\\d.*\n", "weight": "25", "bake": "5m"}
    assert render('m{v="{{version}}"}', hostile) == 'm{v="a\\"b\'c\\\\d.*\\n"}'
    assert render("m{v='{{version}}'}", hostile) == "m{v='a\"b\\'c\\\\d.*\\n'}"
    assert render('m{v=~"{{version}}"}', {"version": "1.2.*"}) == 'm{v=~"1\\\\.2\\\\.\\\\*"}'
    assert render("m{v!~`{{version}}`}", {"version": "1.2.*"}) == "m{v!~`1\\.2\\.\\*`}"
    assert (
        render('vector({{weight}}) * rate(m{a="x"}[{{bake}}])', hostile) == 'vector(25) * rate(m{a="x"}[5m])'
    )
    # A string closed before the placeholder: the next one is outside again.
    assert render('m{a="x"} + vector({{weight}})', hostile) == 'm{a="x"} + vector(25)'
    with pytest.raises(UnsafeValue, match="backtick"):
        render("m{v=`{{version}}`}", {"version": "x`y"})
    with pytest.raises(UnsafeValue, match="outside a quoted string"):
        render("vector({{version}})", hostile)
    assert substitute("{{version}}", hostile) == hostile["version"]  # not PromQL: as it is


@pytest.mark.parametrize(
    "value", [3.2045187049103348e16, float("inf"), float("nan"), "99999999999999999999999d", "3651d"]
)
def test_a_duration_beyond_any_plan_is_refused_not_an_overflow(value: object) -> None:
    from shiprail.plan.durations import parse_duration

    with pytest.raises(ValueError, match="is longer than 3650d"):
        parse_duration(value)

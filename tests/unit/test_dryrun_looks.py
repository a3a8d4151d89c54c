"""A dry run replays a sequential gate's looks at its interval, as the bake would have taken them."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from pydantic import TypeAdapter

from shiprail.gates.base import GateContext
from shiprail.gates.dryrun import MAX_LOOKS, _looks, _warm_up_looks
from shiprail.plan.models import Gate

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
GATE = TypeAdapter(Gate)


def _ctx(since: timedelta) -> GateContext:
    return GateContext("s", "2", "1", 10, NOW - since, NOW, since, timedelta(seconds=30))


def test_a_sequential_gate_is_looked_at_every_interval_up_to_now() -> None:
    counts = GATE.validate_python(
        {"type": "compare", "bad": "b", "total": "t", "interval": "10s", "initial_delay": "30s"}
    )
    times = _looks(counts, _ctx(timedelta(minutes=5)))
    assert times[0] == NOW - timedelta(minutes=5) + timedelta(seconds=40) and times[-1] == NOW
    assert all(b - a == timedelta(seconds=10) for a, b in itertools.pairwise(times))
    assert len(times) == 27


def test_long_windows_are_thinned_and_other_gates_look_once() -> None:
    counts = GATE.validate_python({"type": "compare", "histogram": "h", "interval": "1s"})
    times = _looks(counts, _ctx(timedelta(hours=1)))
    assert len(times) <= MAX_LOOKS + 1 and times[-1] == NOW
    threshold = GATE.validate_python({"type": "threshold", "query": "q", "max": 1})
    assert _looks(threshold, _ctx(timedelta(hours=1))) == [NOW]
    samples = GATE.validate_python({"type": "compare", "query": "q"})
    assert _looks(samples, _ctx(timedelta(hours=1))) == [NOW]


def test_a_gate_that_learns_from_its_warm_up_is_replayed_through_it() -> None:
    """The bake's looks inside `initial_delay` learn the noise and judge nothing: the dry
    run takes them too, up to the warm-up's end, and a gate that takes none has none."""
    start = NOW - timedelta(minutes=5)
    counts = GATE.validate_python(
        {"type": "compare", "bad": "b", "total": "t", "interval": "10s", "initial_delay": "30s"}
    )
    assert _warm_up_looks(counts, _ctx(timedelta(minutes=5))) == [
        start + timedelta(seconds=s) for s in (10, 20, 30)
    ]
    # A step younger than its warm-up learns up to now.
    assert _warm_up_looks(counts, _ctx(timedelta(seconds=25))) == [
        NOW - timedelta(seconds=s) for s in (15, 5)
    ]
    undelayed = GATE.validate_python({"type": "compare", "histogram": "h", "interval": "10s"})
    samples = GATE.validate_python({"type": "compare", "query": "q", "initial_delay": "30s"})
    assert _warm_up_looks(undelayed, _ctx(timedelta(minutes=5))) == []
    assert _warm_up_looks(samples, _ctx(timedelta(minutes=5))) == []

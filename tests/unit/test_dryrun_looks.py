"""A dry run replays a sequential gate's looks at its interval, as the bake would have taken them."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from pydantic import TypeAdapter

from shiprail.gates.base import GateContext
from shiprail.gates.dryrun import MAX_LOOKS, _looks
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

"""The demo fleet's shape and its scenarios, as data.

A scenario says how each service's *canary* behaves; the stable versions always behave
like `BASELINE`. Adding a scenario is adding a row here, never a code path.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# consumer → the providers it calls on every request
TOPOLOGY: dict[str, tuple[str, ...]] = {
    "frontend": ("checkout",),
    "checkout": ("payments", "inventory"),
    "payments": (),
    "inventory": (),
}
STABLE_VERSIONS = {"frontend": "4.2.0", "checkout": "1.8.0", "payments": "2.3.0", "inventory": "3.0.0"}
ENTRY = "frontend"


# Enough that a 10 % canary step of the demo plan has its gates' `min_samples` on a slow host
# (at 40, a good release's first step saw 8.7 canary requests where 10 are needed).
LOAD_RPS = 60.0


@dataclass(frozen=True)
class Behaviour:
    """How one version of a service answers a request."""

    error_rate: float = 0.001
    latency: float = 0.012  # median of a log-normal, seconds
    extra_latency: float = 0.0
    # Errors at `flaky_rate` during the first `flaky_on` seconds of every `flaky_period`.
    flaky_rate: float = 0.0
    flaky_on: float = 0.0
    flaky_period: float = 0.0
    # Extra error rate added per minute since the version first served traffic.
    degrade_per_minute: float = 0.0
    # Share of 200 answers whose payload is broken: the caller fails, this service looks fine.
    corrupt: float = 0.0

    def error_probability(self, now: float, serving_since: float) -> float:
        rate = self.error_rate + self.degrade_per_minute * max(now - serving_since, 0.0) / 60
        if self.flaky_period and (now % self.flaky_period) < self.flaky_on:
            rate += self.flaky_rate
        return min(rate, 1.0)


BASELINE = Behaviour()


@dataclass(frozen=True)
class Scenario:
    name: str
    summary: str
    canary: dict[str, Behaviour] = field(default_factory=dict)
    load_rps: float | None = None  # None: the fleet's configured rate
    expect: str = "succeeded"  # the rollout's end phase
    caught_on: tuple[str, ...] = ()  # the services whose gates should fail
    caught_by: tuple[str, ...] = ()  # the gates meant to catch it
    train: bool = False  # run the plan as two dependent cars of a release train


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("good", "every canary behaves like its stable version"),
        Scenario(
            "train",
            "a release train departing every 30s carries the plan as two dependent cars (providers, then consumers)",
            train=True,
        ),
        Scenario(
            "bad-payments",
            "the payments canary fails 12% of requests",
            canary={"payments": Behaviour(error_rate=0.12)},
            expect="rolled_back",
            caught_on=("payments",),
            caught_by=("errors", "error-ratio"),
        ),
        Scenario(
            "slow-inventory",
            "the inventory canary adds 300 ms to every request",
            canary={"inventory": Behaviour(extra_latency=0.3)},
            expect="rolled_back",
            caught_on=("inventory",),
            caught_by=("slow", "p95-latency"),
        ),
        Scenario(
            "flaky-checkout",
            "the checkout canary fails 50% of requests for 2 s out of every 5 s",
            canary={"checkout": Behaviour(flaky_rate=0.5, flaky_on=2, flaky_period=5)},
            expect="rolled_back",
            caught_on=("checkout",),
            caught_by=("errors", "error-ratio"),
        ),
        Scenario(
            "degrading-payments",
            "the payments canary starts clean and fails 1% more of its requests every second",
            canary={"payments": Behaviour(error_rate=0.0, degrade_per_minute=0.6)},
            expect="rolled_back",
            caught_on=("payments",),
            caught_by=("errors", "error-ratio"),
        ),
        Scenario(
            "corrupt-payments",
            "the payments canary answers 200 with a broken payload 30% of the time:"
            " only checkout's metrics show it",
            canary={"payments": Behaviour(corrupt=0.3)},
            expect="rolled_back",
            caught_on=("checkout",),
            caught_by=("errors", "error-ratio"),
        ),
        Scenario(
            "no-traffic",
            "no requests reach the fleet: gates have no data and must not pass",
            load_rps=0,
            expect="rolled_back",
            caught_on=("payments", "inventory"),
            caught_by=("errors", "slow", "error-ratio", "p95-latency"),
        ),
    )
}

"""Hostile template values against the real Prometheus: a version string or an
actuator-reported stable_version written to break out of its quotes cannot change what a
gate's query means, so it cannot change the verdict."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
import requests

from shiprail.devstack.prometheus import PrometheusServer
from shiprail.gates import GateContext, PrometheusSource, evaluate
from shiprail.plan.models import ThresholdGate

# Prometheus scrapes itself under this job: `up{job=JOB}` is 1, every other job is absent.
JOB = "promql-escaping"


@pytest.fixture(scope="module")
def scraping_itself(prometheus: PrometheusServer) -> PrometheusServer:
    target = f"127.0.0.1:{prometheus.port}"
    prometheus.add_targets([target], labels={"job": JOB})
    prometheus.wait_for_targets_up([target])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # until gates, which look a moment back, see it too
        at = time.time() - 2
        found = requests.get(
            f"{prometheus.url}/api/v1/query", params={"query": f'up{{job="{JOB}"}}', "time": at}, timeout=5
        ).json()["data"]["result"]
        if found:
            return prometheus
        time.sleep(0.2)
    raise AssertionError("Prometheus never answered for its own scrape")


def verdict(
    server: PrometheusServer, query: str, *, version: str = "2.0", stable: str = "1.0"
) -> tuple[str, float | None]:
    gate = ThresholdGate(type="threshold", query=query, max=0.5, inconclusive_limit=0)
    now = datetime.now(UTC)
    ctx = GateContext(
        service="svc",
        version=version,
        stable_version=stable,
        weight=10,
        step_start=now - timedelta(minutes=1),
        now=now,
        bake=timedelta(minutes=5),
        interval=timedelta(seconds=10),
    )
    result = evaluate("injection", gate, ctx, PrometheusSource(server.url), {})
    return result.status.value, result.value


@pytest.mark.parametrize(
    ("query", "hostile"),
    [
        ('count(up{job="{{version}}"}) or vector(0)', f'x"}} or up{{job="{JOB}'),
        ("count(up{job='{{version}}'}) or vector(0)", f"x'}} or up{{job='{JOB}"),
        ('count(up{job=~"{{version}}"}) or vector(0)', ".*"),
        ('count(up{job=~"{{version}}"}) or vector(0)', f"{JOB}|x"),
        ('count(up{job="{{stable_version}}"}) or vector(0)', f'x"}} or up{{job="{JOB}'),
    ],
    ids=["double-quote", "single-quote", "regex-wildcard", "regex-alternation", "stable-version"],
)
def test_a_hostile_value_matches_only_itself(
    scraping_itself: PrometheusServer, query: str, hostile: str
) -> None:
    # The same query really can see the self-scrape, so an injection would have shown.
    assert verdict(scraping_itself, query.replace("{{version}}", JOB).replace("{{stable_version}}", JOB)) == (
        "fail",
        1.0,
    )
    field = "stable" if "stable_version" in query else "version"
    assert verdict(scraping_itself, query, **{field: hostile}) == ("pass", 0.0)


def test_a_value_that_cannot_be_quoted_where_it_stands_is_never_a_pass(
    scraping_itself: PrometheusServer,
) -> None:
    status, _ = verdict(
        scraping_itself, "count(up{job=`{{version}}`}) or vector(0)", version="x` or vector(1) or `"
    )
    assert status == "inconclusive"
    status, _ = verdict(scraping_itself, "vector({{version}})", version="1) or vector(0")
    assert status == "inconclusive"

"""The pre-flight check: does every service have enough error budget left?"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from temporalio import activity

from shiprail.activities.bake import prometheus_url
from shiprail.activities.types import BudgetRequest, BudgetResult
from shiprail.gates import GateContext, PrometheusSource, Verdict
from shiprail.gates import budget as budget_gate
from shiprail.gates.base import no_data


@activity.defn
async def check_budget(request: BudgetRequest) -> BudgetResult:
    now = datetime.now(UTC)
    url = prometheus_url(request.prometheus_url)
    verdicts = {}
    for service in request.services:
        ctx = GateContext(
            service=service,
            version="",
            stable_version="",
            weight=0,
            step_start=now,
            now=now,
            bake=timedelta(0),
            interval=timedelta(0),
        )
        if url is None:
            verdicts[service] = no_data("budget_policy", "no Prometheus configured")
            continue
        source = PrometheusSource(url)
        at = source.settled(now)
        results = await asyncio.to_thread(source.fetch, budget_gate.queries(request.policy, ctx), at)
        verdicts[service] = budget_gate.judge(request.policy, ctx, results)
    passed = all(v.status is Verdict.PASS for v in verdicts.values())
    return BudgetResult(passed=passed, verdicts=verdicts, at=now)

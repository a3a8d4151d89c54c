"""The Prometheus source: runs a gate's named queries and never raises for bad data.

Errors, timeouts, empty results and NaN come back as `QueryResult`s that gates judge as
inconclusive. Transient failures (connection, 5xx) are retried here a few times within
one evaluation, separately from the gate's own failure counting; a bad query (4xx) is not
retried and carries Prometheus's own error message.
"""

from __future__ import annotations

import json
import math
import time
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from shiprail.gates.base import QueryResult, QuerySpec

if TYPE_CHECKING:
    from prometheus_api_client.exceptions import PrometheusApiClientException

_ATTEMPTS = 3
_UNREACHABLE = "unreachable"
_BACKOFF = 0.5
# A sample is stamped with its scrape's start but stored when the scrape ends. Queried at
# "now", a gate's second query can see a sample its first did not, and two counters of one
# target disagree by a whole scrape: on a short window, "0 of 48 requests fast".
SETTLE = timedelta(seconds=1)


class PrometheusSource:
    def __init__(
        self, url: str, timeout: timedelta = timedelta(seconds=10), *, settle: timedelta = SETTLE
    ) -> None:
        self.url = url.rstrip("/")
        self.timeout = max(1, int(timeout.total_seconds()))
        self.settle = settle
        # The HTTP stack is imported here, by whoever queries: the command line imports
        # this module for every command, and `requests` alone takes a noticeable part of
        # a second to import.
        from prometheus_api_client import PrometheusConnect
        from urllib3.util.retry import Retry

        # Retries are ours (`_ATTEMPTS`): the client's own urllib3 retries with backoff would
        # stretch one evaluation against a dead Prometheus to tens of seconds.
        self._client = PrometheusConnect(
            url=self.url, disable_ssl=True, timeout=self.timeout, retry=Retry(total=0, raise_on_status=False)
        )

    def settled(self, now: datetime) -> datetime:
        """The latest instant whose scrapes are all stored: where every query is evaluated.

        Every query of one evaluation must see the same samples, or a ratio of two of them
        is off by whatever one scrape added (scrapes shorter than `settle` assumed).
        """
        return now - self.settle

    def fetch(self, specs: dict[str, QuerySpec], at: datetime) -> dict[str, QueryResult]:
        """Run `specs` at `at` (an instant from `settled`, so that they agree)."""
        results: dict[str, QueryResult] = {}
        for name, spec in specs.items():
            results[name] = self.run(spec, at)
            if _UNREACHABLE in (results[name].error or ""):
                # The rest would only wait out the same retries: the evaluation is
                # inconclusive either way, and a dead Prometheus is reported sooner.
                return {n: results.get(n, results[name]) for n in specs}
        return results

    def run(self, spec: QuerySpec, at: datetime) -> QueryResult:
        import requests
        from prometheus_api_client.exceptions import PrometheusApiClientException

        error = "no attempt made"
        for attempt in range(_ATTEMPTS):
            try:
                if spec.range_step is not None and spec.range_start is not None:
                    return self._range(spec, at)
                return self._instant(spec, at)
            except PrometheusApiClientException as exc:
                error, permanent = _api_error(exc)
                if permanent:
                    return QueryResult(error=error)
            except requests.RequestException as exc:
                error = f"Prometheus at {self.url} {_UNREACHABLE}: {type(exc).__name__}"
            if attempt + 1 < _ATTEMPTS:
                time.sleep(_BACKOFF * (attempt + 1))
        return QueryResult(error=error)

    def _instant(self, spec: QuerySpec, at: datetime) -> QueryResult:
        result: Any = self._client.custom_query(spec.promql, params={"time": at.timestamp()})
        return _single_value(result) if spec.by is None else _by_label(result, spec.by)

    def _range(self, spec: QuerySpec, at: datetime) -> QueryResult:
        assert spec.range_start is not None and spec.range_step is not None
        step = f"{max(1, int(spec.range_step.total_seconds()))}s"
        result: Any = self._client.custom_query_range(
            spec.promql, start_time=spec.range_start, end_time=at, step=step
        )
        if len(result) > 1:
            return QueryResult(error=f"query returned {len(result)} series; a gate needs one")
        if not result:
            return QueryResult()
        series = [float(v) for _, v in result[0]["values"]]
        finite = [v for v in series if math.isfinite(v)]
        return QueryResult(value=finite[-1] if finite else None, series=finite)

    def check_ready(self) -> str | None:
        """None when Prometheus answers, else why not."""
        import requests

        try:
            response = requests.get(f"{self.url}/-/ready", timeout=self.timeout)
        except requests.RequestException as exc:
            return f"Prometheus at {self.url} unreachable: {type(exc).__name__}"
        return None if response.ok else f"Prometheus at {self.url} not ready: HTTP {response.status_code}"


def _single_value(result: Any) -> QueryResult:
    # A scalar comes back as [ts, "value"], a vector as a list of {metric, value}.
    if isinstance(result, list) and len(result) == 2 and not isinstance(result[0], dict):
        return QueryResult(value=float(result[1]))
    if not result:
        return QueryResult()
    if len(result) > 1:
        labels = ", ".join(json.dumps(r.get("metric", {})) for r in result[:3])
        return QueryResult(
            error=f"query returned {len(result)} series ({labels}…); a gate needs one: aggregate it with sum()"
        )
    return QueryResult(value=float(result[0]["value"][1]))


def _by_label(result: Any, label: str) -> QueryResult:
    by_label: dict[str, float] = {}
    for series in result if isinstance(result, list) else []:
        key = series.get("metric", {}).get(label) if isinstance(series, dict) else None
        if key is None:
            return QueryResult(
                error=f"query returned a series without label {label!r}: aggregate it by ({label})"
            )
        if key in by_label:
            return QueryResult(
                error=f"query returned two series with {label}={key!r}: aggregate it by ({label})"
            )
        value = float(series["value"][1])
        if math.isfinite(value):
            by_label[key] = value
    return QueryResult(by_label=by_label)


def _api_error(exc: PrometheusApiClientException) -> tuple[str, bool]:
    """Prometheus's own message, and whether retrying cannot help."""
    text = str(exc)
    status = 0
    if text.startswith("HTTP Status Code "):
        try:
            status = int(text.split()[3])
        except (IndexError, ValueError):
            status = 0
    message = text
    start = text.find("{")
    if start != -1:
        try:
            raw = text[start:].rstrip(")'\"")
            body = json.loads(raw.encode().decode("unicode_escape"))
            message = f"{body.get('errorType', 'error')}: {body.get('error', text)}"
        except (ValueError, UnicodeDecodeError):
            pass
    return f"Prometheus rejected the query: {message}", 400 <= status < 500

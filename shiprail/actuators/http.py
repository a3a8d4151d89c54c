"""The HTTP webhook actuator (DESIGN §5).

GET {url}?service=S returns the exposure; PUT {url} sets it and must be idempotent per
`idempotency_key`. 4xx is permanent, 5xx and connection errors are transient.
"""

from __future__ import annotations

import asyncio
import ssl
import weakref
from functools import cache
from typing import Any

import httpx

from shiprail.actuators.base import ActuatorError, ExposureChange, PermanentActuatorError
from shiprail.actuators.secrets import resolve
from shiprail.plan.models import HttpActuator
from shiprail.status import Exposure


@cache
def _tls() -> ssl.SSLContext:
    # Building a context loads the CA bundle (milliseconds of CPU): once per worker.
    return ssl.create_default_context()


_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient] = (
    weakref.WeakKeyDictionary()
)


def _client() -> httpx.AsyncClient:
    """The worker's pooled client (one per event loop).

    A restore then reuses the connection an earlier call left open instead of paying a TCP
    and TLS handshake on the rollback's critical path. No limit on connections: a wave of
    hundreds of concurrent changes must not queue behind a pool.
    """
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None or client.is_closed:
        client = _clients[loop] = httpx.AsyncClient(
            verify=_tls(), limits=httpx.Limits(max_connections=None, max_keepalive_connections=100)
        )
    return client


class HttpWebhookActuator:
    def __init__(self, config: HttpActuator) -> None:
        self.config = config

    def _headers(self) -> dict[str, str]:
        return {k: resolve(v, what=f"actuator header {k}") for k, v in self.config.headers.items()}

    async def _call(self, method: str, **kwargs: Any) -> httpx.Response:
        try:
            response = await _client().request(
                method,
                self.config.url,
                headers=self._headers(),
                timeout=self.config.timeout.total_seconds(),
                **kwargs,
            )
        except httpx.HTTPError as exc:
            raise ActuatorError(f"{method} {self.config.url}: {type(exc).__name__}: {exc}") from None
        if response.status_code >= 500:
            raise ActuatorError(
                f"{method} {self.config.url}: HTTP {response.status_code}: {response.text[:200]}"
            )
        if response.status_code >= 400:
            raise PermanentActuatorError(
                f"{method} {self.config.url}: HTTP {response.status_code}: {response.text[:200]}"
            )
        return response

    async def read(self, service: str) -> Exposure:
        response = await self._call("GET", params={"service": service})
        try:
            return Exposure.model_validate(response.json())
        except ValueError as exc:
            raise PermanentActuatorError(f"GET {self.config.url}: unexpected answer: {exc}") from None

    async def apply(self, change: ExposureChange) -> None:
        await self._call("PUT", json=change.model_dump())

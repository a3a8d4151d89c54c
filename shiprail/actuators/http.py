"""The HTTP webhook actuator (DESIGN §5).

GET {url}?service=S returns the exposure; PUT {url} sets it and must be idempotent per
`idempotency_key`. 4xx is permanent, 5xx and connection errors are transient.
"""

from __future__ import annotations

import asyncio
import ssl
from datetime import timedelta
from functools import cache
from typing import TYPE_CHECKING, Any

from shiprail.actuators.base import ActuatorError, ExposureChange, PermanentActuatorError
from shiprail.actuators.secrets import redact, resolve
from shiprail.plan.actuators import HttpActuator
from shiprail.status import Exposure

if TYPE_CHECKING:
    import aiohttp


@cache
def _tls() -> ssl.SSLContext:
    # Building a context loads the CA bundle (milliseconds of CPU): once per worker.
    return ssl.create_default_context()


_sessions: dict[asyncio.AbstractEventLoop, aiohttp.ClientSession] = {}


def pooled_session() -> aiohttp.ClientSession:
    """The worker's pooled session (one per event loop).

    A restore then reuses the connection an earlier call left open instead of paying a TCP
    and TLS handshake on the rollback's critical path. No limit on connections: a wave of
    hundreds of concurrent changes must not queue behind a pool. aiohttp rather than a
    pure-Python client because a rollback wave is CPU-bound in the client: its C parser
    spends about 0.2 ms of CPU per call where httpx spent 0.9, and a wave's calls go out one
    after another from one event loop. Imported here, not at the top: it takes a third of a
    second, and every CLI command imports this module.
    """
    import aiohttp

    loop = asyncio.get_running_loop()
    session = _sessions.get(loop)
    if session is None or session.closed:
        session = _sessions[loop] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, ssl=_tls()))
    return session


async def close_sessions() -> None:
    """Close the pooled session of this event loop, and forget those of closed loops.

    Call it before the loop ends (the worker does on shutdown): an open session holds its
    connections, and aiohttp complains about it at exit.
    """
    loop = asyncio.get_running_loop()
    for owner in [o for o in _sessions if o is loop or o.is_closed()]:
        session = _sessions.pop(owner)
        if owner is loop:
            await session.close()


async def request_text(
    method: str, url: str, headers: dict[str, str], timeout: timedelta, **kwargs: Any
) -> tuple[int, str]:
    """One call through the pooled session: (status, body). A connection failure or a
    timeout is transient; an error body has the secrets sent in `headers` redacted, since an
    actuator that echoes a token must not carry it into the failure, and so into history."""
    import aiohttp

    try:
        async with pooled_session().request(
            method,
            url,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=timeout.total_seconds()),
            **kwargs,
        ) as response:
            status, text = response.status, (await response.read()).decode("utf-8", "replace")
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise ActuatorError(f"{method} {url}: {type(exc).__name__}: {exc}") from None
    return status, redact(text, headers.values()) if status >= 400 else text


class HttpWebhookActuator:
    def __init__(self, config: HttpActuator) -> None:
        self.config = config

    def _headers(self) -> dict[str, str]:
        return {k: resolve(v, what=f"actuator header {k}") for k, v in self.config.headers.items()}

    async def _call(self, method: str, **kwargs: Any) -> str:
        """The body of a successful answer; transient and permanent failures told apart."""
        headers = self._headers()
        status, text = await request_text(method, self.config.url, headers, self.config.timeout, **kwargs)
        if status >= 400:
            error = ActuatorError if status >= 500 else PermanentActuatorError
            raise error(f"{method} {self.config.url}: HTTP {status}: {text[:200]}")
        return text

    async def read(self, service: str) -> Exposure:
        text = await self._call("GET", params={"service": service})
        try:
            return Exposure.model_validate_json(text)
        except ValueError as exc:
            raise PermanentActuatorError(f"GET {self.config.url}: unexpected answer: {exc}") from None

    async def apply(self, change: ExposureChange) -> None:
        await self._call("PUT", json=change.model_dump())

    async def restore(self, change: ExposureChange, original: Exposure) -> None:
        # The contract's exposure is a version and a weight: the change already carries both.
        await self.apply(change)

    async def served(self, change: ExposureChange) -> bool | None:
        return True  # the contract's PUT answers once the change is applied

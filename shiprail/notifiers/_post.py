"""A JSON POST through the actuators' pooled HTTP session, with errors a retry policy can use."""

from __future__ import annotations

from typing import Any

from shiprail.actuators.http import pooled_session
from shiprail.notifiers.base import NotifyError


async def post_json(
    url: str, body: dict[str, Any], headers: dict[str, str], timeout: float, *, shown: str
) -> None:
    """POST `body`; `shown` names the target in errors without its secret URL or headers."""
    import aiohttp

    try:
        async with pooled_session().post(
            url, json=body, headers=headers, timeout=aiohttp.ClientTimeout(total=timeout)
        ) as response:
            status = response.status
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise NotifyError(f"{shown}: {type(exc).__name__}") from None
    if status >= 300:
        raise NotifyError(f"{shown}: HTTP {status}")

"""Connecting to Temporal the way every Temporal tool does: the SDK's environment config.

`TEMPORAL_ADDRESS`, `TEMPORAL_NAMESPACE`, `TEMPORAL_API_KEY`, the TLS variables and the
profiles of `temporal.toml` all apply; without any of them we talk to a local dev server.
"""

from __future__ import annotations

import os
from typing import Any

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.envconfig import ClientConfigProfile
from temporalio.runtime import LoggingConfig, Runtime, TelemetryConfig, TelemetryFilter
from temporalio.service import RPCError

from shiprail.codec import Keyring, data_converter
from shiprail.errors import BadInput, Unreachable

TASK_QUEUE = "shiprail"
DEFAULT_ADDRESS = "127.0.0.1:7233"


def connect_config(address: str | None = None) -> dict[str, Any]:
    try:
        profile = ClientConfigProfile.load(profile=os.environ.get("TEMPORAL_PROFILE"))
    except Exception as exc:  # the SDK raises plain errors for unreadable config files
        raise BadInput(f"cannot read the Temporal client configuration: {exc}") from None
    config: dict[str, Any] = dict(profile.to_client_connect_config())
    if address:
        config["target_host"] = address
    config.setdefault("target_host", DEFAULT_ADDRESS)
    config.setdefault("namespace", "default")
    return config


def quiet_runtime() -> Runtime:
    """A runtime that logs only errors: for the demo, whose terminal is for the rollout."""
    quiet = TelemetryFilter(core_level="ERROR", other_level="ERROR")
    return Runtime(telemetry=TelemetryConfig(logging=LoggingConfig(filter=quiet)))


async def connect(
    address: str | None = None, *, identity: str | None = None, runtime: Runtime | None = None
) -> Client:
    config = connect_config(address)
    try:
        if identity:
            config["identity"] = identity
        if runtime:
            config["runtime"] = runtime
        converter = data_converter(pydantic_data_converter, Keyring.from_environment())
        return await Client.connect(**config, data_converter=converter)
    except RuntimeError as exc:  # the core SDK reports connection failures as RuntimeError
        detail = "connection refused" if "Connection refused" in str(exc) else str(exc)
        raise Unreachable(
            f"cannot reach Temporal at {config['target_host']} (namespace {config['namespace']}): {detail}",
            hint="start one with `shiprail dev`, or set TEMPORAL_ADDRESS / a temporal.toml profile",
        ) from None
    except RPCError as exc:
        raise Unreachable(f"Temporal at {config['target_host']} refused the connection: {exc}") from None

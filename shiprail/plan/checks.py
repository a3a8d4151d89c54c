"""Whole-plan checks: references, cycles and effective per-service settings.

They read the raw YAML data rather than the validated model so they still run when some
field elsewhere is malformed: `plan check` reports every problem in one pass.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from shiprail.plan.actuators import FLAG_PLATFORMS
from shiprail.plan.durations import format_duration, parse_duration
from shiprail.plan.waves import compute_waves, find_cycle

Path = tuple[str | int, ...]


@dataclass(frozen=True)
class Problem:
    path: Path
    message: str


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _duration(value: Any) -> timedelta | None:
    try:
        return parse_duration(value) if value is not None else None
    except ValueError:
        return None


def cross_check(raw: dict[str, Any]) -> list[Problem]:
    spec = _dict(raw.get("spec"))
    services = [(i, s) for i, s in enumerate(_list(spec.get("services"))) if isinstance(s, dict)]
    return [
        *_duplicate_names(services),
        *_dependency_problems(services),
        *_gate_references(spec, services),
        *_timing_problems(spec, services),
        *_lockstep_problems(spec, services),
        *_literal_secrets(spec, services),
        *_flag_problems(raw, services),
    ]


def _flag_problems(raw: dict[str, Any], services: list[tuple[int, dict[str, Any]]]) -> Iterator[Problem]:
    """Flag-platform services of one rollout share one bucketing key (or a percentage picks
    different users in each), and no flag is driven by two services."""
    default = _dict(raw.get("metadata")).get("name")
    first_key: tuple[int, Any] | None = None
    flags: dict[tuple[Any, ...], int] = {}
    for i, service in services:
        actuator = _dict(service.get("actuator"))
        if actuator.get("type") not in FLAG_PLATFORMS:
            continue
        key = actuator.get("bucket_key", default)
        if first_key is None:
            first_key = (i, key)
        elif key != first_key[1]:
            yield Problem(
                ("spec", "services", i, "actuator", "bucket_key"),
                f"bucket_key {key!r} differs from {first_key[1]!r} of services[{first_key[0]}]: every flag of"
                " one rollout must bucket by the same key, or a percentage picks different users in each service",
            )
        # repr: a malformed field may hold a list or a mapping, which cannot be a key.
        where = tuple(repr(actuator.get(f)) for f in ("type", "path", "url", "flag", "feature"))
        if where in flags:
            yield Problem(
                ("spec", "services", i, "actuator"),
                f"services[{flags[where]}] already drives this flag: two services would overwrite each other",
            )
        flags.setdefault(where, i)


def _duplicate_names(services: list[tuple[int, dict[str, Any]]]) -> Iterator[Problem]:
    first: dict[str, int] = {}
    for i, service in services:
        name = service.get("name")
        if not isinstance(name, str):
            continue
        if name in first:
            yield Problem(
                ("spec", "services", i, "name"),
                f"duplicate service name {name!r} (first at services[{first[name]}])",
            )
        else:
            first[name] = i


def _graph(services: list[tuple[int, dict[str, Any]]]) -> dict[str, list[str]]:
    graph: dict[str, list[str]] = {}
    for _, service in services:
        name = service.get("name")
        if isinstance(name, str) and name not in graph:
            graph[name] = [d for d in _list(service.get("depends_on")) if isinstance(d, str)]
    return graph


def _dependency_problems(services: list[tuple[int, dict[str, Any]]]) -> Iterator[Problem]:
    graph = _graph(services)
    known = ", ".join(graph) or "none"
    for i, service in services:
        for j, provider in enumerate(_list(service.get("depends_on"))):
            if not isinstance(provider, str):
                continue  # the schema names the wrong type at this line
            if provider == service.get("name"):
                yield Problem(
                    ("spec", "services", i, "depends_on", j), f"service {provider!r} cannot depend on itself"
                )
            elif provider not in graph:
                yield Problem(
                    ("spec", "services", i, "depends_on", j),
                    f"unknown service {provider!r} in depends_on (known: {known})",
                )
    cycle = find_cycle({k: [p for p in v if p != k] for k, v in graph.items()})
    if cycle:
        index = next(i for i, s in services if s.get("name") == cycle[0])
        yield Problem(("spec", "services", index, "depends_on"), "dependency cycle: " + " → ".join(cycle))


def _gate_references(spec: dict[str, Any], services: list[tuple[int, dict[str, Any]]]) -> Iterator[Problem]:
    defined = set(_dict(spec.get("gates")))
    known = ", ".join(sorted(defined)) or "none defined in spec.gates"
    places: list[tuple[Path, Any]] = [
        (("spec", "defaults", "gates"), _dict(spec.get("defaults")).get("gates"))
    ]
    places += [(("spec", "services", i, "gates"), s.get("gates")) for i, s in services]
    for path, names in places:
        for j, name in enumerate(_list(names)):
            if isinstance(name, str) and name not in defined:
                yield Problem((*path, j), f"gate {name!r} is not defined (known: {known})")


def _timing_problems(spec: dict[str, Any], services: list[tuple[int, dict[str, Any]]]) -> Iterator[Problem]:
    defaults = _dict(spec.get("defaults"))
    default_bake = _duration(defaults.get("bake", "5m"))
    default_interval = _duration(defaults.get("interval", "30s"))
    if default_bake is not None and default_interval is not None and default_interval > default_bake:
        yield Problem(
            ("spec", "defaults", "interval"),
            f"interval {format_duration(default_interval)} is longer than bake {format_duration(default_bake)}",
        )
    for i, service in services:
        if "bake" not in service and "interval" not in service:
            continue
        bake = _duration(service["bake"]) if "bake" in service else default_bake
        interval = _duration(service["interval"]) if "interval" in service else default_interval
        if bake is not None and interval is not None and interval > bake:
            field = "interval" if "interval" in service else "bake"
            yield Problem(
                ("spec", "services", i, field),
                f"interval {format_duration(interval)} is longer than bake {format_duration(bake)}"
                f" for service {service.get('name')!r}",
            )


_SECRET_HINTS = ("auth", "token", "key", "secret", "password", "cookie", "credential")


def _literal_secrets(spec: dict[str, Any], services: list[tuple[int, dict[str, Any]]]) -> Iterator[Problem]:
    """The plan is the workflow's input, so a literal credential would sit in its history:
    in an actuator's headers or a notification target's."""
    places: list[tuple[Path, dict[str, Any]]] = [
        (("spec", "services", i, "actuator"), _dict(s.get("actuator"))) for i, s in services
    ]
    places += [(("spec", "notify", i), _dict(t)) for i, t in enumerate(_list(spec.get("notify")))]
    for where, block in places:
        for name, value in _dict(block.get("headers")).items():
            sensitive = any(hint in str(name).lower() for hint in _SECRET_HINTS)
            if sensitive and isinstance(value, str) and not value.startswith(("env:", "file:")):
                yield Problem(
                    (*where, "headers", str(name)),
                    f"header {name!r} holds a literal credential; the plan is stored in workflow"
                    " history, so give a reference instead: env:NAME or file:PATH",
                )


def _lockstep_problems(spec: dict[str, Any], services: list[tuple[int, dict[str, Any]]]) -> Iterator[Problem]:
    """Services that move together must share their steps."""
    if spec.get("lockstep") is not True:
        return
    graph = _graph(services)
    if find_cycle(graph):
        return
    default_steps = _dict(spec.get("defaults")).get("steps", [1, 5, 25, 50, 100])
    by_name = {s["name"]: (i, s) for i, s in services if isinstance(s.get("name"), str)}
    for wave in compute_waves(graph):
        steps = {name: by_name[name][1].get("steps", default_steps) for name in wave}
        first = wave[0]
        for name in wave[1:]:
            if steps[name] != steps[first]:
                index = by_name[name][0]
                yield Problem(
                    ("spec", "services", index, "steps"),
                    f"lockstep: {name!r} has steps {steps[name]} but {first!r} in the same wave has"
                    f" {steps[first]}; services of a lockstep wave share their steps",
                )

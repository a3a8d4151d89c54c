"""Dependency graph of a plan's services: cycles, waves, dependents.

Pure functions over `{service: [providers]}` so the workflow, the CLI and the tests share
one definition of what "providers before consumers" means.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

Graph = Mapping[str, Sequence[str]]


def find_cycle(graph: Graph) -> list[str] | None:
    """A dependency cycle as `[a, b, ..., a]`, or None. Unknown providers are ignored."""
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for provider in graph.get(node, ()):
            if provider not in graph:
                continue
            if state.get(provider) == 1:
                return [*stack[stack.index(provider) :], provider]
            if provider not in state:
                found = visit(provider)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in graph:
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def compute_waves(graph: Graph) -> list[list[str]]:
    """Group services into waves: a service's wave comes after all its providers' waves.

    Order inside a wave follows the plan's order. Raises ValueError on a cycle.
    """
    cycle = find_cycle(graph)
    if cycle:
        raise ValueError("dependency cycle: " + " → ".join(cycle))
    level: dict[str, int] = {}

    def depth(node: str) -> int:
        if node not in level:
            providers = [p for p in graph[node] if p in graph]
            level[node] = 1 + max((depth(p) for p in providers), default=-1)
        return level[node]

    for node in graph:
        depth(node)
    waves: list[list[str]] = [[] for _ in range(max(level.values(), default=-1) + 1)]
    for node in graph:
        waves[level[node]].append(node)
    return waves


def dependents(graph: Graph, service: str) -> set[str]:
    """`service` and every service that transitively depends on it."""
    consumers: dict[str, list[str]] = {name: [] for name in graph}
    for name, providers in graph.items():
        for provider in providers:
            consumers.setdefault(provider, []).append(name)
    seen = {service}
    todo = [service]
    while todo:
        for consumer in consumers.get(todo.pop(), []):
            if consumer not in seen:
                seen.add(consumer)
                todo.append(consumer)
    return seen

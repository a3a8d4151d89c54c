"""Load a plan file and turn every problem into `file:line: field.path: message`.

YAML is read with the line of every field (`located`); pydantic's error locations and
the whole-plan checks are then mapped back onto those lines.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from shiprail.plan.access import Keyring
from shiprail.plan.actuators import ACTUATOR_TYPES
from shiprail.plan.checks import Problem, cross_check
from shiprail.plan.located import (
    Lines,
    Loc,
    SourceError,
    SourceIssue,
    YamlSyntaxError,
    format_loc,
    load_located,
)
from shiprail.plan.models import API_VERSION, GATE_TYPES, MAX_SERVICES, NAME_PATTERN, RolloutPlan
from shiprail.plan.train import ReleaseTrain

M = TypeVar("M", bound=BaseModel)

# A plan's problems are source issues under the name the CLI and its users know.
PlanIssue = SourceIssue


class PlanError(SourceError):
    """A plan that cannot be used; `issues` lists every problem found."""


_PATTERN_MESSAGES = {
    NAME_PATTERN: "use lowercase letters, digits and '-', starting and ending with a letter or digit",
    r"^https?://": "must be an http:// or https:// URL",
}


def _pydantic_message(error: Any, raw: Any, model: type[BaseModel]) -> str:
    kind = error["type"]
    loc = tuple(error["loc"])
    if kind == "extra_forbidden":
        field = str(loc[-1])
        parent = _lookup(raw, loc[:-1])
        allowed = _allowed_fields(loc, model)
        hint = difflib.get_close_matches(field, allowed, n=1)
        suggestion = f"; did you mean {hint[0]!r}?" if hint else ""
        return f"unknown field {field!r}{suggestion}" if parent is not None else f"unknown field {field!r}"
    if kind == "missing":
        return f"required field {loc[-1]!r} is missing"
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        family, types = ("actuator", ACTUATOR_TYPES) if "actuator" in loc else ("gate", GATE_TYPES)
        if kind == "union_tag_not_found":
            return f"field 'type' is missing (expected one of: {', '.join(types)})"
        tag = error.get("ctx", {}).get("tag")
        return f"unknown {family} type {tag!r} (expected one of: {', '.join(types)})"
    if kind == "too_short" and loc and loc[-1] == "services":
        return "a plan needs at least one service"
    if kind == "too_long" and loc and loc[-1] == "services":
        found = error.get("ctx", {}).get("actual_length")
        return (
            f"a plan holds at most {MAX_SERVICES:,} services (this one has {found:,}): its history would outgrow"
            " Temporal's limit; split it into plans of dependent groups, or cars of a release train"
        )
    if kind == "string_pattern_mismatch":
        return _PATTERN_MESSAGES.get(error.get("ctx", {}).get("pattern", ""), str(error["msg"]))
    message = str(error["msg"])
    return message.removeprefix("Value error, ")


def _lookup(raw: Any, loc: Loc) -> Any:
    node = raw
    for part in loc:
        in_dict = isinstance(node, dict) and part in node
        in_list = isinstance(node, list) and isinstance(part, int) and part < len(node)
        if not (in_dict or in_list):
            return None
        node = node[part]
    return node


def _allowed_fields(loc: Loc, model: type[BaseModel]) -> list[str]:
    """Field names valid at `loc`, for "did you mean" hints (best effort)."""
    schema = model.model_json_schema(by_alias=True)
    defs = schema.get("$defs", {})
    node: dict[str, Any] = schema
    for part in loc[:-1]:
        while "$ref" in node:
            node = defs[node["$ref"].split("/")[-1]]
        if isinstance(part, int):
            node = node.get("items", {})
        elif part in node.get("properties", {}):
            node = node["properties"][part]
        elif "additionalProperties" in node and isinstance(node["additionalProperties"], dict):
            node = node["additionalProperties"]
        else:
            for option in node.get("oneOf", node.get("anyOf", [])):
                ref = option.get("$ref", "")
                if ref.split("/")[-1].lower().startswith(str(part).replace("_", "")):
                    node = defs[ref.split("/")[-1]]
                    break
    while "$ref" in node:
        node = defs[node["$ref"].split("/")[-1]]
    return list(node.get("properties", {}))


_KINDS = {"RolloutPlan": "a rollout plan", "ReleaseTrain": "a release train", "Keyring": "a keyring"}


def _kind_problem(raw: Any, kind: str) -> str | None:
    noun = _KINDS[kind]
    if raw is None:
        return f"the file is empty: expected {noun}"
    if not isinstance(raw, dict):
        return f"not {noun}: expected a mapping with apiVersion, kind, metadata and spec"
    found, api = raw.get("kind"), raw.get("apiVersion")
    if isinstance(found, str) and found in _KINDS and found != kind:
        return f"this is {_KINDS[found]} (kind: {found}), not {noun}"
    if found != kind or api != API_VERSION:
        return (
            f"not {noun}: expected apiVersion: {API_VERSION} and kind: {kind}"
            f" (found apiVersion: {api!r}, kind: {found!r})"
        )
    return None


def document_kind(text: str) -> str:
    """`RolloutPlan` or `ReleaseTrain` by the document's `kind` (RolloutPlan when unsure, so
    the plan's own errors are the ones reported)."""
    try:
        raw, _ = load_located(text, "<kind>")
    except YamlSyntaxError:
        return "RolloutPlan"
    return "ReleaseTrain" if isinstance(raw, dict) and raw.get("kind") == "ReleaseTrain" else "RolloutPlan"


def _parse(text: str, source: str, model: type[M], checks: Callable[[dict[str, Any]], list[Problem]]) -> M:
    try:
        raw, lines = load_located(text, source)
    except YamlSyntaxError as exc:
        raise PlanError([exc.issue]) from None
    kind_problem = _kind_problem(raw, model.__name__)
    if kind_problem:
        line = lines.resolve(("kind",))[1] if isinstance(raw, dict) else lines.lines.get((), 1)
        raise PlanError([PlanIssue(source, line or 1, "", kind_problem)])

    services = raw.get("spec", {}).get("services") if isinstance(raw.get("spec"), dict) else None
    if model is RolloutPlan and isinstance(services, list) and len(services) > MAX_SERVICES:
        # Refused before anything walks them: validating tens of thousands takes seconds.
        line = lines.resolve(("spec", "services"))[1]
        too_long: dict[str, Any] = {
            "type": "too_long",
            "loc": ("spec", "services"),
            "ctx": {"actual_length": len(services)},
        }
        raise PlanError([PlanIssue(source, line, "spec.services", _pydantic_message(too_long, raw, model))])
    issues: list[PlanIssue] = []
    for loc, line in lines.duplicates:
        issues.append(PlanIssue(source, line, format_loc(loc), "duplicate key (the later one would win)"))
    document: M | None = None
    try:
        document = model.model_validate(raw)
    except ValidationError as exc:
        for error in exc.errors():
            loc = tuple(error["loc"])
            known, line = lines.resolve(loc)
            field = format_loc(known if error["type"] != "missing" else (*known, loc[-1]))
            issues.append(PlanIssue(source, line, field, _pydantic_message(error, raw, model)))
    issues += [_problem_issue(p, lines, source) for p in checks(raw)]
    if issues or document is None:
        raise PlanError(issues)
    return document


def parse_plan(text: str, source: str = "<plan>") -> RolloutPlan:
    """Validate a plan's YAML text; raise PlanError listing every problem found."""
    return _parse(text, source, RolloutPlan, cross_check)


def parse_train(text: str, source: str = "<train>") -> ReleaseTrain:
    """Validate a release train's YAML text; raise PlanError listing every problem found."""
    return _parse(text, source, ReleaseTrain, lambda raw: [])


def _problem_issue(problem: Problem, lines: Lines, source: str) -> PlanIssue:
    _, line = lines.resolve(problem.path)
    return PlanIssue(source, line, format_loc(problem.path), problem.message)


def read_source(path: str | Path) -> str:
    """A plan or train file's text; PlanError naming the file when it cannot be read."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PlanError([PlanIssue(str(path), 0, "", "no such file")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PlanError([PlanIssue(str(path), 0, "", f"cannot read the file: {exc}")]) from None


def load_plan(path: str | Path) -> RolloutPlan:
    """Read and validate a plan file; raise PlanError on any problem (including I/O)."""
    return parse_plan(read_source(path), str(path))


def load_train(path: str | Path) -> ReleaseTrain:
    """Read and validate a release train file; raise PlanError on any problem."""
    return parse_train(read_source(path), str(path))


def load_keyring(path: str | Path) -> Keyring:
    """Read and validate a keyring file; raise PlanError on any problem."""
    return _parse(read_source(path), str(path), Keyring, lambda raw: [])


def load_document(path: str | Path) -> RolloutPlan | ReleaseTrain:
    """A plan or a train, whichever the file's `kind` says."""
    text = read_source(path)
    if document_kind(text) == "ReleaseTrain":
        return parse_train(text, str(path))
    return parse_plan(text, str(path))

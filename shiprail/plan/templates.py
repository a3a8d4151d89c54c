"""Template variables in gate queries: which exist, and safe substitution.

Values are substituted into PromQL, usually inside label matchers (`version="{{version}}"`),
so they are escaped as PromQL string contents: a version string can never break out of its
quotes and change the meaning of a query.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

TEMPLATE_VARIABLES = frozenset(
    {"service", "version", "stable_version", "weight", "step_start", "bake", "interval"}
)
_PLACEHOLDER = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")


def unknown_variables(text: str) -> list[str]:
    """Names used as `{{name}}` in `text` that are not template variables."""
    return [name for name in _PLACEHOLDER.findall(text) if name not in TEMPLATE_VARIABLES]


def check_template(text: str) -> str:
    """Pydantic validator: reject unknown `{{variables}}` with the list of known ones."""
    unknown = unknown_variables(text)
    if unknown:
        names = ", ".join(f"{{{{{n}}}}}" for n in unknown)
        known = ", ".join(sorted(TEMPLATE_VARIABLES))
        raise ValueError(f"unknown template variable {names} (known: {known})")
    return text


def escape_label_value(value: str) -> str:
    """Escape a value for use inside a double-quoted PromQL string."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render(text: str, values: Mapping[str, str]) -> str:
    """Substitute `{{name}}` placeholders; every value is PromQL-escaped."""

    def _sub(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise KeyError(f"template variable {{{{{name}}}}} has no value here")
        return escape_label_value(values[name])

    return _PLACEHOLDER.sub(_sub, text)


def with_label(selector: str, name: str, value: str) -> str:
    """Add a matcher to a series selector: `m{a="b"}` → `m{a="b",le="0.3"}`."""
    matcher = f'{name}="{escape_label_value(value)}"'
    stripped = selector.rstrip()
    if stripped.endswith("}"):
        inner = stripped[stripped.rindex("{") + 1 : -1].strip()
        return f"{stripped[:-1]}{',' if inner else ''}{matcher}}}"
    return f"{stripped}{{{matcher}}}"

"""Template variables in gate queries: which exist, and safe substitution.

Values come from plans and from actuators (a version string, a `stable_version` an
actuator reported), so nothing in them may change what a query means. Each placeholder is
escaped for where it stands in the query: inside a double- or single-quoted PromQL string
(Go escapes for the quote, backslashes and control characters), inside a backtick raw
string (which has no escapes: a value with a backtick is refused), in the string of a
regex matcher (`=~`, `!~`: regex metacharacters escaped as well, so `1.2.*` matches only
itself), or outside any string (durations, numbers and names only).
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


class UnsafeValue(ValueError):
    """A value that cannot stand where its placeholder is without changing the query."""


_CONTROL = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\x00": "\\x00"}
_REGEX_SPECIAL = re.compile(r"([\\.+*?()|\[\]{}^$])")
_BARE = re.compile(r"^[A-Za-z0-9_.:+\-]*$")


def escape_label_value(value: str, quote: str = '"') -> str:
    """Escape a value for use inside a PromQL string quoted with `quote` (" or ')."""
    escaped = value.replace("\\", "\\\\").replace(quote, "\\" + quote)
    for raw, sequence in _CONTROL.items():
        escaped = escaped.replace(raw, sequence)
    return escaped


class _Context:
    """Where the query text has got to: inside which string, and whether it is a regex."""

    def __init__(self) -> None:
        self.quote: str | None = None
        self.regex = False
        self._escaped = False
        self._before = ""

    def feed(self, text: str) -> None:
        for ch in text:
            if self.quote is None:
                if ch in "\"'`":
                    self.quote = ch
                    self.regex = self._before.rstrip().endswith(("=~", "!~"))
                else:
                    self._before = (self._before + ch)[-8:]
            elif self.quote == "`":
                if ch == "`":
                    self.quote, self._before = None, ""
            elif self._escaped:
                self._escaped = False
            elif ch == "\\":
                self._escaped = True
            elif ch == self.quote:
                self.quote, self._before = None, ""

    def escape(self, name: str, value: str) -> str:
        if self.regex:
            value = _REGEX_SPECIAL.sub(r"\\\1", value)
        if self.quote in ('"', "'"):
            return escape_label_value(value, self.quote)
        if self.quote == "`":
            if "`" in value:
                raise UnsafeValue(
                    f"{{{{{name}}}}} = {value!r} holds a backtick, which a `raw` PromQL string cannot"
                )
            return value
        if not _BARE.match(value):
            raise UnsafeValue(
                f"{{{{{name}}}}} = {value!r} stands outside a quoted string, where only names, numbers and"
                " durations are safe: quote it in the query"
            )
        return value


def substitute(text: str, values: Mapping[str, str]) -> str:
    """Substitute `{{name}}` placeholders as they are, for text that is not PromQL."""
    return _PLACEHOLDER.sub(lambda m: _value(m.group(1), values), text)


def _value(name: str, values: Mapping[str, str]) -> str:
    if name not in values:
        raise KeyError(f"template variable {{{{{name}}}}} has no value here")
    return values[name]


def render(text: str, values: Mapping[str, str]) -> str:
    """Substitute `{{name}}` placeholders in a PromQL query, each value escaped for the
    place it stands in; UnsafeValue where no escaping can make it safe."""
    context, parts, position = _Context(), [], 0
    for match in _PLACEHOLDER.finditer(text):
        literal = text[position : match.start()]
        context.feed(literal)
        parts += [literal, context.escape(match.group(1), _value(match.group(1), values))]
        position = match.end()
    parts.append(text[position:])
    return "".join(parts)


def with_label(selector: str, name: str, value: str) -> str:
    """Add a matcher to a series selector: `m{a="b"}` → `m{a="b",le="0.3"}`."""
    matcher = f'{name}="{escape_label_value(value)}"'
    stripped = selector.rstrip()
    if stripped.endswith("}"):
        inner = stripped[stripped.rindex("{") + 1 : -1].strip()
        return f"{stripped[:-1]}{',' if inner else ''}{matcher}}}"
    return f"{stripped}{{{matcher}}}"

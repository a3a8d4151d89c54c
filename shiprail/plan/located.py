"""YAML with the line of every field, so that a problem can be reported as `file:line: field`.

Plans and anything else shiprail reads from YAML report their problems this way: the
document is composed once into nodes to learn the lines, and a validation error's location
(a path of keys and indexes) is mapped back onto the deepest line known for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class SourceIssue:
    """One problem in a file: where it is (line 0 when unknown), which field, what is wrong."""

    file: str
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "field": self.field, "message": self.message}


class SourceError(Exception):
    """A file that cannot be used; `issues` lists every problem found, once each, in the
    order of the file."""

    def __init__(self, issues: list[SourceIssue]) -> None:
        self.issues = sorted(dict.fromkeys(issues), key=lambda i: (i.line, i.field))
        super().__init__("\n".join(str(i) for i in self.issues))


class YamlSyntaxError(Exception):
    """Text that is not YAML; `issue` says where it stopped making sense."""

    def __init__(self, issue: SourceIssue) -> None:
        self.issue = issue
        super().__init__(str(issue))


def format_loc(loc: Loc) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


class Lines:
    """Line numbers (1-based) of every field in a YAML document."""

    def __init__(self, root: yaml.Node | None) -> None:
        self.lines: dict[Loc, int] = {}
        self.duplicates: list[tuple[Loc, int]] = []
        if root is not None:
            self.lines[()] = root.start_mark.line + 1
            self._walk(root, ())

    def _walk(self, node: yaml.Node, loc: Loc) -> None:
        if isinstance(node, yaml.MappingNode):
            seen: set[str] = set()
            for key_node, value_node in node.value:
                key = str(key_node.value)
                child = (*loc, key)
                if key in seen:
                    self.duplicates.append((child, key_node.start_mark.line + 1))
                seen.add(key)
                self.lines[child] = key_node.start_mark.line + 1
                self._walk(value_node, child)
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                self.lines[(*loc, index)] = item.start_mark.line + 1
                self._walk(item, (*loc, index))

    def resolve(self, loc: Loc) -> tuple[Loc, int]:
        """The deepest known prefix of `loc` (skipping pydantic's union tags) and its line."""
        known: Loc = ()
        for part in loc:
            candidate = (*known, part)
            if candidate in self.lines:
                known = candidate
        return known, self.lines.get(known, 0)


MAX_BYTES = 512 * 1024  # a thousand-service plan with its gates is a fifth of this
MAX_DEPTH = 64


MAX_VALUES = 100_000


class _UntrustedLoader(yaml.SafeLoader):
    """PyYAML's pure-Python safe loader, closed to what makes a small file expensive.

    Aliases are bounded: anything that walks the result (pydantic, JSON) expands a shared
    node every time it is referenced, so a few hundred bytes of nested aliases become
    gigabytes. An anchor reused a few times is fine; a document whose aliases expand it past
    `MAX_VALUES` values is refused before anything walks it. Merge keys (`<<`) are refused.
    Nesting is bounded, before Python's own recursion limit is."""

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        self._depth = getattr(self, "_depth", 0) + 1
        try:
            if self._depth > MAX_DEPTH:
                event = self.peek_event()  # type: ignore[no-untyped-call]
                raise yaml.MarkedYAMLError(
                    problem=f"nested more than {MAX_DEPTH} levels deep", problem_mark=event.start_mark
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def flatten_mapping(self, node: yaml.MappingNode) -> None:
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise yaml.MarkedYAMLError(
                    problem="merge keys (<<) are not accepted: write the fields out",
                    problem_mark=key_node.start_mark,
                )
        super().flatten_mapping(node)


def _expanded_size(root: yaml.Node) -> int:
    """How many values the document has once every alias is expanded: counted per distinct
    node, so a bomb of a hundred nested aliases costs a hundred steps, not 2^100."""
    sizes: dict[int, int] = {}

    def size(node: yaml.Node) -> int:
        known = sizes.get(id(node))
        if known is not None:
            return known
        sizes[id(node)] = 1  # a cycle counts once; it cannot be constructed into plain data anyway
        if isinstance(node, yaml.MappingNode):
            total = 1 + sum(size(k) + size(v) for k, v in node.value)
        elif isinstance(node, yaml.SequenceNode):
            total = 1 + sum(size(item) for item in node.value)
        else:
            total = 1
        sizes[id(node)] = min(total, MAX_VALUES + 1)
        return sizes[id(node)]

    return size(root)


def load_located(text: str, source: str) -> tuple[Any, Lines]:
    """The document's data and the line of each of its fields; YamlSyntaxError if it is not
    YAML, or if it is more than a plan should ever be (size, alias expansion, merge keys,
    depth)."""
    size = len(text.encode("utf-8", "replace"))
    if size > MAX_BYTES:
        raise YamlSyntaxError(
            SourceIssue(source, 0, "", f"the file is {size:,} bytes; at most {MAX_BYTES:,} are read")
        )
    # One parse: the data is constructed from the very nodes whose lines are kept.
    try:
        loader = _UntrustedLoader(text)
    except yaml.reader.ReaderError as exc:
        raise YamlSyntaxError(_unreadable(source, text, exc)) from None
    try:
        root = loader.get_single_node()
        if root is not None and _expanded_size(root) > MAX_VALUES:
            raise YamlSyntaxError(
                SourceIssue(source, 0, "", f"aliases expand this document past {MAX_VALUES:,} values")
            )
        raw = loader.construct_document(root) if root is not None else None
    except yaml.reader.ReaderError as exc:
        raise YamlSyntaxError(_unreadable(source, text, exc)) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 0
        col = f", column {mark.column + 1}" if mark else ""
        problem = exc.problem or str(exc)
        raise YamlSyntaxError(SourceIssue(source, line, "", f"YAML syntax error{col}: {problem}")) from None
    except yaml.YAMLError as exc:
        raise YamlSyntaxError(SourceIssue(source, 0, "", f"YAML error: {exc}")) from None
    except RecursionError:
        raise YamlSyntaxError(
            SourceIssue(source, 0, "", f"nested more than {MAX_DEPTH} levels deep")
        ) from None
    finally:
        loader.dispose()
    return raw, Lines(root)


def _unreadable(source: str, text: str, exc: yaml.reader.ReaderError) -> SourceIssue:
    """A character YAML may not hold (a control character, a lone surrogate), at its line."""
    position = exc.position if isinstance(exc.position, int) else 0
    line = text.count("\n", 0, position) + 1
    column = position - (text.rfind("\n", 0, position) + 1) + 1
    code = exc.character if isinstance(exc.character, int) else ord(str(exc.character)[:1] or "?")
    return SourceIssue(
        source, line, "", f"YAML syntax error, column {column}: YAML cannot hold the character U+{code:04X}"
    )

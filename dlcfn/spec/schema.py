"""Shared pieces of spec validation: YAML with line numbers, unknown keys with "did you mean",
and typed field checks that return findings instead of raising.

Validators are small functions `(value..., path) -> list[Finding]`; a spec's validate function
concatenates them so that all problems are reported together.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from dlcfn.errors import Finding, UserInputError


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """' (did you mean X?)' when a choice is close to `word`, else ''."""
    close = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


@dataclass
class Document:
    """A parsed YAML mapping plus where each key path was written, for error messages."""

    data: dict[str, Any]
    source: str = ""
    lines: dict[str, int] = field(default_factory=dict)  # "a.b.0" -> 1-based line number

    def line(self, path: str) -> int | None:
        return self.lines.get(path)

    def finding(self, path: str, message: str, **kw: Any) -> Finding:
        return Finding(path=path, message=message, line=self.line(path), source=self.source, **kw)


def load_yaml_document(text: str, source: str = "") -> Document:
    """Parse YAML text into a Document whose `lines` map key paths to line numbers.

    Raises UserInputError (one line, with the position) on a YAML syntax error or a top level
    that is not a mapping.
    """
    import yaml

    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else source or "<input>"
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise UserInputError(f"{where}: invalid YAML: {problem}") from e
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise UserInputError(f"{source or '<input>'}: expected a mapping of keys at the top level, got {type(data).__name__}")
    lines: dict[str, int] = {}
    if node is not None:
        _collect_lines(node, "", lines)
    return Document(data=data, source=source, lines=lines)


def _collect_lines(node: Any, prefix: str, out: dict[str, int]) -> None:
    import yaml

    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            path = f"{prefix}.{key_node.value}" if prefix else str(key_node.value)
            out[path] = key_node.start_mark.line + 1
            _collect_lines(value_node, path, out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            path = f"{prefix}.{i}" if prefix else str(i)
            out[path] = item.start_mark.line + 1
            _collect_lines(item, path, out)


def check_unknown_keys(doc: Document, mapping: Mapping[str, Any], allowed: Iterable[str], prefix: str = "") -> list[Finding]:
    """One finding per key not in `allowed`, with a did-you-mean when one is close."""
    allowed = list(allowed)
    findings = []
    for key in mapping:
        if key not in allowed:
            path = f"{prefix}.{key}" if prefix else str(key)
            findings.append(
                doc.finding(path, f"unknown key{did_you_mean(str(key), allowed)}; allowed keys: {', '.join(sorted(allowed))}")
            )
    return findings


def check_type(doc: Document, path: str, value: Any, expected: type | tuple[type, ...], what: str) -> list[Finding]:
    """A finding when `value` is not of `expected` type (bool is not accepted as an int)."""
    ok = isinstance(value, expected) and not (isinstance(value, bool) and bool not in _as_tuple(expected))
    return [] if ok else [doc.finding(path, f"must be {what}, got {value!r}")]


def check_int_range(doc: Document, path: str, value: Any, low: int, high: int) -> list[Finding]:
    """A finding when `value` is not an int in [low, high]."""
    if isinstance(value, bool) or not isinstance(value, int):
        return [doc.finding(path, f"must be an integer from {low} to {high}, got {value!r}")]
    if not low <= value <= high:
        return [doc.finding(path, f"must be from {low} to {high}, got {value}")]
    return []


def check_choice(doc: Document, path: str, value: Any, choices: Iterable[str]) -> list[Finding]:
    """A finding when `value` is not one of `choices`, with a did-you-mean."""
    choices = list(choices)
    if value in choices:
        return []
    return [doc.finding(path, f"{value!r} is not allowed{did_you_mean(str(value), choices)}; choose one of: {', '.join(choices)}")]


def _as_tuple(t: type | tuple[type, ...]) -> tuple[type, ...]:
    return t if isinstance(t, tuple) else (t,)

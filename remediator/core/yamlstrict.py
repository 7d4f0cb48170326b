"""YAML loading that refuses duplicate keys, which PyYAML would otherwise silently merge."""

from __future__ import annotations

from collections.abc import Hashable, Iterator
from typing import Any

import yaml


class _StrictLoader(yaml.SafeLoader):
    pass


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    seen: set[Hashable] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _construct_mapping,
)


def load_all(text: str) -> Iterator[Any]:
    """Documents of a `---` separated stream; raises yaml.YAMLError with a position."""
    return yaml.load_all(text, Loader=_StrictLoader)  # _StrictLoader is a SafeLoader


def describe(exc: Exception) -> str:
    """One line for a YAML error: what and where (line and column), never the text itself.

    PyYAML's own message quotes the offending line, which may hold an inline secret
    (`token: "abc` with a missing quote) that `check` and `serve` would then print.
    """
    if isinstance(exc, yaml.MarkedYAMLError):
        parts = [p for p in (exc.context, exc.problem) if p]
        what = "; ".join(" ".join(p.split()) for p in parts) or "invalid YAML"
        mark = exc.problem_mark or exc.context_mark
        if mark is not None:
            return f"{what} at line {mark.line + 1}, column {mark.column + 1}"
        return what
    return f"invalid YAML ({type(exc).__name__})"


def load(text: str) -> Any:
    return yaml.load(text, Loader=_StrictLoader)  # noqa: S506  # _StrictLoader is a SafeLoader

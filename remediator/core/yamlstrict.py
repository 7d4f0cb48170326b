"""YAML loading that refuses duplicate keys, which PyYAML would otherwise silently merge.

Policy streams are parsed by libyaml (PyYAML's C parser) when PyYAML has it: the pure-Python
scanner costs about 1.7 ms per policy, 9 s for 5,000 policies at every start. The C parser
only tokenizes and composes; tags, implicit types and the duplicate-key check are the same
Python code either way. The two scanners disagree on some unusual text. Where libyaml would
accept such text, it is sent to the pure-Python loader instead, on sight of the text
(_libyaml_diverges) or of what libyaml made of it (_Diverges); text libyaml refuses is
parsed again by the pure-Python loader, whose result (it accepts some text libyaml refuses)
or error (the words and positions `check` has always printed) is returned. So a stream
loads as the pure-Python loader loads it; tests/unit/test_yamlstrict.py compares the two
on the known cases and on generated text.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable
from typing import Any

import yaml


class _StrictLoader(yaml.SafeLoader):
    pass


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
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

_TAG = "tag:yaml.org,2002:"
_STR, _MAP, _SEQ = f"{_TAG}str", f"{_TAG}map", f"{_TAG}seq"
# Scalars whose SafeConstructor makes the value from the node alone (no state generators).
_SCALARS = frozenset(f"{_TAG}{name}" for name in ("null", "bool", "int", "float", "binary"))


class _NotPlain(Exception):  # noqa: N818  # a signal, not an error
    """The document needs the general constructor."""


class _Diverges(Exception):  # noqa: N818  # a signal, not an error
    """libyaml read text that PyYAML's scanner reads otherwise: the pure-Python loader decides."""


def _flow_plain_question(node: yaml.ScalarNode, in_flow: bool) -> None:
    # PyYAML ends a plain scalar at `?` inside [...] or {...} (then fails or reads a key);
    # libyaml keeps `a?b` as one scalar.
    if in_flow and not node.style and "?" in node.value:
        raise _Diverges


def _flow_empty_key(node: yaml.Node, in_flow: bool) -> None:
    # `[? , ,]`, `[?!,]`: after an empty explicit key libyaml skips the next entry's comma
    # or the end of the sequence, where PyYAML finds no node.
    if in_flow and isinstance(node, yaml.ScalarNode) and not node.style and not node.value:
        raise _Diverges


def _plain(
    loader: yaml.constructor.SafeConstructor, node: yaml.Node, seen: set[yaml.Node], in_flow: bool
) -> Any:
    """What SafeLoader plus the duplicate-key check constructs from `node`, for plain data:
    mappings with string keys, sequences, and scalars of the core types.

    Anything else (an alias, a merge key `<<`, a non-string key, a duplicate key, a
    timestamp, a set, an unknown tag...) raises _NotPlain and the document is constructed
    by the general (slower) path, which raises the errors it always raised.
    """
    if node in seen:  # an alias: identity and recursion are the general path's business
        raise _NotPlain
    seen.add(node)
    tag = node.tag
    if isinstance(node, yaml.ScalarNode):
        if in_flow:
            _flow_plain_question(node, in_flow)
        if tag == _STR:
            return node.value
        if tag in _SCALARS:
            return loader.construct_object(node)
    elif isinstance(node, yaml.MappingNode) and tag == _MAP:
        in_flow = in_flow or bool(node.flow_style)
        mapping: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag != _STR:
                raise _NotPlain
            if in_flow:
                _flow_plain_question(key_node, in_flow)
                _flow_empty_key(key_node, in_flow)
            if key_node.value in mapping:
                raise _NotPlain  # the general path reports the duplicate key
            mapping[key_node.value] = _plain(loader, value_node, seen, in_flow)
        return mapping
    elif isinstance(node, yaml.SequenceNode) and tag == _SEQ:
        in_flow = in_flow or bool(node.flow_style)
        return [_plain(loader, child, seen, in_flow) for child in node.value]
    raise _NotPlain


def _check_scalars(root: yaml.Node) -> None:
    """The checks of _plain, for every node of a document the general path constructs."""
    stack, seen = [(root, False)], set()
    while stack:
        node, in_flow = stack.pop()
        if (node, in_flow) in seen:
            continue
        seen.add((node, in_flow))
        if isinstance(node, yaml.ScalarNode):
            _flow_plain_question(node, in_flow)
            continue
        if not isinstance(node, yaml.CollectionNode):
            continue
        in_flow = in_flow or bool(node.flow_style)
        if isinstance(node, yaml.MappingNode):
            for key, _ in node.value:
                _flow_empty_key(key, in_flow)
            stack.extend((part, in_flow) for pair in node.value for part in pair)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((child, in_flow) for child in node.value)


_RESOLVE: Callable[[Any, type[yaml.Node], str, tuple[bool, bool]], str]
_RESOLVE = yaml.resolver.Resolver.resolve
_FastStrictLoader: Any = None
if yaml.__with_libyaml__:

    class _CStrictLoader(yaml.CSafeLoader):
        """libyaml's parser, with SafeLoader's constructors and resolver (a CSafeLoader).

        The general constructor's bookkeeping (a memo per node, recursion guards, deferred
        generators) is most of the construction time of a policy; plain documents skip it.
        """

        def __init__(self, stream: str) -> None:
            super().__init__(stream)
            self._plain_tags: dict[str, str] = {}

        def resolve(self, kind: type[yaml.Node], value: str, implicit: tuple[bool, bool]) -> str:
            # libyaml asks the (Python) resolver for every scalar's tag; a plain scalar's
            # depends on its text alone (there are no path resolvers), and policy streams
            # repeat the same keys and values thousands of times.
            if kind is yaml.ScalarNode and implicit[0] and not self.yaml_path_resolvers:
                tag = self._plain_tags.get(value)
                if tag is None:
                    tag = self._plain_tags[value] = _RESOLVE(self, kind, value, implicit)
                return tag
            return _RESOLVE(self, kind, value, implicit)

        def construct_document(self, node: yaml.Node) -> Any:
            try:
                data = _plain(self, node, set(), False)
            except _NotPlain:
                self.constructed_objects = {}
                _check_scalars(node)
                return super().construct_document(node)
            self.constructed_objects = {}  # as the general path leaves it: nodes not kept
            return data

    _CStrictLoader.add_constructor(
        yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
        _construct_mapping,
    )
    _FastStrictLoader = _CStrictLoader

# Text on which libyaml and PyYAML's scanner differ while libyaml accepts it, seen in the text
# (found by differential fuzzing of both loaders; tests/unit/test_yamlstrict.py keeps the
# examples; `?` in flow collections is seen in the nodes, by _plain and _check_scalars):
# - a tab anywhere: PyYAML refuses tabs that YAML allows as separators, libyaml accepts;
# - a byte order mark: libyaml skips one that PyYAML reads as content, after a line break;
# - `|#`, `>-#`: a block scalar header with a comment not after a space (libyaml is lax);
# - a non-specific tag `!` on its own (PyYAML null, libyaml "") and verbatim tags `!<...>`.
# Such text is rare in policies and takes the pure-Python path. Separate searches, each
# starting with a fixed character or class, scan a 2 MB stream in milliseconds (one regex
# of alternatives takes 80 ms).
_BLOCK_HEADER_COMMENT = re.compile(r"[|>][-+0-9]*#")
_BARE_OR_VERBATIM_TAG = re.compile(r"!(?=[\s,\]}<]|\Z)(?<![^\s\[{,?:-]!)")


def _libyaml_diverges(text: str) -> bool:
    return (
        "\t" in text
        or "\ufeff" in text
        or _BLOCK_HEADER_COMMENT.search(text) is not None
        or _BARE_OR_VERBATIM_TAG.search(text) is not None
    )


def load_all(text: str) -> list[Any]:
    """Documents of a `---` separated stream; raises yaml.YAMLError with a position."""
    if _FastStrictLoader is not None and not _libyaml_diverges(text):
        try:
            return list(yaml.load_all(text, Loader=_FastStrictLoader))
        except Exception:  # noqa: BLE001, S110  # whatever libyaml refuses, PyYAML decides below
            pass
    # _StrictLoader is a SafeLoader
    return list(yaml.load_all(text, Loader=_StrictLoader))


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

"""YAML loading: libyaml where it reads as PyYAML does, and every stream loads as PyYAML's
own pure-Python loader (plus the duplicate-key check) always loaded it: same data, same
errors with the same positions."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from remediator.core import yamlstrict

pytestmark = pytest.mark.skipif(
    yamlstrict._FastStrictLoader is None, reason="PyYAML was built without libyaml"
)


def pure(text: str) -> tuple[str, Any]:
    """What the pure-Python strict loader makes of `text`: ("ok", data) or ("error", line)."""
    try:
        return "ok", list(yaml.load_all(text, Loader=yamlstrict._StrictLoader))
    except Exception as exc:  # noqa: BLE001  # any error is compared by its reported line
        return "error", yamlstrict.describe(exc)


def loaded(text: str) -> tuple[str, Any]:
    try:
        return "ok", yamlstrict.load_all(text)
    except Exception as exc:  # noqa: BLE001
        return "error", yamlstrict.describe(exc)


POLICY = """
name: restart-web
match:
  source: alertmanager
  matchers: ['alertname="ContainerDown"', 'severity=~"critical|warning"', 'env!="dev"']
action:
  type: docker.restart
  params: {container: "{{ labels.container }}", timeout: 10s}
  allow_targets: ["web-*", "worker-*"]
guards: {cooldown: 10m, rate_limit: 3/1h, approval: {when: 'labels.env != "prod"'}}
verify: {within: 2m}
---
name: other
action: {type: notify, params: {text: "a: b # not a comment", n: 3, f: 1.5, x: null, b: yes}}
"""


@pytest.mark.parametrize(
    "text",
    [
        # Text libyaml accepts and PyYAML refuses (or reads otherwise): the pure path decides.
        "a: b\t\n",  # a tab after a value
        "a:\tb\n",
        "a: |#\n  x\n",  # a block scalar header with a comment not after a space
        "a: >-#\n  x\n",
        "a: !\n",  # a non-specific tag: PyYAML null, libyaml ""
        "- ! x\n- !<!> y\n",  # a verbatim tag
        "a: 1\n\ufeffb: 2\n",  # a byte order mark after the start
        "k: [a?b]\n",  # PyYAML ends a plain scalar at ? inside [...]
        "{a ?b}\n",
        "a: {bearer_token_f?ile: /run/x}\n",
        "[? , ,]\n",  # libyaml skips a comma after an empty explicit key
        "- [?\n, ,]\n",
        # Text libyaml refuses and PyYAML accepts: the pure path's data.
        "a:\n  b: {c:[d,e]}\n",
        # Errors: the pure path's words and positions.
        "a: 1\na: 2\n",
        "a: {b: 1, b: 2}\n",
        "name: [unclosed\n",
        "x: 'it's'\n",
        "a: &x [1, *x]\n",
        "a: &x {b: *x}\n",
        '"\\ud800"\n',  # a lone surrogate escape: libyaml refuses it, PyYAML reads it
        "<<: {a: 1}\nb: 2\n",  # a merge key
        "? [a, b]\n: c\n",  # a non-string key
        "a: 2001-12-14\nb: !!binary aGk=\nc: !!set {x, y}\n",
        "a: !!python/name:os.system x\n",
        "%YAML 1.2\n---\na: 1\n",
        POLICY,
        "",
        "---\n---\n",
    ],
)
def test_loads_as_the_pure_python_loader(text: str) -> None:
    assert repr(loaded(text)) == repr(pure(text))  # repr: some of these data contain themselves


def test_plain_policy_text_never_reaches_the_pure_loader(monkeypatch: pytest.MonkeyPatch) -> None:
    class Refuses(yamlstrict._StrictLoader):
        def __init__(self, stream: str) -> None:
            raise AssertionError("the pure-Python loader was used")

    monkeypatch.setattr(yamlstrict, "_StrictLoader", Refuses)
    [first, second] = yamlstrict.load_all(POLICY)
    assert first["guards"] == {
        "cooldown": "10m",
        "rate_limit": "3/1h",
        "approval": {"when": 'labels.env != "prod"'},
    }
    assert second["action"]["params"] == {
        "text": "a: b # not a comment",
        "n": 3,
        "f": 1.5,
        "x": None,
        "b": True,
    }


def test_duplicate_keys_are_refused_with_their_position() -> None:
    with pytest.raises(yaml.constructor.ConstructorError) as caught:
        yamlstrict.load_all("a: 1\nb: {c: 1, c: 2}\n")
    assert yamlstrict.describe(caught.value) == "duplicate key 'c' at line 2, column 11"


def test_an_alias_keeps_its_identity() -> None:
    [document] = yamlstrict.load_all("a: &x [1, 2]\nb: *x\n")
    assert document["a"] is document["b"]


# A small YAML grammar around what policies use (block and flow collections, plain and
# quoted scalars, comments, indicators in odd places), then a few character edits.
_SCALARS = st.sampled_from(
    [
        *["a", "b c", "1", "-1", "1.5", "yes", "null", "~", "", "x?y", "?x", "a:b", "a #c"],
        *["'q'", '"q"', '"a\\tb"', "'it''s'", "{{ labels.x }}", 'k="v"', "web|api", "- a"],
        ": a",
    ]
)


def _flow(depth: int = 0) -> st.SearchStrategy[str]:
    if depth > 2:
        return _SCALARS
    inner = _flow(depth + 1)
    return st.one_of(
        _SCALARS,
        st.lists(inner, max_size=3).map(lambda xs: "[" + ", ".join(xs) + "]"),
        st.lists(st.tuples(_SCALARS, inner), max_size=3).map(
            lambda kvs: "{" + ", ".join(f"{k}: {v}" for k, v in kvs) + "}"
        ),
    )


_LINES = st.lists(
    st.tuples(st.sampled_from(["", "  ", "- ", "  - "]), _SCALARS, _flow()).map(
        lambda part: f"{part[0]}{part[1]}: {part[2]}"
    ),
    min_size=1,
    max_size=5,
)
_EDITS = st.lists(
    st.tuples(st.integers(0, 400), st.sampled_from([*" \n:-?,[]{}#'\"\\|>!&*\t", "", "  "])),
    max_size=3,
)


@settings(max_examples=400, deadline=None)
@given(_LINES, _EDITS)
def test_generated_text_loads_as_the_pure_python_loader(
    lines: list[str], edits: list[tuple[int, str]]
) -> None:
    text = "\n".join(lines) + "\n"
    for position, replacement in edits:
        at = position % (len(text) + 1)
        text = text[:at] + replacement + text[at + 1 :]
    assert repr(loaded(text)) == repr(pure(text)), json.dumps(text)

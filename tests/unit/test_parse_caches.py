"""What keeps 5,000 policies fast to load and match stays invisible: a text compiled once is
shared and behaves as a fresh compile would; a regex's literal prefix only rejects values
the regex itself would reject."""

from __future__ import annotations

import json

import pytest
import re2  # type: ignore[import-untyped]  # google-re2 ships no type information
from hypothesis import given, settings
from hypothesis import strategies as st

from remediator.core.matchers import _OPTIONS, literal_prefix, parse_matcher
from remediator.core.policy import parse_policies
from remediator.core.render import (
    compile_expression,
    compile_mrkdwn,
    compile_param,
    compile_template,
    render_context,
)
from remediator.errors import RenderError

CONTEXT = render_context({"container": "web-1"}, {}, {"status": "firing"}, "p")


@pytest.mark.parametrize(
    "compile_", [compile_template, compile_param, compile_mrkdwn, compile_expression]
)
def test_a_text_compiles_once_per_kind(compile_: object) -> None:
    source = "labels.container" if compile_ is compile_expression else "{{ labels.container }}"
    assert compile_(source) is compile_(source)  # type: ignore[operator]


def test_each_kind_keeps_its_own_compile() -> None:
    text = "<!here> {{ labels.x }}"
    context = render_context({"x": "<@U1>"}, {}, {}, "p")
    assert compile_param(text).render(context) == "<!here> <@U1>"
    assert compile_mrkdwn(text).render(context) == "<!here> &lt;@U1&gt;"  # escaped for Slack
    assert compile_param(text).render(context) == "<!here> <@U1>"


def test_a_bad_text_fails_every_time() -> None:
    for _ in range(2):
        with pytest.raises(ValueError, match="template names lables"):
            compile_param("{{ lables.x }}")


def test_a_shared_template_renders_each_context_alone() -> None:
    template = compile_param("{{ labels.container }}")
    assert template.render(CONTEXT) == "web-1"
    assert template.render(render_context({"container": "db"}, {}, {}, "p")) == "db"
    with pytest.raises(RenderError):
        template.render(render_context({}, {}, {}, "p"))
    assert template.render(CONTEXT) == "web-1"


def test_policies_share_what_their_texts_share() -> None:
    document = {
        "match": {"matchers": ['alertname="X"', 'service=~"web|api"']},
        "action": {
            "type": "docker.restart",
            "params": {"container": "{{ labels.container }}", "timeout": "1s"},
            "allow_targets": ["web-*"],
        },
        "guards": {"cooldown": "10m", "rate_limit": "3/1h"},
    }
    text = "\n---\n".join(json.dumps({"name": name, **document}) for name in ("a", "b"))
    (a, b), problems = parse_policies(text, "p.yaml")
    assert problems == []
    assert a.action.params["container"] is b.action.params["container"]
    assert a.match.matchers[1] is b.match.matchers[1]
    assert a.guards.rate_limit is b.guards.rate_limit
    assert a.action.params["container"].render(CONTEXT) == "web-1"


def test_a_bad_matcher_fails_every_time() -> None:
    for _ in range(2):
        with pytest.raises(ValueError, match="invalid regex"):
            parse_matcher('a=~"(x"')


@pytest.mark.parametrize(
    ("pattern", "prefix"),
    [
        ("svc-17.*", "svc-17"),
        ("Disk.*", "Disk"),
        ("web", "web"),  # the whole pattern is literal
        ("ab?c", "a"),  # b is optional
        ("ab*", "a"),
        ("ab{0,2}", "a"),
        ("ab+", "ab"),  # at least one b
        ("a(?i)*", ""),  # RE2 matches "" here: the quantifier binds to `a`
        ("a|b", ""),  # an alternative may start otherwise
        ("ab(c|d)", ""),
        ("(?i)abc", ""),  # a flag may fold the case
        ("abc(?i)d", "ab"),  # ... from where it stands (and a group may bind c)
        (r"\.x", ""),
        (r"web-\d+", "web-"),
        (".*x", ""),
        ("^a", ""),
        ("", ""),
    ],
)
def test_literal_prefix(pattern: str, prefix: str) -> None:
    assert literal_prefix(pattern) == prefix


_ATOMS = st.sampled_from(
    ["a", "b", "a", "b", "-", ".", "[ab]", r"\d", "(?i)", "(?:a|b)", "|", "^", "$"]
)


@settings(max_examples=500, deadline=None)
@given(
    st.lists(st.one_of(_ATOMS, st.sampled_from(["*", "+", "?", "{0,2}", "{2}"])), max_size=6),
    st.text(alphabet="abA-1.", max_size=4),
)
def test_the_prefix_only_rejects_what_re2_rejects(parts: list[str], value: str) -> None:
    pattern = "".join(parts)
    try:
        compiled = re2.compile(pattern, _OPTIONS)
    except re2.error:
        return
    matcher = parse_matcher(f"x=~{json.dumps(pattern)}")
    expected = compiled.fullmatch(value) is not None
    assert matcher.matches({"x": value}) is expected

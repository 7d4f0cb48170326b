"""The render shortcut gives exactly what the sandboxed template gives, or steps aside."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from remediator.core import fastrender
from remediator.core.render import compile_mrkdwn, compile_param, render_context
from remediator.errors import RenderError

NAMES = st.sampled_from(["container", "pod", "items", "keys", "x_1", "missing"])
TEXT = st.text(alphabet=st.characters(codec="utf-8"), max_size=12)


def _jinja(source: str, labels: dict[str, str]) -> str | None:
    try:
        return compile_param(source).render(render_context(labels, {}, {}, "p"))
    except RenderError:
        return None


@settings(max_examples=300, deadline=None)
@given(
    prefix=TEXT,
    name=NAMES,
    suffix=TEXT,
    spaces=st.sampled_from(["", " ", "  "]),
    labels=st.dictionaries(NAMES, TEXT, max_size=4),
)
def test_the_shortcut_agrees_with_jinja(
    prefix: str, name: str, suffix: str, spaces: str, labels: dict[str, str]
) -> None:
    source = f"{prefix}{{{{{spaces}labels.{name}{spaces}}}}}{suffix}"
    try:
        template = compile_param(source)
    except ValueError:
        return  # not a valid policy param at all
    try:
        quick = fastrender.quick(template, labels)
    except RenderError:
        assert _jinja(source, labels) is None  # the template refuses it too
        return
    if quick is not None:
        assert quick == _jinja(source, labels)


@pytest.mark.parametrize(
    ("source", "labels", "expected"),
    [
        ("{{ labels.container }}", {"container": "web-1"}, "web-1"),
        ("  {{labels.container}}-x", {"container": "web-1"}, "  web-1-x"),
        ("1s", {}, "1s"),
        ("{{ labels.missing }}", {}, None),  # Jinja raises its own error
        ("{{ labels.items }}", {"items": "a"}, None),  # an attribute to Jinja
        ("{{ labels.a }}{{ labels.b }}", {"a": "1", "b": "2"}, None),
        ("{{ labels.a | upper }}", {"a": "x"}, None),
        ("{% if true %}x{% endif %}", {}, None),
        ("line\n", {}, None),
        ("${secret:TOKEN}", {}, None),
    ],
)
def test_cases(source: str, labels: dict[str, str], expected: str | None) -> None:
    assert fastrender.quick(compile_param(source), labels) == expected


def test_a_secret_reference_from_the_alert_is_refused_as_jinja_refuses_it() -> None:
    template = compile_param("{{ labels.a }}")
    with pytest.raises(RenderError, match="contains"):
        fastrender.quick(template, {"a": "${secret:TOKEN}"})
    with pytest.raises(RenderError, match="contains"):
        template.render(render_context({"a": "${secret:TOKEN}"}, {}, {}, "p"))


def test_slack_text_is_never_shortcut() -> None:
    """notify text escapes each value for mrkdwn: only the template can do that."""
    assert fastrender.quick(compile_mrkdwn("{{ labels.a }}"), {"a": "<!here>"}) is None

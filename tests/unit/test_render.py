"""Sandboxed templates: allowed names only, StrictUndefined, no escapes from the sandbox."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from remediator.core.render import (
    compile_expression,
    compile_param,
    compile_template,
    render_context,
)
from remediator.errors import RenderError

CONTEXT = render_context(
    {"container": "web-1", "namespace": "prod"},
    {"summary": "web-1 is down"},
    {"status": "firing", "source": "alertmanager", "name": "ContainerDown"},
    "restart-web",
)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{{ labels.container }}", "web-1"),
        ("{{ labels['container'] }}", "web-1"),
        ("{{ labels.namespace }}/{{ labels.container }}", "prod/web-1"),
        ("{{ annotations.summary | upper }}", "WEB-1 IS DOWN"),
        ("{{ alert.status }}-{{ policy.name }}", "firing-restart-web"),
        ("{{ labels.get('missing', 'fallback') }}", "fallback"),
        ("plain text", "plain text"),
        ("{{ labels.container | replace('web', 'api') }}", "api-1"),
    ],
)
def test_render(source: str, expected: str) -> None:
    assert compile_template(source).render(CONTEXT) == expected


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        ("{{ lables.container }}", "template names lables"),
        ("{{ env.HOME }}", "template names env"),
        ("{{ labels.container ", "does not parse"),
        ("{% for x in %}", "does not parse"),
        ("{{ secrets }}", "template names secrets"),
    ],
)
def test_compile_rejects(source: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        compile_template(source)


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        ("{{ labels.pod }}", "has no attribute 'pod'"),  # missing label: never an empty string
        ("{{ alert.nope }}", "has no attribute 'nope'"),
        ("{{ labels.__class__.__mro__ }}", "unsafe"),  # sandbox
        ("{{ labels.clear() }}", "unsafe"),  # immutable sandbox: no mutating calls
    ],
)
def test_render_errors(source: str, problem: str) -> None:
    with pytest.raises(RenderError, match=problem):
        compile_template(source).render(CONTEXT)


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ('labels.namespace == "prod"', "true"),
        ('labels.namespace == "dev"', ""),
        ("labels.container.startswith('web')", "true"),
    ],
)
def test_expressions(expression: str, expected: str) -> None:
    assert compile_expression(expression).render(CONTEXT) == expected


# --- action params: `${secret:NAME}` only where the policy's own text wrote it ---------------

ATTACK = render_context(
    {"a": "$", "b": "{secret:ci_token}", "whole": "${secret:ci_token}", "open": "${", "d": "x"},
    {},
    {},
    "p",
)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("Bearer ${secret:ci_token}", "Bearer ${secret:ci_token}"),  # kept unexpanded
        (
            "{{ labels.d }}-${secret:ci_token}-${secret:other}",
            "x-${secret:ci_token}-${secret:other}",
        ),
        ("{{ '${secret:ci_token}' }}", "${secret:ci_token}"),  # in a string literal: policy text
        ("{{ labels.a }}${secret:ci_token}", "$${secret:ci_token}"),
        ("{{ '${secret:Ci_1}' | lower }}", "${secret:ci_1}"),
        ("no reference", "no reference"),
    ],
)
def test_param_keeps_policy_written_references(source: str, expected: str) -> None:
    assert compile_param(source).render(ATTACK) == expected


@pytest.mark.parametrize(
    "source",
    [
        "https://ci/job/{{ labels.whole }}/build",
        "{{ labels.a }}{{ labels.b }}",  # split across two expressions: the whole output counts
        "{{ labels.a ~ labels.b }}",
        "{{ labels.open }}secret:ci_token}",
        "${secret:ci_token}{{ labels.whole }}",
        "{{ '$' }}{secret:ci_token}",  # `${` built at render time is never policy text
    ],
)
def test_param_refuses_references_from_the_alert(source: str) -> None:
    with pytest.raises(RenderError, match=r"a value from the alert contains '\$\{'"):
        compile_param(source).render(ATTACK)


def test_a_filter_that_changes_a_reference_is_refused() -> None:
    with pytest.raises(RenderError, match="a filter changed"):
        compile_param("{{ '${secret:ci_token}' | upper }}").render(ATTACK)


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        ("${HOME}", "may only start a ${secret:NAME}"),
        ("${secret:bad-name}", "may only start a ${secret:NAME}"),
        ("${secret:ci_token", "may only start a ${secret:NAME}"),
        ("{{ ${secret:x} }}", "does not parse"),
    ],
)
def test_param_compile_rejects(source: str, problem: str) -> None:
    with pytest.raises(ValueError, match=re.escape(problem)):
        compile_param(source)


def test_param_lists_its_secret_names() -> None:
    assert compile_param("${secret:a} {{ labels.d }} ${secret:b}").secret_names == {"a", "b"}
    assert compile_template("${secret:a}").render(ATTACK) == "${secret:a}"  # not a param: as is


@given(st.text(max_size=12), st.text(max_size=12))
def test_no_alert_values_make_a_reference(a: str, b: str) -> None:
    context = render_context({"a": a, "b": b}, {}, {}, "p")
    try:
        rendered = compile_param("u/{{ labels.a }}{{ labels.b }}/${secret:x}").render(context)
    except RenderError:
        return
    assert rendered.count("${") == 1 and rendered.endswith("/${secret:x}")


def test_a_slack_text_escapes_what_the_alert_wrote_but_not_the_policy() -> None:
    from remediator.core.render import compile_mrkdwn  # noqa: PLC0415  # this test only

    template = compile_mrkdwn("<!here> {{ labels.name }} is down: {{ annotations.summary }}")
    context = {
        "labels": {"name": "web-1 <@U999>"},
        "annotations": {"summary": "<!channel> see <https://evil.example|our runbook> & co"},
    }
    assert template.render(context) == (
        "<!here> web-1 &lt;@U999&gt; is down: "
        "&lt;!channel&gt; see &lt;https://evil.example|our runbook&gt; &amp; co"
    )


@pytest.mark.parametrize(
    "summary",
    [
        "disk full\nStatus: Resolved",  # a forged line of the message's own layout
        "disk full\r\nStatus: Resolved",
        "disk full\u2028Status: Resolved\x0b",
        "evil\u202egnp.exe",  # right-to-left override reorders what a reader sees
        "tab\there\x00nul",
    ],
)
def test_a_slack_text_keeps_each_alert_value_on_its_line(summary: str) -> None:
    from remediator.core.render import compile_mrkdwn  # noqa: PLC0415  # this test only

    template = compile_mrkdwn("*Status:* firing\n*Summary:* {{ annotations.summary }}")
    rendered = template.render({"annotations": {"summary": summary}})
    head, _, value = rendered.partition("\n*Summary:* ")
    assert head == "*Status:* firing"  # the policy's own line break stays
    assert "\n" not in value and "\r" not in value
    assert not any(c in value for c in "\u202e\u2028\x00\x0b\t")

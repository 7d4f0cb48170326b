"""Sandboxed templates: allowed names only, StrictUndefined, no escapes from the sandbox."""

from __future__ import annotations

import pytest

from remediator.core.render import compile_expression, compile_template, render_context
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

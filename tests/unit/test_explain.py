"""Why a policy does not match an alert: the first failing check, and label values shown
escaped onto one line, bounded."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from remediator.core.alert import Alert, Source, Status
from remediator.core.explain import SHOWN_CHARS, Miss, one_line, shown, why_not
from remediator.core.policy import Policy, parse_policies

POLICY = """
name: restart-web
match:
  source: alertmanager
  status: firing
  matchers: ['alertname="ContainerDown"', 'severity=~"critical|warning"', 'env!="dev"', 'team!~"qa.*"']
action: {type: notify, params: {text: hi}}
"""


def policy(text: str = POLICY) -> Policy:
    [loaded], problems = parse_policies(text, "p.yaml")
    assert problems == []
    return loaded


def alert(
    labels: dict[str, str], source: Source = "alertmanager", status: Status = "firing"
) -> Alert:
    return Alert(source, status, labels, {}, datetime(2026, 1, 1, tzinfo=UTC), "fp", "ep")


GOOD = {"alertname": "ContainerDown", "severity": "critical", "env": "prod"}


@pytest.mark.parametrize(
    ("labels", "source", "status", "expected"),
    [
        (GOOD, "alertmanager", "firing", None),
        (
            {**GOOD, "alertname": "Foo"},
            "alertmanager",
            "firing",
            'alertname="ContainerDown" (alertname is "Foo")',
        ),
        (
            {"severity": "critical"},
            "alertmanager",
            "firing",
            'alertname="ContainerDown" (alertname not set)',
        ),
        (
            {**GOOD, "severity": "info"},
            "alertmanager",
            "firing",
            'severity=~"critical|warning" (severity is "info")',
        ),
        ({**GOOD, "env": "dev"}, "alertmanager", "firing", 'env!="dev" (env is "dev")'),
        ({**GOOD, "team": "qa-1"}, "alertmanager", "firing", 'team!~"qa.*" (team is "qa-1")'),
        (
            GOOD,
            "datadog",
            "firing",
            "source (the alert is from datadog, the policy takes alertmanager)",
        ),
        (
            GOOD,
            "alertmanager",
            "resolved",
            "status (the alert is resolved, the policy takes firing)",
        ),
        # The order: source before matchers, matchers as written, status last.
        (
            {"alertname": "Foo", "env": "dev"},
            "datadog",
            "resolved",
            "source (the alert is from datadog, the policy takes alertmanager)",
        ),
        (
            {"alertname": "Foo", "env": "dev"},
            "alertmanager",
            "resolved",
            'alertname="ContainerDown" (alertname is "Foo")',
        ),
        (
            {**GOOD, "env": "dev"},
            "alertmanager",
            "resolved",
            'env!="dev" (env is "dev")',
        ),
    ],
)
def test_the_first_failing_check_is_named(
    labels: dict[str, str], source: Source, status: Status, expected: str | None
) -> None:
    miss = why_not(policy(), alert(labels, source, status))
    assert (None if miss is None else str(miss)) == expected


def test_a_miss_names_what_failed_apart_from_why() -> None:
    assert why_not(policy(), alert({**GOOD, "alertname": "Foo"})) == Miss(
        'alertname="ContainerDown"', 'alertname is "Foo"'
    )
    assert why_not(policy(), alert(GOOD, "datadog")) == Miss(
        "source", "the alert is from datadog, the policy takes alertmanager"
    )


def test_any_source_and_no_matchers_match_everything_firing() -> None:
    bare = policy("name: any\naction: {type: notify, params: {text: hi}}\n")
    assert why_not(bare, alert({}, "datadog")) is None
    assert str(why_not(bare, alert({}, "datadog", "resolved"))) == (
        "status (the alert is resolved, the policy takes firing)"
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Foo", '"Foo"'),
        ("", '""'),
        ('say "hi"\\now', '"say \\"hi\\"\\\\now"'),
        ("two\nlines\r\tend", '"two\\nlines\\r\\tend"'),
        ("next\x85line\u2028sep\u2029par", '"next\\u0085line\\u2028sep\\u2029par"'),
        ("bidi\u202eevil\u200b", '"bidi\\u202eevil\\u200b"'),
        ("esc\x1b[31mred\x7f", '"esc\\u001b[31mred\\u007f"'),
        ("lone\ud800", '"lone\\ud800"'),
        ("café ünïcode 日本", '"café ünïcode 日本"'),
        ("x" * (SHOWN_CHARS + 10), '"' + "x" * SHOWN_CHARS + '"... (74 characters)'),
    ],
)
def test_label_values_are_shown_escaped_on_one_line(value: str, expected: str) -> None:
    assert shown(value) == expected
    assert "\n" not in shown(value) and len(shown(value)) < 6 * SHOWN_CHARS + 40


def test_a_hostile_alertname_stays_on_the_explanation_line() -> None:
    hostile = 'Foo"\npolicy other: matched (alertname is "x")' + "\u2028" * 500
    text = str(why_not(policy(), alert({**GOOD, "alertname": hostile})))
    assert text.count("\n") == 0 and "\u2028" not in text
    assert text.startswith('alertname="ContainerDown" (alertname is "Foo\\"\\npolicy other')
    assert text.endswith(f"... ({len(hostile)} characters))")


def test_one_line_leaves_quotes_unless_asked_and_is_bounded() -> None:
    assert one_line('a "b" \\c', 100) == 'a "b" \\c'
    assert one_line('a "b" \\c', 100, quotes='"') == 'a \\"b\\" \\\\c'
    assert one_line("a\nb", 100) == "a\\nb"
    assert one_line("abcdef", 3) == "abc... (6 characters)"

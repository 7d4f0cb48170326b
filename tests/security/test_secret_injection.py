"""Finding 3 and the http part of 11, attacked on a running daemon: an alert that carries
`${secret:ci_token}` (whole, or split over two labels) is a render_error and sends nothing;
what a hook answers (its body echoing the secret, a 500) never reaches a reason."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.daemon import Daemon, DaemonFactory
from tests.fixtures.procs import free_port, remediator_cli
from tests.security.test_ssrf import CI_TOKEN, ScriptedHook, alert, outcomes, start

POLICIES = """
name: by-url
match: {matchers: ['alertname="InUrl"']}
action:
  type: http.request
  params:
    url: "http://127.0.0.1:HOOK/job/{{ labels.job }}/build"
    headers: {Authorization: "Bearer ${secret:ci_token}"}
    timeout: 5s
  allow_targets: ["http://127.0.0.1:HOOK/job/*/build"]
---
name: by-body
match: {matchers: ['alertname="InBody"']}
action:
  type: http.request
  params:
    url: "http://127.0.0.1:HOOK/notify"
    body: '{"text": "{{ annotations.summary }}", "who": "{{ labels.a }}{{ labels.b }}"}'
    timeout: 5s
  allow_targets: ["http://127.0.0.1:HOOK/notify"]
"""

ANSWERS = """
name: hook-answers
match: {matchers: ['alertname="Answer"']}
action:
  type: http.request
  params:
    url: "http://127.0.0.1:HOOK/{{ labels.kind }}/{{ labels.job }}"
    headers: {Authorization: "Bearer ${secret:ci_token}"}
    body: '{"token": "${secret:ci_token}"}'
    expect_status: "200"
    timeout: 5s
  allow_targets: ["http://127.0.0.1:HOOK/echo/*", "http://127.0.0.1:HOOK/fail/*"]
---
name: closed-port
match: {matchers: ['alertname="Closed"']}
action:
  type: http.request
  params:
    url: "http://127.0.0.1:CLOSED/hook?token=${secret:ci_token}"
    timeout: 5s
  allow_targets: ["http://127.0.0.1:CLOSED/hook?token=*"]
"""


@pytest.fixture
def hook() -> Iterator[ScriptedHook]:
    found = ScriptedHook()
    yield found
    found.close()


def _everything(daemon: Daemon, *answers: Any) -> str:
    """Every place the daemon shows: the decisions list, each decision in full, its log."""
    listed = daemon.decisions()
    detail = [daemon.request("GET", f"/api/v1/decisions/{d['id']}")[1] for d in listed]
    shown = json.dumps([listed, detail, answers], default=str)
    return shown + daemon.log() + str(daemon.request("GET", "/healthz")[1])


def test_a_secret_reference_from_an_alert_is_a_render_error(
    daemon_factory: DaemonFactory, hook: ScriptedHook
) -> None:
    daemon = start(daemon_factory, hook, POLICIES)
    attacks = [
        alert("InUrl", job="${secret:ci_token}"),
        alert("InBody", a="x", b="y") | {"annotations": {"summary": "${secret:ci_token}"}},
        alert("InBody", a="$", b="{secret:ci_token}") | {"annotations": {"summary": "s"}},
    ]
    answer = daemon.webhook({"alerts": attacks})
    decided = outcomes(answer)
    assert [o for o, _ in decided] == ["render_error"] * 3, decided
    assert all("a value from the alert contains '${'" in reason for _, reason in decided)
    # A policy-written reference is still filled in, on the wire only.
    legit = alert("InUrl", job="web")
    assert [o for o, _ in outcomes(daemon.webhook({"alerts": [legit]}))] == ["executing"]
    daemon.wait_decisions(
        lambda ds: any(d["outcome"] == "executed" for d in ds), timeout=30, what="the legit call"
    )
    [sent] = hook.requests
    assert sent.path == "/job/web/build"
    assert sent.headers["Authorization"] == f"Bearer {CI_TOKEN}"
    assert CI_TOKEN not in _everything(daemon, answer)
    assert daemon.request("GET", "/healthz")[0] == 200


def test_what_a_hook_answers_never_reaches_a_reason(
    daemon_factory: DaemonFactory, hook: ScriptedHook
) -> None:
    closed = free_port()  # nothing listens: aiohttp's error would quote the filled URL
    daemon = start(daemon_factory, hook, ANSWERS.replace("CLOSED", str(closed)))
    calls = [
        alert("Answer", kind="echo", job="a"),
        alert("Answer", kind="fail", job="b"),
        alert("Closed", job="c"),
    ]
    answer = daemon.webhook({"alerts": calls})
    assert answer[0] == 200
    decisions = daemon.wait_decisions(
        lambda ds: len(ds) == 3 and all(d["outcome"] in ("executed", "failed") for d in ds),
        timeout=60,
        what="three results",
    )
    reasons = {d["target"].split("/")[3]: d for d in decisions}
    assert reasons["echo"]["outcome"] == "executed"
    assert "answered 200 (" in reasons["echo"]["reason"]
    assert reasons["fail"]["outcome"] == "failed"
    assert "answered 500, expected 200 (" in reasons["fail"]["reason"]
    assert reasons["hook?token=${secret:ci_token}"]["outcome"] == "failed"
    assert "cannot connect" in reasons["hook?token=${secret:ci_token}"]["reason"]
    assert len(hook.requests) == 2 and all(CI_TOKEN in r.body.decode() for r in hook.requests)
    for record in decisions:
        # Not masked after the fact: never there. The hook echoed the token reversed too,
        # which no redactor would recognise.
        assert "HOOK-BODY" not in record["reason"] and "***" not in record["reason"]
        assert CI_TOKEN[::-1] not in record["reason"]
    shown = _everything(daemon, answer)
    assert CI_TOKEN not in shown and CI_TOKEN[::-1] not in shown
    assert daemon.request("GET", "/healthz")[0] == 200


def test_a_secret_the_config_does_not_define_is_refused_before_serving(tmp_path: Path) -> None:
    """A typo in `${secret:NAME}` is found by `check` and stops `serve`, not the 3 a.m. alert."""
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "p.yaml").write_text(
        "name: hook\naction:\n  type: http.request\n  params:\n"
        '    url: "http://127.0.0.1:1/hook"\n'
        '    headers: {Authorization: "Bearer ${secret:ci_tokn}"}\n'
        '  allow_targets: ["http://127.0.0.1:1/hook"]\n'
    )
    (tmp_path / "remediator.yaml").write_text(
        f'policies: ["./policies"]\nsecrets: {{ci_token: "{CI_TOKEN}"}}\n'
    )
    for command, code in (("check", 1), ("serve", 2)):
        done = remediator_cli(command, "--config", "remediator.yaml", cwd=tmp_path)
        assert done.returncode == code, done.stderr
        assert "policy hook: action.params: ${secret:ci_tokn} is not configured" in done.stderr
        assert CI_TOKEN not in done.stdout + done.stderr

"""Finding 2: SSRF through http.request, attacked on a running daemon. A label can neither
move the path (`..`, `%2F`, `\\`), nor add a query, fragment or userinfo, nor pick another
host or port; a hook's redirect is never followed, so the secret header goes nowhere else."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.daemon import Daemon, DaemonFactory
from tests.fixtures.http_hook import Hook, Received
from tests.fixtures.procs import remediator_cli

CI_TOKEN = "ci-secret-token-ssrf-7f3a9c"
STARTS = "2026-11-22T10:00:00Z"


class ScriptedHook(Hook):
    """Answers by path: `/redirect/` with a 302 to `location`, `/echo/` (200) and `/fail/`
    (500) with the request echoed back (secret header included, as a careless hook would),
    anything else 200 with no body."""

    def __init__(self) -> None:
        self.location = ""
        super().__init__()

    def answer(self, received: Received) -> tuple[int, dict[str, str], bytes]:
        if received.path.startswith("/redirect/"):
            return 302, {"Location": self.location}, b""
        echo = json.dumps({"headers": received.headers, "body": received.body.decode()})
        answer = echo.encode() + b" HOOK-BODY " + echo[::-1].encode()
        if received.path.startswith("/fail/"):
            return 500, {}, answer
        return 200, {}, answer if received.path.startswith("/echo/") else b""


@pytest.fixture
def hook() -> Iterator[ScriptedHook]:
    found = ScriptedHook()
    yield found
    found.close()


@pytest.fixture
def sink() -> Iterator[ScriptedHook]:
    """The attacker's server: every test asserts it received nothing at all."""
    found = ScriptedHook()
    yield found
    found.close()


POLICIES = """
name: ci-by-path
match: {matchers: ['alertname="ByPath"']}
action:
  type: http.request
  params:
    url: "http://127.0.0.1:HOOK/job/{{ labels.job }}/build"
    headers: {Authorization: "Bearer ${secret:ci_token}"}
    timeout: 5s
  allow_targets: ["http://127.0.0.1:HOOK/job/*/build"]
---
name: ci-by-host
match: {matchers: ['alertname="ByHost"']}
action:
  type: http.request
  params:
    url: "http://{{ labels.host }}/job/a/build"
    headers: {Authorization: "Bearer ${secret:ci_token}"}
    timeout: 5s
  allow_targets: ["http://127.0.0.1:HOOK/job/a/build"]
---
name: ci-redirected
match: {matchers: ['alertname="Redirected"']}
action:
  type: http.request
  params:
    url: "http://127.0.0.1:HOOK/redirect/{{ labels.job }}"
    headers: {Authorization: "Bearer ${secret:ci_token}"}
    timeout: 5s
  allow_targets: ["http://127.0.0.1:HOOK/redirect/*"]
"""


def alert(name: str, **labels: str) -> dict[str, Any]:
    return {"labels": {"alertname": name, **labels}, "annotations": {}, "startsAt": STARTS}


def start(daemon_factory: DaemonFactory, hook: ScriptedHook, policies: str = POLICIES) -> Daemon:
    daemon = daemon_factory(
        policies.replace("HOOK", str(hook.port)), secrets={"ci_token": CI_TOKEN}
    )
    daemon.start()
    return daemon


def outcomes(answer: tuple[int, Any]) -> list[tuple[str, str]]:
    status, body = answer
    assert status == 200, body
    return [(d["outcome"], d["reason"]) for d in body["decisions"]]


def test_labels_cannot_move_the_path_or_pick_the_host(
    daemon_factory: DaemonFactory, hook: ScriptedHook, sink: ScriptedHook
) -> None:
    daemon = start(daemon_factory, hook)
    by_path = [
        "x/../deploy-prod",
        "x/..;/deploy-prod",
        "%2e%2e",
        "x%2F..%2Fdeploy-prod",
        "x%2f..%2fdeploy-prod",
        "x%5C..%5Cdeploy-prod",
        "x\\..\\deploy-prod",
        "deploy-prod/build?cause=",  # query injection
        "deploy-prod/build#",  # fragment injection
        "a b",
    ]
    by_host = [
        f"127.0.0.1:{hook.port}@127.0.0.1:{sink.port}",  # userinfo: the real host is the sink
        f"attacker:pw@127.0.0.1:{sink.port}",
        f"127.0.0.1:{sink.port}",  # another port
        f"127.0.0.1:{hook.port}/job/a/build?x=#",
    ]
    attacks = [alert("ByPath", job=j) for j in by_path]
    attacks += [alert("ByHost", host=h) for h in by_host]
    decided = outcomes(daemon.webhook({"alerts": attacks}))
    assert len(decided) == len(attacks)
    assert all(outcome == "out_of_scope" for outcome, _ in decided), decided
    assert all("pw@" not in reason for _, reason in decided)
    # The same daemon still calls the hook for alerts within scope.
    canaries = [alert("ByPath", job="web"), alert("ByHost", host=f"127.0.0.1:{hook.port}")]
    assert [o for o, _ in outcomes(daemon.webhook({"alerts": canaries}))] == ["executing"] * 2
    daemon.wait_decisions(
        lambda ds: sum(d["outcome"] == "executed" for d in ds) == 2, timeout=30, what="canaries"
    )
    assert sorted(r.path for r in hook.requests) == ["/job/a/build", "/job/web/build"]
    assert sink.requests == []
    assert daemon.request("GET", "/healthz")[0] == 200


def test_a_redirect_is_failed_and_never_followed(
    daemon_factory: DaemonFactory, hook: ScriptedHook, sink: ScriptedHook
) -> None:
    hook.location = f"http://thief:pw-in-location@127.0.0.1:{sink.port}/stolen"
    daemon = start(daemon_factory, hook)
    assert daemon.webhook({"alerts": [alert("Redirected", job="rollback")]})[0] == 200
    [record] = daemon.wait_decisions(
        lambda ds: bool(ds) and ds[0]["outcome"] in ("executed", "failed"),
        timeout=30,
        what="the redirected call's result",
    )
    assert record["outcome"] == "failed", record
    assert (
        f"answered 302, a redirect to Location http://127.0.0.1:{sink.port}/stolen:"
        in (record["reason"])
    )
    assert "pw-in-location" not in json.dumps(daemon.decisions()) + daemon.log()
    [sent] = hook.requests  # the legit hook got the call (and the secret), exactly once
    assert sent.path == "/redirect/rollback" and sent.headers["Authorization"].endswith(CI_TOKEN)
    assert sink.requests == []  # the result is recorded after the answer: nothing followed
    assert daemon.request("GET", "/healthz")[0] == 200


@pytest.mark.parametrize(
    ("allow", "problem"),
    [
        ('["http://127.0.0.1:*/job/*/build"]', "no wildcard in the scheme, host or port"),
        ('["http://*/job/*/build"]', "no wildcard in the scheme, host or port"),
        ('["*"]', "is not an absolute http:// or https:// URL"),
    ],
)
def test_check_refuses_an_allowlist_that_lets_a_label_pick_the_host(
    tmp_path: Path, allow: str, problem: str
) -> None:
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "p.yaml").write_text(
        "name: ci\naction:\n  type: http.request\n"
        '  params: {url: "http://{{ labels.host }}/job/a/build"}\n'
        f"  allow_targets: {allow}\n"
    )
    (tmp_path / "remediator.yaml").write_text("policies: [./policies]\n")
    done = remediator_cli("check", "--config", "remediator.yaml", cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert problem in done.stdout + done.stderr

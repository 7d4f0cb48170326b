"""Why didn't it act, as an operator asks it: `simulate` names, per policy that does not
match, the first matcher (or source/status) that failed; the daemon at --log-level debug
writes only JSON lines and says which policies it tried, and logs alert.unmatched."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.fixtures.daemon import DaemonFactory
from tests.fixtures.procs import remediator_cli, wait_for

POLICIES = """
name: restart-web
match: {source: alertmanager, matchers: ['alertname="ContainerDown"', 'env!="dev"']}
action: {type: docker.restart, params: {container: "{{ labels.container }}"}, allow_targets: ["web-*"]}
guards: {dry_run: true}
---
name: restart-on-datadog
match: {source: datadog, matchers: ['alertname="ContainerDown"']}
action: {type: docker.restart, params: {container: "{{ labels.container }}"}, allow_targets: ["web-*"]}
---
name: clean-up-after
match: {status: resolved, matchers: ['alertname="ContainerDown"']}
action: {type: docker.restart, params: {container: "{{ labels.container }}"}, allow_targets: ["web-*"]}
"""


def alerts(*labels: dict[str, str]) -> str:
    return json.dumps(
        {"alerts": [{"labels": each, "startsAt": "2026-11-22T10:00:00Z"} for each in labels]}
    )


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "p.yaml").write_text(POLICIES)
    return tmp_path


def test_simulate_names_the_first_check_each_policy_failed(folder: Path) -> None:
    payload = folder / "alerts.json"
    payload.write_text(
        alerts(
            {"alertname": "Foo", "container": "web-1"},
            {"alertname": "ContainerDown", "container": "web-1", "env": "dev"},
            {"alertname": "ContainerDown", "container": "web-1"},
        )
    )
    done = remediator_cli("simulate", str(payload), cwd=folder)
    assert done.returncode == 0, done.stderr
    blocks = done.stdout.split("\nalert ")
    assert blocks[0].splitlines()[1:] == [
        "  no policy matches",
        '  policy restart-web: not matched: alertname="ContainerDown" (alertname is "Foo")',
        "  policy restart-on-datadog: not matched: source (the alert is from alertmanager, "
        "the policy takes datadog)",
        '  policy clean-up-after: not matched: alertname="ContainerDown" (alertname is "Foo")',
    ]
    assert '  policy restart-web: not matched: env!="dev" (env is "dev")' in blocks[1]
    assert (
        "  policy clean-up-after: not matched: status (the alert is firing, the policy takes "
        "resolved)" in blocks[2]
    )
    assert "policy restart-web: docker.restart target=web-1" in blocks[2]
    assert "restart-web: not matched" not in blocks[2]

    report = json.loads(remediator_cli("simulate", str(payload), "--json", cwd=folder).stdout)
    assert report[0]["policies"] == []
    assert report[0]["not_matched"] == [
        {
            "policy": "restart-web",
            "failed": 'alertname="ContainerDown"',
            "reason": 'alertname="ContainerDown" (alertname is "Foo")',
        },
        {
            "policy": "restart-on-datadog",
            "failed": "source",
            "reason": "source (the alert is from alertmanager, the policy takes datadog)",
        },
        {
            "policy": "clean-up-after",
            "failed": 'alertname="ContainerDown"',
            "reason": 'alertname="ContainerDown" (alertname is "Foo")',
        },
    ]
    assert [m["policy"] for m in report[2]["not_matched"]] == [
        "restart-on-datadog",
        "clean-up-after",
    ]
    assert [p["policy"] for p in report[2]["policies"]] == ["restart-web"]


def test_simulate_keeps_a_hostile_alertname_on_its_line(folder: Path) -> None:
    hostile = 'Evil"\n  policy restart-web: docker.restart target=web-1\u2028\u202e' + "x" * 500
    payload = folder / "alerts.json"
    payload.write_text(alerts({"alertname": hostile, "container": "web-1"}))
    done = remediator_cli("simulate", str(payload), cwd=folder)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 5  # the alert, "no policy matches", three explanations
    assert "\u2028" not in done.stdout and "\u202e" not in done.stdout
    assert lines[0].startswith('alert 1/1: Evil"\\n  policy restart-web: docker.restart')
    assert not any(line.startswith("  policy restart-web: docker.restart") for line in lines)
    assert lines[2].startswith(
        '  policy restart-web: not matched: alertname="ContainerDown" '
        '(alertname is "Evil\\"\\n  policy restart-web'
    )
    assert lines[2].endswith(f"... ({len(hostile)} characters))") and len(lines[2]) < 300


def test_serve_at_debug_writes_only_json_and_says_what_it_tried(
    daemon_factory: DaemonFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REMEDIATOR_LOG_LEVEL", "debug")  # serve's --log-level default
    daemon = daemon_factory(POLICIES)
    daemon.start()
    for labels in ({"alertname": "ContainerDown", "container": "web-1"}, {"alertname": "Foo"}):
        status, _ = daemon.webhook(
            {
                "version": "4",
                "status": "firing",
                "receiver": "r",
                "groupKey": "{}",
                "alerts": [
                    {
                        "status": "firing",
                        "labels": labels,
                        "annotations": {},
                        "startsAt": "2026-11-22T10:00:00Z",
                        "endsAt": "0001-01-01T00:00:00Z",
                    }
                ],
            }
        )
        assert status == 200
    wait_for(lambda: daemon.events("alert.unmatched"), timeout=10, what="alert.unmatched")
    assert daemon.stop() == 0
    lines = daemon.log().splitlines()
    parsed = [json.loads(line) for line in lines]  # every line, the SQLite driver's included
    assert not [p for p in parsed if str(p.get("logger", "")).startswith("aiosqlite")]
    tried = [p for p in parsed if p["event"] == "alert.tried"]
    assert [(t["alertname"], t["matched"], t["level"]) for t in tried] == [
        ("ContainerDown", ["restart-web"], "debug"),
        ("Foo", [], "debug"),
    ]
    assert any("clean-up-after: status" in reason for reason in tried[0]["not_matched"])
    [unmatched] = [p for p in parsed if p["event"] == "alert.unmatched"]
    assert unmatched["alertname"] == "Foo" and unmatched["level"] == "info"

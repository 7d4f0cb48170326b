"""Finding 11: secrets that leaked. A YAML error is reported by line and column, never by
quoting the line; a Prometheus URL's `user:pass@` never reaches /healthz, reasons or logs;
library log records go through the same redactor as ours."""

from __future__ import annotations

import json
from pathlib import Path

from tests.fixtures.daemon import AM_TOKEN, API_TOKEN, DaemonFactory
from tests.fixtures.procs import free_port, remediator_cli, wait_for

INLINE_SECRET = "inline-secret-value-31337"
PROM_PASSWORD = "prom-password-424242"
POLICY = """
name: guarded
match: {matchers: ['alertname="Down"']}
action: {type: docker.restart, params: {container: "{{ labels.name }}"}, allow_targets: ["web-*"]}
condition:
  prometheus: {query: 'up{job="{{ labels.job }}"}', below: 1, for: 1m}
"""


def test_a_yaml_error_never_quotes_the_line_that_holds_a_secret(tmp_path: Path) -> None:
    (tmp_path / "remediator.yaml").write_text(
        f'auth:\n  api: {{bearer_token: "{INLINE_SECRET}}}\nlisten: "127.0.0.1:1"\n'
    )
    for command in ("check", "serve"):
        done = remediator_cli(command, "--config", "remediator.yaml", cwd=tmp_path)
        assert done.returncode in (1, 2)
        assert "line" in done.stderr and "column" in done.stderr, done.stderr
        assert INLINE_SECRET not in done.stdout + done.stderr
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "p.yaml").write_text(f"name: x\naction: {{type: '{INLINE_SECRET}\n")
    (tmp_path / "remediator.yaml").write_text("policies: [./policies]\n")
    done = remediator_cli("check", "--config", "remediator.yaml", cwd=tmp_path)
    assert done.returncode == 1 and "line" in done.stderr
    assert INLINE_SECRET not in done.stdout + done.stderr


def test_a_prometheus_password_never_reaches_healthz_reasons_or_logs(
    daemon_factory: DaemonFactory,
) -> None:
    closed = free_port()  # nothing listens: every probe and condition fails, with the URL
    daemon = daemon_factory(
        POLICY, prometheus={"url": f"http://promuser:{PROM_PASSWORD}@127.0.0.1:{closed}"}
    )
    daemon.start()
    health = wait_for(
        lambda: (h := daemon.request("GET", "/healthz")[1])["backends"].get("prometheus") and h,
        timeout=20,
        what="the Prometheus probe",
    )
    assert health["backends"]["prometheus"] != "ok"
    body = {
        "alerts": [
            {
                "labels": {"alertname": "Down", "name": "web-1", "job": "web"},
                "startsAt": "2026-11-22T10:00:00Z",
            }
        ]
    }
    status, answer = daemon.webhook(body)
    assert status == 200
    [decision] = daemon.decisions()
    assert decision["outcome"] == "condition_not_met"
    assert "127.0.0.1" in decision["reason"]  # the reason names where it looked...
    everything = json.dumps([health, answer, daemon.decisions()]) + daemon.log()
    assert PROM_PASSWORD not in everything  # ...but never with the password
    assert "promuser:" not in everything


def test_every_daemon_log_line_is_json_and_redacted(daemon_factory: DaemonFactory) -> None:
    """Library records (aiohttp, asyncio) used to bypass structlog as plain text."""
    port = free_port()
    daemon = daemon_factory(
        POLICY.replace(
            "condition:\n  prometheus: {query: 'up{job=\"{{ labels.job }}\"}', "
            "below: 1, for: 1m}\n",
            "",
        ),
        port=port,
        auth={"alertmanager": {"bearer_token": AM_TOKEN}, "api": {"tokens": {"ops": API_TOKEN}}},
    )
    daemon.start()
    # A malformed request line makes aiohttp's own logger speak; a bad token is logged by us.
    import socket  # noqa: PLC0415  # only this test speaks raw bytes

    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"GET /\x00\x01 HTTP/9.9\r\nHost: x\r\n\r\n")
        sock.recv(1024)
    daemon.request("POST", "/api/v1/pause", b"", {"Authorization": f"Bearer {AM_TOKEN}"})
    assert daemon.stop() == 0
    lines = [line for line in daemon.log().splitlines() if line.strip()]
    assert lines
    for line in lines:
        record = json.loads(line)  # every line, the library's included
        assert "event" in record
    assert AM_TOKEN not in daemon.log() and API_TOKEN not in daemon.log()

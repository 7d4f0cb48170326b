"""Finding 9: any web page open on the host can make a browser POST to the daemon. A
browser sends `text/plain`, form or multipart bodies without a preflight and always names
its page's `Origin`: those are 415 and 403, and nothing acts, even with no auth on loopback."""

from __future__ import annotations

import json

import pytest

from tests.fixtures.daemon import Daemon, DaemonFactory
from tests.fixtures.http_hook import Hook
from tests.fixtures.procs import wait_for

POLICY = """
name: call-hook
match: {matchers: ['alertname="Down"']}
action:
  type: http.request
  params: {method: POST, url: "http://127.0.0.1:%d/hook", body: "{{ labels.name }}"}
  allow_targets: ["http://127.0.0.1:%d/hook"]
"""
ALERT = json.dumps(
    {
        "alerts": [
            {"labels": {"alertname": "Down", "name": "web-1"}, "startsAt": "2026-11-22T10:00:00Z"}
        ]
    }
).encode()


@pytest.fixture
def open_daemon(daemon_factory: DaemonFactory, http_hook: Hook) -> Daemon:
    """Loopback with no auth at all: the setup a browser-driven attack targets."""
    daemon = daemon_factory(POLICY % (http_hook.port, http_hook.port), auth={})
    daemon.start()
    return daemon


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/webhook/alertmanager", "text/plain"),
        ("/webhook/alertmanager", "application/x-www-form-urlencoded"),
        ("/webhook/alertmanager", "multipart/form-data; boundary=x"),
        ("/webhook/datadog", "text/plain;charset=UTF-8"),
        ("/api/v1/pause", "text/plain"),
        ("/api/v1/approvals/x/approve", "application/x-www-form-urlencoded"),
    ],
)
def test_a_body_that_is_not_json_is_415_and_changes_nothing(
    open_daemon: Daemon, http_hook: Hook, path: str, content_type: str
) -> None:
    status, answer = open_daemon.request("POST", path, ALERT, {"Content-Type": content_type})
    assert status == 415, answer
    assert open_daemon.decisions() == []
    assert open_daemon.request("GET", "/healthz")[1]["paused"] is False
    assert http_hook.requests == []


@pytest.mark.parametrize("origin", ["http://evil.example", "null", "http://127.0.0.1:1"])
def test_a_foreign_origin_is_403_and_changes_nothing(
    open_daemon: Daemon, http_hook: Hook, origin: str
) -> None:
    json_type = {"Content-Type": "application/json", "Origin": origin}
    assert open_daemon.request("POST", "/webhook/alertmanager", ALERT, json_type)[0] == 403
    assert open_daemon.request("POST", "/api/v1/pause", b"", {"Origin": origin})[0] == 403
    assert open_daemon.request("GET", "/api/v1/decisions", None, {"Origin": origin})[0] == 403
    assert open_daemon.decisions() == []
    assert open_daemon.request("GET", "/healthz")[1]["paused"] is False
    assert open_daemon.events("http.foreign_origin")
    assert http_hook.requests == []


def test_same_origin_and_origin_less_json_requests_still_work(
    open_daemon: Daemon, http_hook: Hook
) -> None:
    own = {"Origin": open_daemon.url}
    assert open_daemon.request("POST", "/api/v1/pause", b"", own)[0] == 200
    assert open_daemon.request("POST", "/api/v1/resume", b"", own)[0] == 200
    typed = {"Content-Type": "application/json; charset=utf-8"}
    status, answer = open_daemon.request("POST", "/webhook/alertmanager", ALERT, typed)
    assert status == 200, answer
    wait_for(lambda: http_hook.requests, timeout=20, what="the hook called by a real sender")


@pytest.mark.parametrize("host", ["evil.example", "rebind.evil.example:9595", "10.0.0.1", ""])
def test_a_rebound_name_is_403_on_a_loopback_daemon(
    open_daemon: Daemon, http_hook: Hook, host: str
) -> None:
    """DNS rebinding: the attacker's page is same-origin with itself, so it may send JSON;
    only the Host header still names the attacker's domain."""
    page = f"http://{host}"
    headers = {"Content-Type": "application/json", "Host": host, "Origin": page}
    assert open_daemon.request("POST", "/webhook/alertmanager", ALERT, headers)[0] == 403
    assert open_daemon.request("POST", "/api/v1/pause", b"", {"Host": host})[0] == 403
    assert open_daemon.decisions() == []
    assert open_daemon.request("GET", "/healthz")[1]["paused"] is False
    assert open_daemon.events("http.foreign_host")
    assert http_hook.requests == []


@pytest.mark.parametrize("name", ["localhost", "127.0.0.1", "LOCALHOST"])
def test_local_names_for_this_machine_are_served(open_daemon: Daemon, name: str) -> None:
    host = f"{name}:{open_daemon.port}"
    assert open_daemon.request("GET", "/healthz", None, {"Host": host})[0] == 200

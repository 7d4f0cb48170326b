"""Finding 14 (bounds): a Prometheus that accepts connections and never answers used to hold
a webhook for about 32 s (three attempts of 5 s, twice), past Datadog's 15 s. Now one deadline
covers a webhook's whole condition stage, and the answer is `condition_not_met`, never an
action taken blind."""

from __future__ import annotations

import json
import socket
import threading
import urllib.request
from collections.abc import Iterator

import pytest

from remediator.checks.conditions import CONDITION_DEADLINE
from tests.fixtures.daemon import AM_TOKEN, DaemonFactory
from tests.fixtures.http_hook import Hook

POLICY = """
name: rollback
match: {matchers: ['alertname="HighErrorRate"']}
action:
  type: http.request
  params: {method: POST, url: "http://127.0.0.1:%d/rollback"}
  allow_targets: ["http://127.0.0.1:%d/rollback"]
condition:
  prometheus:
    query: 'rate(errors{deployment="{{ labels.deployment }}"}[1m])'
    above: 0.1
    for: 1m
    min_rate: 'rate(requests{deployment="{{ labels.deployment }}"}[1m]) > 1'
"""


@pytest.fixture
def silent_prometheus() -> Iterator[int]:
    """Accepts every connection and never says a word, as a wedged Prometheus does."""
    server = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            held.append(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join(5)
    for conn in held:
        conn.close()
    server.close()


def test_a_silent_prometheus_cannot_hold_a_webhook_past_the_deadline(
    daemon_factory: DaemonFactory, http_hook: Hook, silent_prometheus: int
) -> None:
    daemon = daemon_factory(
        POLICY % (http_hook.port, http_hook.port),
        prometheus={"url": f"http://127.0.0.1:{silent_prometheus}"},
    )
    daemon.start()
    body = {
        "alerts": [
            {
                "labels": {"alertname": "HighErrorRate", "deployment": "checkout"},
                "startsAt": "2026-11-22T10:00:00Z",
            }
        ]
    }
    request = urllib.request.Request(
        f"{daemon.url}/webhook/alertmanager",
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {AM_TOKEN}", "Content-Type": "application/json"},
        method="POST",
    )
    # Datadog gives up at 15 s: the answer must come before that, whatever Prometheus does.
    with urllib.request.urlopen(request, timeout=15) as response:  # loopback test URL
        answer = json.loads(response.read())
    [decision] = answer["decisions"]
    assert decision["outcome"] == "condition_not_met"
    deadline = f"did not answer within the condition deadline of {CONDITION_DEADLINE:g}s"
    assert deadline in decision["reason"]
    assert daemon.request("GET", "/healthz")[0] == 200
    assert http_hook.requests == []

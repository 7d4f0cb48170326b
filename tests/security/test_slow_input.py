"""Finding 5: one request must not stall the event loop. While hostile bodies are in flight
against a running daemon (1 MiB Datadog titles that the old title regex took hours on, and
20k+ character label values against a backtracking-prone matcher), /healthz keeps answering
within 1 s, the hostile requests get a quick 4xx or 200, and nothing acts."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

from tests.fixtures.daemon import AM_TOKEN, API_TOKEN, DaemonFactory
from tests.fixtures.http_hook import Hook

DD_TOKEN = "dd-token-slow-input-5150"
MAX_BODY = 1_048_576
FILL = MAX_BODY - 512  # the largest title a body within max_body_bytes can carry
POLICY = """
name: restart-prod
match:
  source: alertmanager
  matchers: ['alertname="Slow"', 'x=~".*-.*-prod"']
action:
  type: http.request
  params: {url: "%s/restart"}
  allow_targets: ["%s/restart"]
"""

DATADOG_TITLES = [
    "[" + "a" * FILL,  # no transition: 400
    "[Triggered] " + " " * FILL + "x",  # the old regex: quadratic in this whitespace
    "[Triggered] x" + " \n" * (FILL // 3) + "y",  # "\n" is two bytes of JSON
    "[Triggered on {" + " " * FILL,
    "[Triggered" + " " * FILL + "on",
    "[P1]" + " " * FILL,
]
# 20k and 500k characters. (A ~1 MiB value costs ~0.3 s in the pure-Python Alertmanager
# fingerprint: linear, but a visible share of the 1 s budget on a loaded CI machine.)
LABEL_VALUES = ["a-" * 10_000 + "x", "a-" * 250_000]


@dataclass
class Sent:
    what: str
    status: int
    seconds: float


def _post(url: str, body: bytes, headers: dict[str, str]) -> int:
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json", **headers}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        exc.close()
        return int(exc.code)


def _hostile(base: str, sent: list[Sent], errors: list[BaseException]) -> None:
    try:
        _send_all(base, sent)
    except BaseException as exc:  # noqa: BLE001  # re-raised by the test thread, not lost here
        errors.append(exc)


def _send_all(base: str, sent: list[Sent]) -> None:
    for title in DATADOG_TITLES:
        body = json.dumps({"title": title, "monitor_id": "1", "date": "²"}).encode()
        assert len(body) <= MAX_BODY
        started = time.monotonic()
        status = _post(f"{base}/webhook/datadog", body, {"X-Remediator-Token": DD_TOKEN})
        sent.append(Sent(f"datadog {title[:16]!r}", status, time.monotonic() - started))
    for value in LABEL_VALUES:
        alert = {"labels": {"alertname": "Slow", "x": value}, "startsAt": "2026-11-22T10:00:00Z"}
        body = json.dumps({"version": "4", "status": "firing", "alerts": [alert]}).encode()
        assert len(body) <= MAX_BODY
        started = time.monotonic()
        status = _post(
            f"{base}/webhook/alertmanager", body, {"Authorization": f"Bearer {AM_TOKEN}"}
        )
        sent.append(
            Sent(f"alertmanager x={value[:8]!r}*{len(value)}", status, time.monotonic() - started)
        )


def _healthz(base: str) -> float:
    """Seconds /healthz took; fails the test if it does not answer 200 within 1 s."""
    started = time.monotonic()
    with urllib.request.urlopen(f"{base}/healthz", timeout=1) as resp:
        assert resp.status == 200
        resp.read()
    return time.monotonic() - started


def test_healthz_answers_while_hostile_bodies_are_parsed(
    daemon_factory: DaemonFactory, http_hook: Hook
) -> None:
    daemon = daemon_factory(
        POLICY % (http_hook.url, http_hook.url),
        max_body_bytes=MAX_BODY,
        auth={
            "alertmanager": {"bearer_token": AM_TOKEN},
            "api": {"bearer_token": API_TOKEN},
            "datadog": {"header": "X-Remediator-Token", "token": DD_TOKEN},
        },
    )
    daemon.start()
    sent: list[Sent] = []
    errors: list[BaseException] = []
    attack = threading.Thread(target=_hostile, args=(daemon.url, sent, errors), daemon=True)
    attack.start()
    latencies = []
    while attack.is_alive():
        latencies.append(_healthz(daemon.url))  # raises TimeoutError past 1 s
        time.sleep(0.02)
    attack.join(60)
    latencies.append(_healthz(daemon.url))

    assert not errors, errors
    assert len(sent) == len(DATADOG_TITLES) + len(LABEL_VALUES), sent
    assert max(latencies) < 1.0, latencies
    assert len(latencies) >= 5, "the hostile requests finished before /healthz was polled"
    for one in sent:
        assert one.status in (200, 400), one
        assert one.seconds < 3.0, one
    assert [s.status for s in sent[:1]] == [400]  # "[aaaa...": no transition
    assert http_hook.requests == []  # nothing acted
    # Every label value failed the anchored regex (none ends in "-prod"): no decision.
    assert daemon.decisions() == []
    _, metrics = daemon.request("GET", "/metrics")
    received = 'remediator_alerts_received_total{source="alertmanager",status="firing"} '
    [line] = [x for x in bytes(metrics).decode().splitlines() if x.startswith(received)]
    assert float(line.rsplit(" ", 1)[1]) == len(LABEL_VALUES)  # each one was matched

"""The Prometheus fixture is honest: a real Prometheus 2.42 scraping ErrorApp computes the error
ratios the test set, runs `for:` rules into Alertmanager, and can be taken down and back."""

from __future__ import annotations

import itertools
import json
import math
import threading
import time

import pytest
from aiohttp import web

from tests.fixtures.procs import wait_for
from tests.fixtures.prometheus import JOB, ErrorApp, LoopbackServer, PrometheusFactory


def ratio(deployment: str) -> str:
    return (
        f'sum(rate(http_requests_total{{code=~"5..",deployment="{deployment}"}}[5s]))'
        f' / sum(rate(http_requests_total{{deployment="{deployment}"}}[5s]))'
    )


RATIO = ratio("checkout")
# ErrorApp's counters are exact linear functions of time and both codes come from the same
# scrape, so Prometheus's per-series extrapolation factors are identical and cancel in the
# ratio: only float rounding is left (seen: ~1e-16), far inside this bound.
EXACT = 1e-9
WINDOW = 5.0


def test_ratio_follows_the_configured_traffic(
    error_app: ErrorApp, prometheus_factory: PrometheusFactory
) -> None:
    error_app.set("checkout", error_ratio=0.3)
    error_app.set("payments", rate=20.0, error_ratio=0.3)
    prometheus = prometheus_factory(error_app)

    # Prometheus 2.42 hands targets to the scraper only after its 5 s discovery throttle, and
    # rate() needs two samples: the first value takes ~6 s after start.
    first = prometheus.wait_for_series(RATIO, timeout=20)
    assert float(first[0]["value"][1]) == pytest.approx(0.3, abs=EXACT)

    # The ratio was set before the first scrape, so every step with data is already exact.
    def full_range() -> list[list[object]] | None:
        answer = prometheus.query_range(RATIO, seconds=3, step=1)
        assert answer["status"] == "success", answer
        series = answer["data"]["result"]
        return series[0]["values"] if series and len(series[0]["values"]) == 4 else None

    points = wait_for(full_range, timeout=15, what="4 range points of the ratio", interval=0.2)
    assert [float(str(value)) for _, value in points] == pytest.approx([0.3] * 4, abs=EXACT)

    # Both changes at once, so their windows pass together.
    changed = time.monotonic()
    error_app.set("checkout", error_ratio=0.02)
    error_app.set("payments", rate=0.0)
    seen: list[float] = []

    def settled() -> bool:
        seen.append(prometheus.values(RATIO)[0])
        return abs(seen[-1] - 0.02) <= EXACT

    wait_for(settled, timeout=15, what="the ratio to reach 0.02", interval=0.1)
    # With 1 s scrapes the window keeps a pre-change sample for at least WINDOW - 1 s, and in
    # between the ratio only ever moves from 0.3 towards 0.02.
    assert time.monotonic() - changed >= WINDOW - 1.5
    assert all(later <= earlier + EXACT for earlier, later in itertools.pairwise(seen))
    assert all(0.02 - EXACT <= value <= 0.3 + EXACT for value in seen)

    # No traffic makes both rates 0, and Prometheus answers 0/0 as one NaN sample, not as an
    # empty vector; a comparison filters NaN out, so the alert expression is empty.
    def no_traffic() -> bool:
        return [sample["value"][1] for sample in prometheus.vector(ratio("payments"))] == ["NaN"]

    wait_for(no_traffic, timeout=15, what="NaN once traffic stops", interval=0.1)
    assert math.isnan(prometheus.values(ratio("payments"))[0])
    assert prometheus.vector(f"{ratio('payments')} > 0.10") == []
    assert prometheus.values('sum(rate(http_requests_total{deployment="payments"}[5s]))') == [0.0]


def test_outages_of_the_target_and_of_prometheus(
    error_app: ErrorApp, prometheus_factory: PrometheusFactory
) -> None:
    prometheus = prometheus_factory(error_app)
    prometheus.wait_for_series(RATIO, timeout=20)
    assert prometheus.values(f'up{{job="{JOB}"}}') == [1.0]

    error_app.set_down(True)
    wait_for(
        lambda: prometheus.values(f'up{{job="{JOB}"}}') == [0.0],
        timeout=10,
        what="up == 0 after a failed scrape",
        interval=0.1,
    )
    # The failed scrape writes staleness markers, so instant selectors go empty at once, while
    # rate() keeps answering from the samples still inside its window until fewer than two are.
    assert prometheus.vector('http_requests_total{deployment="checkout"}') == []
    wait_for(
        lambda: prometheus.vector(RATIO) == [],
        timeout=WINDOW + 5,
        what="the ratio to go empty once its window holds no samples",
        interval=0.1,
    )
    error_app.set_down(False)

    url = prometheus.url
    prometheus.stop()
    with pytest.raises(ConnectionRefusedError):
        prometheus.query("up")
    with pytest.raises(ConnectionRefusedError):
        prometheus.alerts()

    restarted = time.time()
    prometheus.start()
    assert prometheus.url == url
    assert prometheus.query("up")["status"] == "success"
    # Scraping resumes too, after the same 5 s discovery throttle as a first start.
    fresh = f'up{{job="{JOB}"}} == 1 and timestamp(up{{job="{JOB}"}}) > {restarted:.3f}'
    prometheus.wait_for_series(fresh, timeout=20)


class _AlertSink:
    """Records what Prometheus POSTs to an Alertmanager's /api/v2/alerts."""

    def __init__(self) -> None:
        self.posts: list[list[dict[str, object]]] = []
        self._lock = threading.Lock()
        app = web.Application()
        app.router.add_post("/api/v2/alerts", self._receive)
        self.server = LoopbackServer(app, "alert-sink")

    async def _receive(self, request: web.Request) -> web.Response:
        body = json.loads(await request.read())
        with self._lock:
            self.posts.append(body)
        return web.Response(status=200)

    def alerts(self) -> list[dict[str, object]]:
        with self._lock:
            return [alert for post in self.posts for alert in post]


def test_rule_goes_pending_then_firing_and_reaches_alertmanager(
    error_app: ErrorApp, prometheus_factory: PrometheusFactory
) -> None:
    rules = """
groups:
- name: errors
  rules:
  - alert: HighErrorRate
    expr: |
      sum by (namespace, deployment) (rate(http_requests_total{code=~"5.."}[5s]))
        / sum by (namespace, deployment) (rate(http_requests_total[5s])) > 0.10
    for: 3s
    labels: {severity: page}
    annotations: {summary: "{{ $labels.deployment }} 5xx above 10%"}
"""
    error_app.set("checkout", error_ratio=0.3)
    sink = _AlertSink()
    with sink.server:
        prometheus = prometheus_factory(error_app, rules=rules, alertmanagers=[sink.server.url])
        states: list[str] = []

        def firing() -> bool:
            alerts = prometheus.alerts()
            if alerts:
                assert len(alerts) == 1, alerts
                if not states or states[-1] != alerts[0]["state"]:
                    states.append(alerts[0]["state"])
            return states[-1:] == ["firing"]

        wait_for(firing, timeout=25, what="HighErrorRate firing", interval=0.1)
        assert states == ["pending", "firing"]
        alert = prometheus.alerts()[0]
        assert alert["labels"] == {
            "alertname": "HighErrorRate",
            "deployment": "checkout",
            "namespace": "prod",
            "severity": "page",
        }
        assert alert["annotations"] == {"summary": "checkout 5xx above 10%"}
        assert float(alert["value"]) == pytest.approx(0.3, abs=EXACT)

        sent = wait_for(sink.alerts, timeout=10, what="the alert POSTed to Alertmanager")
    assert sent[0]["labels"] == alert["labels"]
    assert sent[0]["annotations"] == alert["annotations"]
    assert {"startsAt", "endsAt", "generatorURL"} <= set(sent[0])

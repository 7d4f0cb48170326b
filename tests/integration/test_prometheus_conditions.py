"""Conditions judged against a real Prometheus scraping an app whose 5xx ratio the test
controls: sustained -> met; only lately, 2%, no traffic, too little traffic, Prometheus
down -> not met. One Prometheus for all cases: it holds new targets back 5s at start.
Label values reach the real PromQL parser escaped; a stand-in covers hangs, floods, auth."""

from __future__ import annotations

import asyncio
import base64
import json
import random
import time
from datetime import UTC, datetime, timedelta

import yaml
from aiohttp import web
from aiohttp.test_utils import TestServer

from remediator.checks.conditions import CONDITION_DEADLINE, evaluate_conditions
from remediator.checks.prometheus import PrometheusChecker, check_condition
from remediator.config_file import parse_config
from remediator.core.alert import Alert
from remediator.core.job import Met, Stopped
from remediator.core.outcomes import Outcome
from remediator.core.policy import Policy, parse_policies
from remediator.core.promql import compile_query
from remediator.core.render import render_context
from remediator.ingest.alertmanager import parse_alertmanager
from remediator.simulate import simulate
from tests.fixtures.procs import wait_for
from tests.fixtures.prometheus import ErrorApp, PrometheusFactory

WINDOW, STEP = timedelta(seconds=6), timedelta(seconds=1)


def ratio(deployment: str) -> str:
    return (
        f'sum(rate(http_requests_total{{code=~"5..",deployment="{deployment}"}}[3s])) / '
        f'sum(rate(http_requests_total{{deployment="{deployment}"}}[3s]))'
    )


def traffic(deployment: str) -> str:
    return f'sum(rate(http_requests_total{{deployment="{deployment}"}}[3s])) > 1'


async def _simulate_shows_the_condition(url: str) -> None:
    policy = yaml.safe_dump(
        {
            "name": "rollback",
            "match": {"matchers": ['alertname="HighErrorRate"']},
            "condition": {
                "prometheus": {
                    "query": ratio("{{ labels.deployment }}"),
                    "above": 0.1,
                    "for": "6s",
                    "step": "1s",
                }
            },
            "action": {
                "type": "docker.restart",
                "params": {"container": "web-{{ labels.deployment }}"},
                "allow_targets": ["web-*"],
            },
        }
    )
    [rollback], problems = parse_policies(policy, "p.yaml")
    assert not problems, problems
    config = parse_config(
        f"prometheus: {{url: '{url}'}}\nstate: 'sqlite:///:memory:'", "c.yaml", {}
    )
    body = (
        b'{"alerts": ['
        + b",".join(
            b'{"labels": {"alertname": "HighErrorRate", "deployment": "%s"}, "startsAt": "2026-11-22T10:00:00Z"}'
            % d
            for d in (b"sustained", b"low")
        )
        + b"]}"
    )
    report = await simulate(
        config, [rollback], parse_alertmanager(body), datetime.now(UTC), ":memory:"
    )
    guards = [{g["guard"]: g for g in entry["policies"][0]["guards"]} for entry in report]
    sustained, low = (g["condition"] for g in guards)
    assert sustained["ok"] and "all 7 samples over 6s are > 0.1" in sustained["detail"]
    assert 'deployment="sustained"' in sustained["detail"]  # the rendered query is shown
    assert not low["ok"] and "is not > 0.1" in low["detail"]
    assert [entry["policies"][0]["outcome"] for entry in report] == [
        "executed",
        "condition_not_met",
    ]


async def test_conditions_against_real_prometheus(
    error_app: ErrorApp, prometheus_factory: PrometheusFactory
) -> None:
    error_app.set("sustained", rate=20, error_ratio=0.3)
    error_app.set("late", rate=20, error_ratio=0.02)
    error_app.set("low", rate=20, error_ratio=0.02)
    error_app.set("idle", rate=0, error_ratio=0.0)
    error_app.set("trickle", rate=0.5, error_ratio=0.3)  # 1 failure in 3 requests: not an outage
    prom = prometheus_factory(error_app)
    prom.wait_for_series(ratio("sustained"), timeout=30)
    first = time.time()
    # enough history for the whole window, then the "late" deployment goes bad for 3s only
    wait_for(
        lambda: time.time() > first + WINDOW.total_seconds() + 1, timeout=20, what="a full window"
    )
    error_app.set("late", error_ratio=0.3)
    wait_for(
        lambda: time.time() > first + WINDOW.total_seconds() + 5, timeout=20, what="the late blip"
    )
    checker = PrometheusChecker(prom.url, attempts=2, wait=0.1)
    now = datetime.now(UTC)
    try:

        async def check(deployment: str, *, guard: bool = False) -> tuple[bool, str]:
            verdict = await check_condition(
                checker,
                ratio(deployment),
                above=0.10,
                below=None,
                window=WINDOW,
                step=STEP,
                min_rate=traffic(deployment) if guard else None,
                now=now,
            )
            return verdict.ok, verdict.reason

        met, reason = await check("sustained", guard=True)
        assert met, reason
        assert "all 7 samples over 6s are > 0.1" in reason
        met, reason = await check("late")
        assert not met and "is not > 0.1" in reason  # bad only for the last part of the window
        met, reason = await check("low")
        assert not met and "0.02" in reason
        met, reason = await check("idle")
        assert not met and "NaN" in reason  # Prometheus answers NaN for 0/0, never "met"
        met, reason = await check("trickle", guard=True)
        assert not met and "min_rate not reached" in reason
        met, reason = await check("trickle")
        assert met, reason  # the same data without the guard would have rolled back
        await _simulate_shows_the_condition(prom.url)
        prom.stop()
        met, reason = await check("sustained", guard=True)
        assert not met and reason.startswith("prometheus unavailable")
    finally:
        await checker.close()


# --- label values reach Prometheus as data: the real PromQL parser reads them back --------

NASTY = [
    'checkout"} or vector(1) or x{a="',
    "it's",
    "back\\slash\\",
    "both \"and' quotes",
    "new\nline\rcr\ttab\vvt\fff\aa\bb",
    "\x00nul\x1besc\x7fdel",
    "`backtick`",
    "# not a comment",
    "café 漢字 😀 \u00ad\u2028\U000e0001",
    "\ufffd replacement",
    "\ud800 lone surrogate",
    "\\x41 \\u0041 \\n (already escaped-looking)",
]
_ALPHABET = "ab\"'`\\\n\r\t\x00\x7f#{}[](),=~!é漢😀\ufffd\u2028\ud800 "


def as_go_reads_it(value: str) -> str:
    return "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in value)


async def test_escaped_values_round_trip_through_the_real_promql_parser(
    error_app: ErrorApp, prometheus_factory: PrometheusFactory
) -> None:
    prom = prometheus_factory(error_app)
    rng = random.Random(20261122)  # noqa: S311  # reproducible test data, not a secret
    values = NASTY + ["".join(rng.choices(_ALPHABET, k=rng.randint(1, 24))) for _ in range(150)]
    context = render_context({f"v{i}": v for i, v in enumerate(values)}, {}, {}, "p")
    checker = PrometheusChecker(prom.url, attempts=1)
    try:
        for quote in ('"', "'"):
            # absent() answers with the labels of its selector's equality matchers: exactly
            # the strings Prometheus parsed out of the query.
            matchers = ",".join(
                f"v{i}={quote}{{{{ labels.v{i} }}}}{quote}" for i in range(len(values))
            )
            query = compile_query(f"absent(no_such_metric{{{matchers}}})").render(context)
            body = await checker.instant(query)
            assert body["status"] == "success", body
            [series] = body["data"]["result"]
            got = series["metric"]
            for i, value in enumerate(values):
                assert got[f"v{i}"] == as_go_reads_it(value), (quote, value)
    finally:
        await checker.close()


def _policy(query: str, *, window: str = "6s", hook: str = "http://127.0.0.1:9") -> Policy:
    text = yaml.safe_dump(
        {
            "name": "rollback",
            "match": {"matchers": ['alertname="HighErrorRate"']},
            "condition": {
                "prometheus": {"query": query, "above": 0.1, "for": window, "step": "1s"}
            },
            "action": {
                "type": "http.request",
                "params": {"url": f"{hook}/rollback"},
                "allow_targets": [f"{hook}/rollback"],
            },
        }
    )
    [policy], problems = parse_policies(text, "p.yaml")
    assert not problems, problems
    return policy


def _alert(deployment: str) -> list[Alert]:
    body = {
        "alerts": [
            {
                "labels": {"alertname": "HighErrorRate", "deployment": deployment},
                "startsAt": "2026-11-22T10:00:00Z",
            }
        ]
    }
    return parse_alertmanager(json.dumps(body).encode())


# Closes the selector, rate() and sum(), makes the value 1, and comments out the rest: the
# query "error rate above 10%" would hold for a healthy service if the label were spliced.
COMMENT_INJECTION = 'checkout"}[3s])) * 0 + 1 #'


async def test_an_injected_label_cannot_make_a_healthy_service_look_broken(
    error_app: ErrorApp, prometheus_factory: PrometheusFactory
) -> None:
    prom = prometheus_factory(error_app)  # "checkout" serves 20 req/s, no errors
    prom.wait_for_series(ratio("checkout"), timeout=30)
    first = time.time()
    wait_for(lambda: time.time() > first + WINDOW.total_seconds() + 1, timeout=20, what="history")
    checker = PrometheusChecker(prom.url, attempts=2, wait=0.1)
    try:
        # The payload is real: spliced in unescaped, the condition would be met.
        spliced = ratio("{d}").replace("{d}", COMMENT_INJECTION)
        naive = await check_condition(
            checker,
            spliced,
            above=0.1,
            below=None,
            window=WINDOW,
            step=STEP,
            min_rate=None,
            now=datetime.now(UTC),
        )
        assert naive.ok, naive.reason
        policy = _policy(ratio("{{ labels.deployment }}"))
        alerts = _alert(COMMENT_INJECTION)
        results = await evaluate_conditions(
            checker, alerts, [policy], datetime.now(UTC), lambda _p, _e: False
        )
        stopped = results[("rollback", 0)]
        assert isinstance(stopped, Stopped), stopped
        assert stopped.outcome is Outcome.CONDITION_NOT_MET
        assert "no data" in stopped.reason
        # What Prometheus received: the label as one string literal, quote escaped.
        assert 'deployment="checkout\\"}[3s])) * 0 + 1 #"' in stopped.reason
    finally:
        await checker.close()


# --- a stand-in Prometheus for what a real one rarely does: hang, flood, ask for auth -----


class StandIn:
    """Answers /api/v1/query(_range) by the query's text: "hang" never answers, "huge"
    sends 9 MiB, anything else a full window of 0.5; records every request."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, str | None]] = []
        self.release = asyncio.Event()
        app = web.Application()
        app.router.add_post("/prefix/api/v1/query", self._answer)
        app.router.add_post("/prefix/api/v1/query_range", self._answer)
        self.server = TestServer(app)

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        query = str(form["query"])
        self.requests.append((request.path, query, request.headers.get("Authorization")))
        if "hang" in query:
            await self.release.wait()
            return web.json_response({"status": "error", "error": "released"})
        if "huge" in query:
            filler = "x" * (9 * 1024 * 1024)
            return web.Response(text=f'{{"status": "success", "pad": "{filler}"}}')
        start, end = float(str(form["start"])), float(str(form["end"]))
        values = [[start + i, "0.5"] for i in range(int(end - start) + 1)]
        data = {"resultType": "matrix", "result": [{"metric": {}, "values": values}]}
        return web.json_response({"status": "success", "data": data})

    async def __aenter__(self) -> StandIn:
        await self.server.start_server()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.release.set()
        await self.server.close()

    def url(self, userinfo: str = "") -> str:
        return f"http://{userinfo}127.0.0.1:{self.server.port}/prefix/"


async def test_the_condition_stage_has_one_deadline() -> None:
    async with StandIn() as prom:
        checker = PrometheusChecker(prom.url(), timeout=5, attempts=3)
        slow, fast = (
            _policy('hang{d="{{ labels.deployment }}"}', window="2s"),
            _policy('fast{d="{{ labels.deployment }}"}', window="2s"),
        )
        fast = fast.model_copy(update={"name": "fast"})
        started = time.monotonic()
        try:
            results = await evaluate_conditions(
                checker,
                _alert("checkout"),
                [slow, fast],
                datetime.now(UTC),
                lambda _p, _e: False,
                deadline=0.5,
            )
        finally:
            await checker.close()
        assert time.monotonic() - started < 2  # not 3 attempts x 5 s
        hung = results[("rollback", 0)]
        assert isinstance(hung, Stopped) and hung.outcome is Outcome.CONDITION_NOT_MET
        assert hung.reason == (
            "prometheus did not answer within the condition deadline of 0.5s "
            '(query: hang{d="checkout"})'
        )
        assert isinstance(results[("fast", 0)], Met)  # an answered condition keeps its answer
    assert CONDITION_DEADLINE <= 10  # Datadog gives up after 15 s


async def test_a_response_larger_than_the_cap_is_not_met_and_not_retried() -> None:
    async with StandIn() as prom:
        checker = PrometheusChecker(prom.url(), attempts=3, wait=0.01)
        try:
            verdict = await check_condition(
                checker,
                "huge",
                above=0.1,
                below=None,
                window=WINDOW,
                step=STEP,
                min_rate=None,
                now=datetime.now(UTC),
            )
        finally:
            await checker.close()
        assert not verdict.ok
        assert "response larger than 8 MiB" in verdict.reason
        assert len(prom.requests) == 1


async def test_userinfo_becomes_basic_auth_and_is_never_shown() -> None:
    async with StandIn() as prom:
        checker = PrometheusChecker(prom.url("prom%40user:s3cret-pass@"), attempts=1)
        try:
            verdict = await check_condition(
                checker,
                "up",
                above=0.1,
                below=None,
                window=WINDOW,
                step=STEP,
                min_rate=None,
                now=datetime.now(UTC),
            )
            assert verdict.ok, verdict.reason
            [(_path, _query, auth)] = prom.requests
            assert auth == "Basic " + base64.b64encode(b"prom@user:s3cret-pass").decode()
            assert checker.url == f"http://127.0.0.1:{prom.server.port}/prefix"
        finally:
            await checker.close()
        gone = prom.url("prom%40user:s3cret-pass@")
    # Prometheus gone: the reason (shown in /healthz and logs) names the URL without userinfo.
    down = PrometheusChecker(gone, attempts=1)
    try:
        reason = await down.probe()
    finally:
        await down.close()
    assert reason is not None
    assert reason.startswith(gone.replace("prom%40user:s3cret-pass@", "").rstrip("/") + ": ")
    assert "s3cret" not in reason and "prom" not in reason.split("127.0.0.1")[0]

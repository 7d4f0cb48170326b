"""Finding 10 and the property over every endpoint: no input makes the daemon answer 5xx
(a sender would retry a poison body forever), and none makes it act.

The daemon runs as a real subprocess; requests are written byte for byte on a socket, so
headers may hold any byte a client could send."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import time
from collections.abc import Iterator
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import CORPUS
from tests.fixtures.daemon import AM_TOKEN, API_TOKEN, Daemon, DaemonFactory
from tests.fixtures.http_hook import Hook

SIGNING_SECRET = "fuzz-signing-secret-0123"
DD_TOKEN = "dd-fuzz-token-4567"
# Every endpoint guarded, Slack configured but unreachable (posts fail, logged): the daemon
# the fuzzers here and in tests/integration/test_openapi_fuzz.py attack.
FUZZ_AUTH = {
    "alertmanager": {"bearer_token": AM_TOKEN},
    "datadog": {"token": DD_TOKEN},
    "api": {"tokens": {"oncall": API_TOKEN}},
}
FUZZ_SLACK = {
    "bot_token": "xoxb-fuzz",
    "signing_secret": SIGNING_SECRET,
    "channel": "C0FUZZ",
    "api_url": "http://127.0.0.1:9/api/",
}
POLICY = """
name: call-hook
match: {matchers: ['alertname="Down"']}
action:
  type: http.request
  params: {method: POST, url: "http://127.0.0.1:%d/hook", timeout: "{{ labels.timeout }}"}
  allow_targets: ["http://127.0.0.1:%d/hook"]
guards: {approval: {when: "labels.approve == 'yes'"}}
"""


def raw_request(
    daemon: Daemon, method: str, target: str, headers: list[tuple[bytes, bytes]], body: bytes
) -> int:
    """The status code of one request sent as raw bytes (0: the connection was dropped)."""
    lines = [f"{method} {target} HTTP/1.1".encode(), f"Host: 127.0.0.1:{daemon.port}".encode()]
    lines += [name + b": " + value for name, value in headers]
    lines += [f"Content-Length: {len(body)}".encode(), b"Connection: close", b"", b""]
    with socket.create_connection(("127.0.0.1", daemon.port), timeout=10) as sock:
        sock.sendall(b"\r\n".join(lines) + body)
        head = b""
        while b"\r\n" not in head:
            chunk = sock.recv(4096)
            if not chunk:
                return 0
            head += chunk
    return int(head.split(b" ", 2)[1])


def _slack_headers(body: bytes, stamp: int | None = None) -> list[tuple[bytes, bytes]]:
    when = str(int(time.time()) if stamp is None else stamp)
    base = f"v0:{when}:".encode() + body
    mac = hmac.new(SIGNING_SECRET.encode(), base, hashlib.sha256).hexdigest()
    return [
        (b"X-Slack-Request-Timestamp", when.encode()),
        (b"X-Slack-Signature", f"v0={mac}".encode()),
        (b"Content-Type", b"application/x-www-form-urlencoded"),
    ]


@pytest.fixture
def fuzz_target(daemon_factory: DaemonFactory, http_hook: Hook) -> Iterator[Daemon]:
    daemon = daemon_factory(
        POLICY % (http_hook.port, http_hook.port),
        auth=FUZZ_AUTH,
        slack=FUZZ_SLACK,
    )
    daemon.start()
    yield daemon
    assert daemon.events("http.unhandled") == [], "an exception escaped a handler"
    assert daemon.proc is not None and daemon.proc.poll() is None
    assert http_hook.requests == [], "random input made the daemon act"


def _am(alert: dict[str, object]) -> bytes:
    return json.dumps({"alerts": [{"startsAt": "2026-11-22T10:00:00Z", **alert}]}).encode()


AM_JSON = [
    (b"Authorization", f"Bearer {AM_TOKEN}".encode()),
    (b"Content-Type", b"application/json"),
]
API_JSON = [
    (b"Authorization", f"Bearer {API_TOKEN}".encode()),
    (b"Content-Type", b"application/json"),
]


@pytest.mark.parametrize(
    ("path", "headers", "body", "expected"),
    [
        # startsAt before year 1 in UTC: OverflowError in the parser, once a 500
        (
            "/webhook/alertmanager",
            AM_JSON,
            _am({"labels": {"alertname": "Down"}, "startsAt": "0001-01-01T00:00:00+01:00"}),
            400,
        ),
        (
            "/webhook/alertmanager",
            AM_JSON,
            _am({"labels": {"alertname": "Down"}, "startsAt": "9999-12-31T23:59:59-01:00"}),
            400,
        ),
        # a non-UTF-8 Authorization header
        (
            "/webhook/alertmanager",
            [(b"Authorization", b"Bearer \xff\xfe\xc3"), (b"Content-Type", b"application/json")],
            b"{}",
            401,
        ),
        ("/api/v1/pause", [(b"Authorization", b"Bearer \xe9t\xe9")], b"", 401),
        (
            "/webhook/datadog",
            [(b"X-Remediator-Token", b"\xff" * 8), (b"Content-Type", b"application/json")],
            b"{}",
            401,
        ),
        ("/api/v1/decisions?limit=%C2%B2", [], b"", 400),  # "²" passes str.isdigit()
        ("/api/v1/decisions?limit=99999999999999999999999", [], b"", 400),
        # a Datadog date that is huge, or digits of another script
        (
            "/webhook/datadog",
            [(b"X-Remediator-Token", DD_TOKEN.encode()), (b"Content-Type", b"application/json")],
            json.dumps({"title": "[Triggered] Down", "alert_id": "1", "date": "9" * 40}).encode(),
            (200, 400),
        ),
        (
            "/webhook/datadog",
            [(b"X-Remediator-Token", DD_TOKEN.encode()), (b"Content-Type", b"application/json")],
            json.dumps({"title": "[Triggered] Down", "alert_id": "1", "date": "²"}).encode(),
            (200, 400),
        ),
        # deeply nested JSON
        ("/webhook/alertmanager", AM_JSON, b"[" * 100_000 + b"]" * 100_000, 400),
        ("/api/v1/approvals/x/approve", API_JSON, b"[" * 100_000, 400),
    ],
)
def test_poison_inputs_are_4xx(
    fuzz_target: Daemon,
    path: str,
    headers: list[tuple[bytes, bytes]],
    body: bytes,
    expected: int | tuple[int, ...],
) -> None:
    status = raw_request(
        fuzz_target, "POST" if body or "pause" in path else "GET", path, headers, body
    )
    assert status in (expected if isinstance(expected, tuple) else (expected,))


def test_an_overflowing_templated_duration_is_a_render_error(fuzz_target: Daemon) -> None:
    body = _am({"labels": {"alertname": "Down", "timeout": "99999999999999999999w"}})
    assert raw_request(fuzz_target, "POST", "/webhook/alertmanager", AM_JSON, body) == 200
    [decision] = fuzz_target.decisions()
    assert decision["outcome"] == "render_error"


PATHS = [
    "/webhook/alertmanager",
    "/webhook/datadog",
    "/slack/interactions",
    "/api/v1/decisions",
    "/api/v1/decisions/{x}",
    "/api/v1/decisions/1",
    "/api/v1/operator-events",
    "/api/v1/approvals",
    "/api/v1/approvals/{x}",
    "/api/v1/approvals/{x}/approve",
    "/api/v1/approvals/{x}/deny",
    "/api/v1/pause",
    "/api/v1/resume",
    "/api/v1/policies/{x}/reset",
    "/api/v1/policies/call-hook/reset",
    "/api/v1/openapi.json",
    "/-/reload",
    "/metrics",
    "/healthz",
    "/readyz",
    "/{x}",
]
corpus_bodies = [p.read_bytes() for p in sorted(CORPUS.rglob("*.json"))]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=20,
)
header_value = st.one_of(
    st.binary(max_size=64).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"")),
    st.sampled_from(
        [
            f"Bearer {AM_TOKEN}",
            f"Bearer {API_TOKEN}",
            DD_TOKEN,
            "application/json",
            "text/plain",
            "null",
            "Basic Zm9vOmJhcg==",
            "Bearer ",
        ]
    ).map(str.encode),
)
header_name = st.sampled_from(
    [
        b"Authorization",
        b"Content-Type",
        b"Origin",
        b"X-Remediator-Token",
        b"X-Slack-Signature",
        b"X-Slack-Request-Timestamp",
        b"Accept",
        b"Transfer-Encoding-X",
    ]
)
bodies = st.one_of(
    st.binary(max_size=512),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.sampled_from(corpus_bodies),
    st.tuples(st.sampled_from(corpus_bodies), st.integers(0, 2000), st.binary(max_size=8)).map(
        lambda t: t[0][: t[1]] + t[2] + t[0][t[1] + len(t[2]) :]
    ),
)


@st.composite
def requests(draw: st.DrawFn) -> tuple[str, str, list[tuple[bytes, bytes]], bytes]:
    path = draw(st.sampled_from(PATHS)).replace(
        "{x}", quote(draw(st.text(min_size=1, max_size=20)), safe="")
    )
    query = draw(st.lists(st.tuples(st.text(max_size=10), st.text(max_size=10)), max_size=3))
    if query:
        path += "?" + "&".join(f"{quote(k)}={quote(v)}" for k, v in query)
    method = draw(st.sampled_from(["GET", "POST", "POST", "PUT", "DELETE"]))
    headers = draw(st.lists(st.tuples(header_name, header_value), max_size=4))
    body = draw(bodies) if method != "GET" else b""
    if path.startswith("/slack/") and draw(st.booleans()):
        form = draw(
            st.one_of(
                json_values.map(lambda v: "payload=" + quote(json.dumps(v))),
                st.text(max_size=80),
            )
        ).encode()
        return method, path, _slack_headers(form), form  # validly signed: past the signature
    return method, path, headers, body


@settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(request=requests())
def test_no_input_gets_a_5xx_or_acts(
    fuzz_target: Daemon, request: tuple[str, str, list[tuple[bytes, bytes]], bytes]
) -> None:
    method, path, headers, body = request
    status = raw_request(fuzz_target, method, path, headers, body)
    assert 100 <= status < 500, (status, request)

"""The API driven from its own OpenAPI document (hypothesis): requests built from each
operation's parameters and bodies, with right, wrong and missing credentials, against the daemon
as a subprocess; no answer is a 5xx and every answer is valid against the document."""

from __future__ import annotations

import http.client
import json
import re
from collections.abc import Iterator
from datetime import UTC
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openapi_core import Config, OpenAPI
from openapi_core.testing import MockRequest, MockResponse

from remediator.web.api_paths import SEGMENT
from tests.conftest import CORPUS
from tests.fixtures.daemon import AM_TOKEN, API_TOKEN, Daemon, DaemonFactory
from tests.security.test_no_server_errors import DD_TOKEN, FUZZ_AUTH, FUZZ_SLACK

POLICY = """
name: restart-web
match: {matchers: ['alertname=~".+"']}
action: {type: docker.restart, params: {container: "{{ labels.instance }}"}, allow_targets: ["*"]}
guards: {dry_run: true, approval: {when: "labels.severity == 'critical'"}}
"""
Call = tuple[str, str, dict[str, str], dict[str, str], bytes]


@pytest.fixture
def target(daemon_factory: DaemonFactory) -> Iterator[tuple[Daemon, OpenAPI]]:
    daemon = daemon_factory(
        POLICY,
        auth=FUZZ_AUTH,
        slack=FUZZ_SLACK,
    )
    daemon.start()
    status, document = daemon.request("GET", "/api/v1/openapi.json")
    assert status == 200
    # Validated as OpenAPI 3.1 in test_openapi.py; not again here.
    yield daemon, OpenAPI.from_dict(document, config=Config(spec_validator_cls=None))
    assert daemon.events("http.unhandled") == [], "an exception escaped a handler"


def _value(schema: dict[str, Any]) -> st.SearchStrategy[str]:
    """A parameter's value: usually of its schema, sometimes anything (the 400s)."""
    if "enum" in schema:
        fitting: st.SearchStrategy[str] = st.sampled_from([str(v) for v in schema["enum"]])
    elif schema.get("type") == "integer":
        fitting = st.integers(-2, 2**64).map(str)
    elif schema.get("format") == "date-time":
        fitting = st.datetimes(timezones=st.just(UTC)).map(lambda t: t.isoformat())
    else:
        fitting = st.sampled_from(["restart-web", "api:oncall", "web-1"])
    return st.one_of(fitting, fitting, st.text(max_size=12))


def _segment(value: str) -> bool:
    """A path parameter the router can match (api_paths.SEGMENT): other values name no route."""
    return re.search(SEGMENT["pattern"], value) is not None


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
_CORPUS = [p.read_bytes() for p in sorted(CORPUS.rglob("*.json"))]
_CREDENTIALS = st.sampled_from(
    [
        {},
        {"Authorization": f"Bearer {AM_TOKEN}"},
        {"Authorization": f"Bearer {API_TOKEN}"},
        {"Authorization": "Bearer wrong"},
        {"X-Remediator-Token": DD_TOKEN},
    ]
)


@st.composite
def calls(draw: st.DrawFn, document: dict[str, Any]) -> Call:
    ops = [
        (path, method, op) for path, ops in document["paths"].items() for method, op in ops.items()
    ]
    path, method, op = draw(st.sampled_from(ops))
    query: dict[str, str] = {}
    url = path
    for param in op.get("parameters", []):
        if param["in"] == "path":
            value = draw(_value(param["schema"]).filter(_segment))
            url = url.replace("{" + param["name"] + "}", quote(value, safe=""))
            continue
        value = draw(_value(param["schema"]))
        if draw(st.booleans()):
            query[param["name"]] = value
    headers = dict(draw(_CREDENTIALS))
    body = b""
    if "requestBody" in op and draw(st.booleans()):
        body = draw(
            st.one_of(st.sampled_from(_CORPUS), _JSON.map(lambda v: json.dumps(v).encode()))
        )
        headers["Content-Type"] = draw(st.sampled_from(["application/json", "text/plain"]))
    return method, url, query, headers, body


def _send(
    daemon: Daemon, method: str, url: str, headers: dict[str, str], body: bytes
) -> tuple[int, str, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", daemon.port, timeout=10)
    try:
        conn.request(method.upper(), url, body=body or None, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.getheader("Content-Type", ""), resp.read()
    finally:
        conn.close()


def test_answers_to_requests_built_from_the_document_are_documented(
    target: tuple[Daemon, OpenAPI],
) -> None:
    daemon, spec = target
    document = spec.spec.read_value()

    @settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(call=calls(document))
    def answered_as_documented(call: Call) -> None:
        method, path, query, headers, body = call
        url = path + ("?" + urlencode(query) if query else "")
        status, content_type, raw = _send(daemon, method, url, headers, body)
        assert status < 500, (status, call, raw[:300])
        spec.validate_response(
            MockRequest(daemon.url, method, path, args=query),
            MockResponse(raw, status, {"Content-Type": content_type}, content_type.split(";")[0]),
        )

    answered_as_documented()

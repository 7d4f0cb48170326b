"""GET /api/v1/openapi.json against the running daemon: the served document is valid OpenAPI 3.1,
its operations are exactly the aiohttp router's (both ways), and every real answer of every
operation, successes and errors alike, is valid against it (openapi-core), until every status
it documents has been seen."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from openapi_core import Config, OpenAPI
from openapi_core.testing import MockRequest, MockResponse
from openapi_spec_validator import OpenAPIV31SpecValidator

from remediator.web.keys import STATE
from tests.fixtures.datadog import notification
from tests.fixtures.slack_api import SlackAPI, interaction_request
from tests.integration.conftest import (
    AM_TOKEN,
    API,
    API_TOKEN,
    AUTH,
    PEOPLE,
    Harness,
    HarnessFactory,
)
from tests.integration.test_guards_pipeline import alert, message, policy

DD = {"X-Remediator-Token": "dd-token-0123456789"}
SECRET = "slack-signing-secret-0123456789"
MAX_BODY = 4096
POLICY = policy(guards="approval: always, approvers: ['api:alice', 'api:bob'], dry_run: true")


def _config(slack: SlackAPI | None, *, read: bool = False) -> str:
    tokens = ", ".join(f"{name}: {token}" for name, token in PEOPLE.items())
    text = f"""
max_body_bytes: {MAX_BODY}
auth:
  alertmanager: {{bearer_token: {AM_TOKEN}}}
  datadog: {{token: {DD["X-Remediator-Token"]}}}
  api: {{tokens: {{api: {API_TOKEN}, {tokens}}}, read: {str(read).lower()}}}
"""
    if slack is not None:
        text += f"""slack:
  bot_token: {slack.token}
  signing_secret: {SECRET}
  channel: C0123456
  api_url: {slack.url}/api/
"""
    return text


def _signed(body: bytes) -> dict[str, str]:
    """Slack's v0 headers for any body: a body that verifies but says nothing Slack would."""
    stamp = str(int(time.time()))
    mac = hmac.new(SECRET.encode(), b"v0:" + stamp.encode() + b":" + body, hashlib.sha256)
    return {
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": "v0=" + mac.hexdigest(),
        "Content-Type": "application/x-www-form-urlencoded",
    }


class Checked:
    """Calls the daemon and validates each answer (status, content type, body) against the
    document it serves; remembers which (path, method, status) it has seen."""

    def __init__(self, h: Harness, document: dict[str, Any]) -> None:
        self.h, self.document = h, document
        # Validated once in its own test: a second validation here would cost a second.
        unchecked = Config(spec_validator_cls=None)  # None: not validated again
        self.spec = OpenAPI.from_dict(document, config=unchecked)
        self.seen: set[tuple[str, str, int]] = set()
        self._templates = [
            (re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", path) + "$"), path)
            for path in document["paths"]
        ]

    def operations(self) -> list[tuple[str, str]]:
        return [(path, method) for path, ops in self.document["paths"].items() for method in ops]

    def documented(self) -> set[tuple[str, str, int]]:
        return {
            (path, method, int(status))
            for path, ops in self.document["paths"].items()
            for method, op in ops.items()
            for status in op["responses"]
        }

    async def call(
        self,
        method: str,
        url: str,
        expect: int,
        *,
        headers: dict[str, str] | None = None,
        body: Any = None,
        data: bytes | None = None,
    ) -> Any:
        resp = await self.h.client.request(method, url, headers=headers, json=body, data=data)
        raw = await resp.read()
        assert resp.status == expect, (method, url, resp.status, raw[:300])
        path, query = urlsplit(url).path, urlsplit(url).query
        self.spec.validate_response(
            MockRequest("http://127.0.0.1", method, path, args=dict(parse_qsl(query))),
            MockResponse(raw, resp.status, dict(resp.headers), resp.content_type),
        )
        template = next(t for pattern, t in self._templates if pattern.match(path))
        self.seen.add((template, method, resp.status))
        return json.loads(raw) if resp.content_type == "application/json" else raw


def _concrete(path: str) -> str:
    return path.replace("{id}", "1").replace("{name}", "restart-web")


async def _document(h: Harness, headers: dict[str, str] | None = None) -> dict[str, Any]:
    resp = await h.client.get("/api/v1/openapi.json", headers=headers)
    assert resp.status == 200 and resp.content_type == "application/json"
    found: dict[str, Any] = await resp.json()
    return found


async def _served(h: Harness, headers: dict[str, str] | None = None) -> Checked:
    return Checked(h, await _document(h, headers))


async def test_the_served_document_is_valid_openapi_31(
    harness: HarnessFactory, slack_api: SlackAPI
) -> None:
    document = await _document(await harness(POLICY, _config(slack_api)))
    OpenAPIV31SpecValidator(document).validate()
    assert document["openapi"] == "3.1.0"


async def test_the_router_serves_exactly_the_documented_operations(
    harness: HarnessFactory, slack_api: SlackAPI
) -> None:
    h = await harness(POLICY, _config(slack_api))
    document = await _document(h)
    served = {
        (route.resource.canonical, route.method.lower())
        for route in h.client.app.router.routes()
        if route.resource is not None and route.method != "HEAD"  # aiohttp's HEAD of each GET
    }
    documented = {(path, method) for path, ops in document["paths"].items() for method in ops}
    assert served - documented == set(), "served but not described"
    assert documented - served == set(), "described but not served"


async def _generic_refusals(c: Checked) -> None:
    """Every operation refuses a foreign Origin; every secured one a missing credential; every
    JSON-only POST a body of another type."""
    for path, method in c.operations():
        url, responses = _concrete(path), c.document["paths"][path][method]["responses"]
        await c.call(method, url, 403, headers={"Origin": "http://evil.example"})
        if "401" in responses and path != "/slack/interactions":
            await c.call(method, url, 401, headers={})
        if "415" in responses:
            await c.call(method, url, 415, headers={}, data=b"x=1")  # before any auth


async def _webhooks(c: Checked) -> str:
    """Both webhooks' answers; returns the id of an approval left pending."""
    big = b'{"alerts": [], "pad": "' + b"x" * MAX_BODY + b'"}'
    for url, creds in (("/webhook/alertmanager", AUTH), ("/webhook/datadog", DD)):
        await c.call("post", url, 400, headers=creds, body={"alerts": [{"labels": {}}]})
        await c.call(
            "post", url, 413, headers=creds | {"Content-Type": "application/json"}, data=big
        )
    await c.call(
        "post",
        "/webhook/datadog",
        200,
        headers=DD | {"Content-Type": "application/json"},
        data=notification("Triggered"),
    )
    answer = await c.call(
        "post",
        "/webhook/alertmanager",
        200,
        headers=AUTH,
        body=message(alert("web-1"), alert("web-2")),
    )
    assert [d["outcome"] for d in answer["decisions"]] == ["awaiting_approval"] * 2
    first, second = (d["approval_id"] for d in answer["decisions"])
    await c.call(
        "post",
        f"/api/v1/approvals/{first}/approve",
        200,
        headers={"Authorization": f"Bearer {PEOPLE['alice']}"},
        body={"by": "note"},
    )
    return str(second)


async def _reads(c: Checked, pending: str) -> None:
    await c.h.daemon.intake.flush_repeats()
    page = await c.call("get", "/api/v1/decisions?limit=10&policy=restart-web", 200)
    decided = next(d["id"] for d in page["decisions"] if d["approval_id"] != pending)
    await c.call("get", "/api/v1/decisions?colour=red", 400)
    await c.call("get", f"/api/v1/decisions/{decided}", 200)
    await c.call("get", "/api/v1/decisions/abc", 400)
    await c.call("get", "/api/v1/decisions/99999", 404)
    await c.call("get", "/api/v1/operator-events?act=approve", 200)
    await c.call("get", "/api/v1/operator-events?act=dance", 400)
    await c.call("get", "/api/v1/approvals", 200)
    await c.call("get", f"/api/v1/approvals/{pending}", 200)
    await c.call("get", "/api/v1/approvals/nope", 404)
    for page in ("/metrics", "/healthz", "/readyz", "/api/v1/openapi.json"):
        await c.call("get", page, 200)


async def _writes(c: Checked, pending: str) -> None:
    bob, mallory = ({"Authorization": f"Bearer {PEOPLE[p]}"} for p in ("bob", "mallory"))
    big = b'{"by": "' + b"x" * MAX_BODY + b'"}'
    for act in ("approve", "deny"):
        url = f"/api/v1/approvals/{pending}/{act}"
        await c.call(
            "post", url, 400, headers=bob | {"Content-Type": "application/json"}, data=b"{"
        )
        await c.call("post", url, 403, headers=mallory)
        await c.call("post", url, 413, headers=bob | {"Content-Type": "application/json"}, data=big)
        await c.call("post", f"/api/v1/approvals/nope/{act}", 404, headers=bob)
    await c.call("post", f"/api/v1/approvals/{pending}/deny", 200, headers=bob)
    for act in ("approve", "deny"):
        await c.call("post", f"/api/v1/approvals/{pending}/{act}", 409, headers=bob)
    await c.call("post", "/api/v1/pause", 200, headers=API)
    await c.call("post", "/api/v1/resume", 200, headers=API)
    reset = "/api/v1/policies/restart-web/reset"
    cleared = await c.call("post", reset, 200, headers=API, body={"limits": True})
    assert cleared["cleared"] == ["cooldown", "rate_limit"]
    await c.call("post", reset, 400, headers=API, body={"limits": "yes"})
    await c.call("post", reset, 413, headers=API | {"Content-Type": "application/json"}, data=big)
    await c.call("post", "/api/v1/policies/nope/reset", 404, headers=API)
    await c.call("post", "/-/reload", 200, headers=API)
    await c.call(
        "post", "/-/reload", 413, headers=API | {"Content-Type": "application/json"}, data=big
    )
    policies = c.h.folder / "policies" / "p.yaml"
    kept = policies.read_text()
    policies.write_text("name: Not A Name\n")
    refused = await c.call("post", "/-/reload", 400, headers=API)
    assert refused["problems"]
    policies.write_text(kept)


async def _slack(c: Checked) -> None:
    form, headers = interaction_request(
        SECRET,
        user_id="U111",
        action_id="approve",
        value="nope",
        channel="C0123456",
        message_ts="1.2",
    )
    await c.call("post", "/slack/interactions", 200, headers=headers, data=form)
    await c.call("post", "/slack/interactions", 401, headers=_signed(b"x"), data=form)
    garbage = urlencode({"payload": "[]"}).encode()
    await c.call("post", "/slack/interactions", 400, headers=_signed(garbage), data=garbage)
    big = b"payload=" + b"x" * MAX_BODY
    await c.call("post", "/slack/interactions", 413, headers=_signed(big), data=big)


async def _unavailable(c: Checked, pending: str) -> None:
    """Shutting down, then the store gone: the 503s."""
    c.h.client.app[STATE]["draining"] = True
    for url, creds in (("/webhook/alertmanager", AUTH), ("/webhook/datadog", DD)):
        await c.call("post", url, 503, headers=creds, body=message(alert("web-3")))
    await c.call("get", "/readyz", 503)
    await c.call("post", "/-/reload", 503, headers=API)
    c.h.client.app[STATE]["draining"] = False
    await c.h.daemon.store.close()  # as unreachable as a stopped PostgreSQL
    for url in (
        "/api/v1/decisions",
        "/api/v1/decisions/1",
        "/api/v1/operator-events",
        "/api/v1/approvals",
        f"/api/v1/approvals/{pending}",
        "/readyz",
    ):
        await c.call("get", url, 503)
    for url in (
        f"/api/v1/approvals/{pending}/approve",
        f"/api/v1/approvals/{pending}/deny",
        "/api/v1/pause",
        "/api/v1/resume",
        "/api/v1/policies/restart-web/reset",
    ):
        await c.call("post", url, 503, headers=API)


async def test_every_answer_of_every_operation_matches_the_document(
    harness: HarnessFactory, slack_api: SlackAPI
) -> None:
    c = await _served(await harness(POLICY, _config(slack_api)))
    await _generic_refusals(c)
    pending = await _webhooks(c)
    await _reads(c, pending)
    await _slack(c)
    await _writes(c, pending)
    await _unavailable(c, pending)
    # A daemon with auth.api.read and without Slack: the reads' 401 and Slack's 404.
    closed = await harness(POLICY, _config(None, read=True))
    other = await _served(closed, API)
    await _generic_refusals(other)
    await other.call(
        "post",
        "/slack/interactions",
        404,
        data=b"payload=x",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    unseen = (c.documented() | other.documented()) - c.seen - other.seen
    assert unseen == set(), "documented answers no test produced"

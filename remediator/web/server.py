"""aiohttp routes: webhooks, the /api/v1 audit and control API, metrics and health.

Handlers translate HTTP to calls on the daemon's parts they are handed (intake, switches,
approvals, Slack clicks, health, the store for audit reads) and errors to status codes;
no decisions here.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from remediator import log
from remediator.addresses import is_loopback, parse_listen
from remediator.approvals import Approvals
from remediator.config import Config
from remediator.conversation import Clicks
from remediator.core.alert import Alert
from remediator.core.approval import ApprovalRefused
from remediator.errors import IngestError, StoreError
from remediator.health import Health
from remediator.ingest.alertmanager import parse_alertmanager
from remediator.ingest.datadog import parse_datadog
from remediator.intake import Intake
from remediator.metrics import Metrics
from remediator.reload import Reloader, ReloadRefusedError
from remediator.slack import APPROVE, DENY
from remediator.store.base import Store
from remediator.switches import Switches
from remediator.web import audit as audit_api
from remediator.web import auth
from remediator.web.audit import AUDIT, approval_json
from remediator.web.browser import browser_guard, no_server_errors
from remediator.web.openapi import document

_log = log.get("remediator.web")
INTAKE = web.AppKey("intake", Intake)
SWITCHES = web.AppKey("switches", Switches)
APPROVALS = web.AppKey("approvals", Approvals)
CLICKS = web.AppKey("clicks", Clicks)
METRICS = web.AppKey("metrics", Metrics)
HEALTH = web.AppKey("health", Health)
CONFIG = web.AppKey("config", Config)
STATE = web.AppKey("state", dict[str, bool])
RELOADER = web.AppKey("reloader", Reloader)
OPENAPI = web.AppKey("openapi", bytes)


def _error(status: int, reason: str) -> web.Response:
    return web.json_response({"error": reason}, status=status)


def _too_large(request: web.Request) -> str:
    return f"body larger than max_body_bytes ({request.app[CONFIG].max_body_bytes})"


def _webhook(
    endpoint: str,
    authorized: Callable[[web.Request, Config], bool],
    parse: Callable[[bytes], list[Alert]],
) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def admit(request: web.Request, config: Config) -> bytes:
        """The body of a request we will decide on; IngestError says why not, in order."""
        if request.app[STATE]["draining"]:
            raise IngestError(503, "shutting down: not taking webhooks; retry another replica")
        if not authorized(request, config):
            raise IngestError(401, "missing or wrong credentials")
        too_large = IngestError(413, _too_large(request))
        if (request.content_length or 0) > config.max_body_bytes:
            raise too_large
        try:
            return await request.read()  # client_max_size bounds chunked bodies too
        except web.HTTPRequestEntityTooLarge:
            raise too_large from None

    async def handle(request: web.Request) -> web.Response:
        config, metrics = request.app[CONFIG], request.app[METRICS]
        started = time.perf_counter()
        try:
            alerts = parse(await admit(request, config))
            decided = await request.app[INTAKE].ingest(alerts)
        except IngestError as exc:
            metrics.webhook_rejected.labels(endpoint, str(exc.status)).inc()
            _log.warning(
                "webhook.rejected",
                endpoint=endpoint,
                status=exc.status,
                reason=exc.reason,
                remote=request.remote,
            )
            return _error(exc.status, exc.reason)
        except StoreError as exc:
            metrics.webhook_rejected.labels(endpoint, "503").inc()
            _log.error("webhook.store_unavailable", endpoint=endpoint, error=str(exc))
            return _error(503, "state store unavailable; nothing was decided, please retry")
        finally:
            metrics.webhook_timer(endpoint).observe(time.perf_counter() - started)
        return web.json_response(
            {"alerts": len(alerts), "decisions": [v.to_api() for v in decided.verdicts]}
        )

    return handle


def _am_auth(request: web.Request, config: Config) -> bool:
    return auth.alertmanager_ok(request.headers.get("Authorization"), config.auth.alertmanager)


def _dd_auth(request: web.Request, config: Config) -> bool:
    dd = config.auth.datadog
    return auth.datadog_ok(request.headers.get(dd.header) if dd else None, dd)


IDENTITY = web.RequestKey("identity", str)  # the caller of an API write: api:NAME


def _api_write(
    handler: Callable[[web.Request], Awaitable[web.Response]],
) -> Callable[[web.Request], Awaitable[web.Response]]:
    """Needs `auth.api`: the caller's identity (`api:NAME`) is what the handler acts as."""
    unguarded = _api_read(handler, authenticate=False)

    async def guarded(request: web.Request) -> web.Response:
        who = auth.api_identity(request.headers.get("Authorization"), request.app[CONFIG].auth.api)
        if who is None:
            _log.warning("api.unauthorized", path=request.path, remote=request.remote)
            return _error(401, "missing or wrong API bearer token")
        request[IDENTITY] = who
        return await unguarded(request)

    return guarded


def _api_read(
    handler: Callable[[web.Request], Awaitable[web.Response]], *, authenticate: bool = True
) -> Callable[[web.Request], Awaitable[web.Response]]:
    """Reads answer 503 too when the store is down: a retryable state, not a server bug.
    With `auth.api.read: true` they need a token like writes."""

    async def guarded(request: web.Request) -> web.Response:
        api = request.app[CONFIG].auth.api
        needs_token = authenticate and api is not None and api.read
        if needs_token and auth.api_identity(request.headers.get("Authorization"), api) is None:
            return _error(401, "missing or wrong API bearer token (auth.api.read is on)")
        try:
            return await handler(request)
        except StoreError as exc:
            _log.error("api.store_unavailable", path=request.path, error=str(exc))
            return _error(503, "state store unavailable")
        except web.HTTPRequestEntityTooLarge:  # a JSON error like every other answer here
            return _error(413, _too_large(request))

    return guarded


async def approvals_list(request: web.Request) -> web.Response:
    pending = await request.app[AUDIT].approvals(pending_only=True)
    return web.json_response({"approvals": [approval_json(a) for a in pending]})


async def _approval(request: web.Request, *, approve: bool) -> web.Response:
    """The approver is the token's identity; `{"by": ...}` in the body is only a note."""
    note = ""
    if request.can_read_body:
        try:
            body: Any = await request.json()
        except (ValueError, RecursionError):  # RecursionError: JSON nested too deep
            return _error(400, 'body must be JSON such as {"by": "alice"}, or empty')
        raw = body.get("by") if isinstance(body, dict) else None
        note = raw.strip()[:200] if isinstance(raw, str) else ""
    who = request[IDENTITY]
    try:
        result = await request.app[APPROVALS].decide_approval(
            request.match_info["id"], who, approve=approve, note=note
        )
    except ApprovalRefused as exc:
        return _error(409 if exc.conflict else 403, exc.reason)
    if result is None:
        return _error(404, "no such approval")
    return web.json_response(
        {
            "id": result.id,
            "state": result.state.value,
            "approved_by": list(result.approved_by),
            "by": who,
        }
    )


async def approve(request: web.Request) -> web.Response:
    return await _approval(request, approve=True)


async def deny(request: web.Request) -> web.Response:
    return await _approval(request, approve=False)


async def slack_interactions(request: web.Request) -> web.Response:
    """Slack's button clicks: verified on the raw body, answered at once, handled after."""
    clicks, metrics = request.app[CLICKS], request.app[METRICS]
    if clicks.slack is None:
        return _error(404, "Slack is not configured (slack.bot_token, signing_secret, channel)")
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        return _error(413, _too_large(request))
    if not clicks.slack.verify(body, request.headers):
        metrics.webhook_rejected.labels("slack", "401").inc()
        _log.warning("slack.bad_signature", remote=request.remote)
        return _error(401, "invalid Slack signature or timestamp")
    try:
        payload = json.loads(parse_qs(body.decode())["payload"][0])
        user = str(payload["user"]["id"])
        [action] = payload["actions"]
        action_id, approval_id = str(action["action_id"]), str(action["value"])
        channel = str(
            (payload.get("channel") or {}).get("id") or payload["container"]["channel_id"]
        )
    except (KeyError, IndexError, ValueError, TypeError, RecursionError) as exc:
        return _error(400, f"not a block_actions payload: {type(exc).__name__}")
    expected_team = request.app[CONFIG].slack.team_id
    team = payload.get("team")
    team_id = team.get("id") if isinstance(team, dict) else None
    if expected_team is not None and team_id != expected_team:
        # Signed by Slack, so the click is real, but from another workspace sharing this app
        # (or a Slack Connect channel): it changes nothing. Slack still gets its 200, as for any
        # refused click; a 403 would only show the clicker a generic error.
        metrics.webhook_rejected.labels("slack", "403").inc()
        _log.warning("slack.foreign_team", team_id=str(team_id), user=user, remote=request.remote)
        return web.Response(status=200)
    if payload.get("type") != "block_actions" or action_id not in (APPROVE, DENY):
        return web.Response(status=200)  # other interactions are not ours; acknowledge them
    _log.info("slack.click", user=user, action=action_id, approval_id=approval_id)
    clicks.clicked(approval_id, user, approve=action_id == APPROVE, channel=channel)
    return web.Response(status=200)


async def approval_detail(request: web.Request) -> web.Response:
    store = request.app[AUDIT]
    found = await store.approval(request.match_info["id"])
    if found is None:
        return _error(404, "no such approval")
    events = await store.approval_events(found.id)
    return web.json_response({**approval_json(found), "events": events})


async def pause(request: web.Request) -> web.Response:
    await request.app[SWITCHES].set_paused(True, by=request[IDENTITY])
    return web.json_response({"paused": True, "by": request[IDENTITY]})


async def _redecided(request: web.Request, policy: str | None) -> dict[str, object]:
    """The held episodes the switch just released, decided again at once. The switch itself
    is committed either way: if the store fails here, their next repeat decides them."""
    try:
        verdicts = await request.app[INTAKE].redecide(policy)
    except StoreError as exc:
        _log.error("episodes.redecide_failed", policy=policy, error=str(exc))
        return {
            "redecided": [],
            "redecide_error": "state store unavailable; held episodes are decided at their "
            "next repeat",
        }
    return {"redecided": [v.to_api() for v in verdicts]}


async def resume(request: web.Request) -> web.Response:
    await request.app[SWITCHES].set_paused(False, by=request[IDENTITY])
    answer = {"paused": False, "by": request[IDENTITY]}
    return web.json_response({**answer, **await _redecided(request, None)})


async def reset(request: web.Request) -> web.Response:
    """Body (optional): `{"limits": true}` also clears the policy's cooldowns and rate window;
    `{"by": "..."}` is a note, as for approvals (the caller is the token's identity)."""
    limits, note = False, ""
    if request.can_read_body:
        try:
            body: Any = await request.json()
        except (ValueError, RecursionError):  # RecursionError: JSON nested too deep
            return _error(400, 'body must be JSON such as {"limits": true}, or empty')
        if not isinstance(body, dict):
            return _error(400, 'body must be a JSON object such as {"limits": true}')
        unknown = sorted(set(body) - {"limits", "by"})
        if unknown:
            named = ", ".join(repr(key[:40]) for key in unknown[:5])
            return _error(400, f"unknown field(s) {named}; allowed: limits, by")
        if not isinstance(body.get("limits", False), bool):
            return _error(400, "limits must be true or false")
        limits = body.get("limits", False)
        note = body["by"][:200] if isinstance(body.get("by"), str) else ""
    name, who = request.match_info["name"], request[IDENTITY]
    cleared = await request.app[SWITCHES].reset(name, limits=limits, by=who, detail=note)
    if cleared is None:
        return _error(404, "no such policy")
    answer = {"policy": name, "tripped": False, "cleared": cleared, "by": who}
    return web.json_response({**answer, **await _redecided(request, name)})


async def reload(request: web.Request) -> web.Response:
    """Re-read the config and policies: 200 applied (with the keys that need a restart), 400
    with every problem (the running set stays). The body, if any, is not used."""
    if request.can_read_body:
        try:
            await request.json()
        except (ValueError, RecursionError):
            return _error(400, "body must be JSON, or empty")
    if request.app[STATE]["draining"]:
        return _error(503, "shutting down: not reloading")
    try:
        result = await request.app[RELOADER].reload(request[IDENTITY])
    except ReloadRefusedError as exc:
        body = {"error": "reload refused; the running config stays", "problems": exc.problems}
        return web.json_response(body, status=exc.status)
    return web.json_response(result.to_api())


async def openapi_page(request: web.Request) -> web.Response:
    return web.Response(body=request.app[OPENAPI], content_type="application/json")


async def metrics_page(request: web.Request) -> web.Response:
    body = request.app[METRICS].exposition()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def healthz(request: web.Request) -> web.Response:
    health, gates = request.app[HEALTH], request.app[SWITCHES].gates
    backends = {
        name: ("ok" if reason is None else reason) for name, reason in health.backends.items()
    }
    return web.json_response(
        {
            "status": "ok",
            "paused": gates.paused,
            "tripped": sorted(gates.tripped),
            "running_actions": health.running_actions,
            "backends": backends,
        }
    )


async def readyz(request: web.Request) -> web.Response:
    if request.app[STATE]["draining"]:
        return _error(503, "shutting down")
    try:
        await request.app[AUDIT].ping()
    except StoreError as exc:
        return _error(503, str(exc))
    return web.json_response({"status": "ready", "policies": len(request.app[INTAKE].policies)})


def build_app(
    config: Config,
    *,
    intake: Intake,
    switches: Switches,
    approvals: Approvals,
    clicks: Clicks,
    audit: Store,
    metrics: Metrics,
    health: Health,
    clock: Callable[[], datetime],
    reloader: Reloader | None = None,
) -> web.Application:
    """The routes, each handler reaching only the parts stored here under its key.
    Without a reloader (some tests), /-/reload is not served."""
    app = web.Application(
        client_max_size=config.max_body_bytes,
        middlewares=[
            no_server_errors,
            browser_guard(is_loopback(parse_listen(config.listen)[0])),
        ],
    )
    app[INTAKE] = intake
    app[SWITCHES] = switches
    app[APPROVALS] = approvals
    app[CLICKS] = clicks
    app[AUDIT] = audit
    app[METRICS] = metrics
    app[HEALTH] = health
    app[CONFIG] = config
    app[STATE] = {"draining": False}
    # Serialized once: auth, which it describes, changes only with a restart.
    app[OPENAPI] = json.dumps(document(config, reload=reloader is not None)).encode()
    if reloader is not None:
        app[RELOADER] = reloader
        app.router.add_post("/-/reload", _api_write(reload))
    app.router.add_post(
        "/webhook/alertmanager", _webhook("alertmanager", _am_auth, parse_alertmanager)
    )
    app.router.add_post(
        "/webhook/datadog",
        _webhook("datadog", _dd_auth, lambda body: parse_datadog(body, clock())),
    )
    app.router.add_get("/api/v1/decisions", _api_read(audit_api.decisions))
    app.router.add_get("/api/v1/decisions/{id}", _api_read(audit_api.decision))
    app.router.add_get("/api/v1/operator-events", _api_read(audit_api.operator_events))
    app.router.add_get("/api/v1/approvals", _api_read(approvals_list))
    app.router.add_get("/api/v1/approvals/{id}", _api_read(approval_detail))
    app.router.add_post("/slack/interactions", slack_interactions)
    app.router.add_post("/api/v1/approvals/{id}/approve", _api_write(approve))
    app.router.add_post("/api/v1/approvals/{id}/deny", _api_write(deny))
    app.router.add_post("/api/v1/pause", _api_write(pause))
    app.router.add_post("/api/v1/resume", _api_write(resume))
    app.router.add_post("/api/v1/policies/{name}/reset", _api_write(reset))
    # Follows auth.api.read like every GET /api/v1/* (SPEC); open by default.
    app.router.add_get("/api/v1/openapi.json", _api_read(openapi_page))
    app.router.add_get("/metrics", metrics_page)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app

"""The /api/v1 control API: the guards of its reads and writes (the API token, a store
outage answered 503), approvals listed, shown, approved and denied, and pause, resume, reset
and reload. Handlers call the daemon's parts, which decide; nothing here decides.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from remediator import log
from remediator.core.approval import ApprovalRefused
from remediator.errors import StoreError
from remediator.reload import ReloadRefusedError
from remediator.web import auth
from remediator.web.audit import approval_json
from remediator.web.keys import (
    APPROVALS,
    AUDIT,
    CONFIG,
    INTAKE,
    RELOADER,
    STATE,
    SWITCHES,
    error,
    too_large_reason,
)

_log = log.get("remediator.web")
IDENTITY = web.RequestKey("identity", str)  # the caller of an API write: api:NAME


def api_write(
    handler: Callable[[web.Request], Awaitable[web.Response]],
) -> Callable[[web.Request], Awaitable[web.Response]]:
    """Needs `auth.api`: the caller's identity (`api:NAME`) is what the handler acts as."""
    unguarded = api_read(handler, authenticate=False)

    async def guarded(request: web.Request) -> web.Response:
        who = auth.api_identity(request.headers.get("Authorization"), request.app[CONFIG].auth.api)
        if who is None:
            _log.warning("api.unauthorized", path=request.path, remote=request.remote)
            return error(401, "missing or wrong API bearer token")
        request[IDENTITY] = who
        return await unguarded(request)

    return guarded


def api_read(
    handler: Callable[[web.Request], Awaitable[web.Response]], *, authenticate: bool = True
) -> Callable[[web.Request], Awaitable[web.Response]]:
    """Reads answer 503 too when the store is down: a retryable state, not a server bug.
    With `auth.api.read: true` they need a token like writes."""

    async def guarded(request: web.Request) -> web.Response:
        api = request.app[CONFIG].auth.api
        needs_token = authenticate and api is not None and api.read
        if needs_token and auth.api_identity(request.headers.get("Authorization"), api) is None:
            return error(401, "missing or wrong API bearer token (auth.api.read is on)")
        try:
            return await handler(request)
        except StoreError as exc:
            _log.error("api.store_unavailable", path=request.path, error=str(exc))
            return error(503, "state store unavailable")
        except web.HTTPRequestEntityTooLarge:  # a JSON error like every other answer here
            return error(413, too_large_reason(request))

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
            return error(400, 'body must be JSON such as {"by": "alice"}, or empty')
        raw = body.get("by") if isinstance(body, dict) else None
        note = raw.strip()[:200] if isinstance(raw, str) else ""
    who = request[IDENTITY]
    try:
        result = await request.app[APPROVALS].decide_approval(
            request.match_info["id"], who, approve=approve, note=note
        )
    except ApprovalRefused as exc:
        return error(409 if exc.conflict else 403, exc.reason)
    if result is None:
        return error(404, "no such approval")
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


async def approval_detail(request: web.Request) -> web.Response:
    store = request.app[AUDIT]
    found = await store.approval(request.match_info["id"])
    if found is None:
        return error(404, "no such approval")
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
            return error(400, 'body must be JSON such as {"limits": true}, or empty')
        if not isinstance(body, dict):
            return error(400, 'body must be a JSON object such as {"limits": true}')
        unknown = sorted(set(body) - {"limits", "by"})
        if unknown:
            named = ", ".join(repr(key[:40]) for key in unknown[:5])
            return error(400, f"unknown field(s) {named}; allowed: limits, by")
        if not isinstance(body.get("limits", False), bool):
            return error(400, "limits must be true or false")
        limits = body.get("limits", False)
        note = body["by"][:200] if isinstance(body.get("by"), str) else ""
    name, who = request.match_info["name"], request[IDENTITY]
    cleared = await request.app[SWITCHES].reset(name, limits=limits, by=who, detail=note)
    if cleared is None:
        return error(404, "no such policy")
    answer = {"policy": name, "tripped": False, "cleared": cleared, "by": who}
    return web.json_response({**answer, **await _redecided(request, name)})


async def reload(request: web.Request) -> web.Response:
    """Re-read the config and policies: 200 applied (with the keys that need a restart), 400
    with every problem (the running set stays). The body, if any, is not used."""
    if request.can_read_body:
        try:
            await request.json()
        except (ValueError, RecursionError):
            return error(400, "body must be JSON, or empty")
    if request.app[STATE]["draining"]:
        return error(503, "shutting down: not reloading")
    try:
        result = await request.app[RELOADER].reload(request[IDENTITY])
    except ReloadRefusedError as exc:
        body = {"error": "reload refused; the running config stays", "problems": exc.problems}
        return web.json_response(body, status=exc.status)
    return web.json_response(result.to_api())

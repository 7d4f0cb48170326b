"""The keys under which build_app stores the daemon's parts for the handlers, and the JSON
error answer they share. Nothing here handles a route or decides anything."""

from __future__ import annotations

from aiohttp import web

from remediator.approvals import Approvals
from remediator.config import Config
from remediator.conversation import Clicks
from remediator.health import Health
from remediator.intake import Intake
from remediator.metrics import Metrics
from remediator.reload import Reloader
from remediator.store.roles.store import Store
from remediator.switches import Switches

INTAKE = web.AppKey("intake", Intake)
SWITCHES = web.AppKey("switches", Switches)
APPROVALS = web.AppKey("approvals", Approvals)
CLICKS = web.AppKey("clicks", Clicks)
METRICS = web.AppKey("metrics", Metrics)
HEALTH = web.AppKey("health", Health)
CONFIG = web.AppKey("config", Config)
AUDIT = web.AppKey("audit", Store)  # audit reads and the readiness ping
STATE = web.AppKey("state", dict[str, bool])
RELOADER = web.AppKey("reloader", Reloader)
OPENAPI = web.AppKey("openapi", bytes)


def error(status: int, reason: str) -> web.Response:
    return web.json_response({"error": reason}, status=status)


def too_large_reason(request: web.Request) -> str:
    return f"body larger than max_body_bytes ({request.app[CONFIG].max_body_bytes})"

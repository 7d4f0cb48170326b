"""The aiohttp application: its middlewares, the daemon's parts stored under their keys, the
route table, and the pages polled by monitoring (metrics, health, readiness, OpenAPI). The
handlers live in webhooks.py, control.py and audit.py; nothing here decides.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from remediator.addresses import is_loopback, parse_listen
from remediator.approvals import Approvals
from remediator.config import Config
from remediator.conversation import Clicks
from remediator.errors import StoreError
from remediator.health import Health
from remediator.ingest.alertmanager import parse_alertmanager
from remediator.ingest.bodies import ParsedBodies
from remediator.ingest.datadog import parse_datadog
from remediator.intake import Intake
from remediator.metrics import Metrics
from remediator.reload import Reloader
from remediator.store.roles.store import Store
from remediator.switches import Switches
from remediator.web import audit as audit_api
from remediator.web.browser import guard
from remediator.web.control import (
    api_read,
    api_write,
    approval_detail,
    approvals_list,
    approve,
    deny,
    pause,
    reload,
    reset,
    resume,
)
from remediator.web.keys import (
    APPROVALS,
    AUDIT,
    CLICKS,
    CONFIG,
    HEALTH,
    INTAKE,
    METRICS,
    OPENAPI,
    RELOADER,
    STATE,
    SWITCHES,
    error,
)
from remediator.web.openapi import document
from remediator.web.webhooks import am_auth, dd_auth, slack_interactions, webhook


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
        return error(503, "shutting down")
    try:
        await request.app[AUDIT].ping()
    except StoreError as exc:
        return error(503, str(exc))
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
        middlewares=[guard(is_loopback(parse_listen(config.listen)[0]))],
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
        app.router.add_post("/-/reload", api_write(reload))
    app.router.add_post(
        "/webhook/alertmanager",
        webhook("alertmanager", am_auth, ParsedBodies(parse_alertmanager)),
    )
    app.router.add_post(
        "/webhook/datadog",
        webhook("datadog", dd_auth, lambda body: parse_datadog(body, clock())),
    )
    app.router.add_get("/api/v1/decisions", api_read(audit_api.decisions))
    app.router.add_get("/api/v1/decisions/{id}", api_read(audit_api.decision))
    app.router.add_get("/api/v1/operator-events", api_read(audit_api.operator_events))
    app.router.add_get("/api/v1/approvals", api_read(approvals_list))
    app.router.add_get("/api/v1/approvals/{id}", api_read(approval_detail))
    app.router.add_post("/slack/interactions", slack_interactions)
    app.router.add_post("/api/v1/approvals/{id}/approve", api_write(approve))
    app.router.add_post("/api/v1/approvals/{id}/deny", api_write(deny))
    app.router.add_post("/api/v1/pause", api_write(pause))
    app.router.add_post("/api/v1/resume", api_write(resume))
    app.router.add_post("/api/v1/policies/{name}/reset", api_write(reset))
    # Follows auth.api.read like every GET /api/v1/* (SPEC); open by default.
    app.router.add_get("/api/v1/openapi.json", api_read(openapi_page))
    app.router.add_get("/metrics", metrics_page)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app

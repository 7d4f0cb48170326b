"""The inbound webhooks: Alertmanager's and Datadog's alerts, admitted (draining, credentials,
size) and handed to intake, and Slack's signed button clicks handed to the conversation.
Handlers translate HTTP to those calls and errors to status codes; nothing here decides.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Sequence
from urllib.parse import parse_qs

from aiohttp import web

from remediator import jsontext, log
from remediator.config import Config
from remediator.core.alert import Alert
from remediator.errors import IngestError, StoreError
from remediator.slack_messages import APPROVE, DENY
from remediator.web import auth
from remediator.web.keys import CLICKS, CONFIG, INTAKE, METRICS, STATE, error, too_large_reason

_log = log.get("remediator.web")


def webhook(
    endpoint: str,
    authorized: Callable[[web.Request, Config], bool],
    parse: Callable[[bytes], Sequence[Alert]],
) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def admit(request: web.Request, app: web.Application, config: Config) -> bytes:
        """The body of a request we will decide on; IngestError says why not, in order."""
        if app[STATE]["draining"]:
            raise IngestError(503, "shutting down: not taking webhooks; retry another replica")
        if not authorized(request, config):
            raise IngestError(401, "missing or wrong credentials")
        if (request.content_length or 0) > config.max_body_bytes:
            raise IngestError(413, too_large_reason(request))
        try:
            return await request.read()  # client_max_size bounds chunked bodies too
        except web.HTTPRequestEntityTooLarge:
            raise IngestError(413, too_large_reason(request)) from None

    async def handle(request: web.Request) -> web.Response:
        app = request.app  # a property: read once
        config, metrics = app[CONFIG], app[METRICS]
        started = time.perf_counter()
        try:
            alerts = parse(await admit(request, app, config))
            decided = await app[INTAKE].ingest(alerts)
        except IngestError as exc:
            metrics.webhook_rejected.labels(endpoint, str(exc.status)).inc()
            _log.warning(
                "webhook.rejected",
                endpoint=endpoint,
                status=exc.status,
                reason=exc.reason,
                remote=request.remote,
            )
            return error(exc.status, exc.reason)
        except StoreError as exc:
            metrics.webhook_rejected.labels(endpoint, "503").inc()
            _log.error("webhook.store_unavailable", endpoint=endpoint, error=str(exc))
            return error(503, "state store unavailable; nothing was decided, please retry")
        finally:
            metrics.webhook_timer(endpoint).observe(time.perf_counter() - started)
        answer = {"alerts": len(alerts), "decisions": [v.to_api() for v in decided.verdicts]}
        return web.Response(
            body=jsontext.dumps_bytes(answer), content_type="application/json", charset="utf-8"
        )

    return handle


def am_auth(request: web.Request, config: Config) -> bool:
    return auth.alertmanager_ok(request.headers.get("Authorization"), config.auth.alertmanager)


def dd_auth(request: web.Request, config: Config) -> bool:
    dd = config.auth.datadog
    return auth.datadog_ok(request.headers.get(dd.header) if dd else None, dd)


async def slack_interactions(request: web.Request) -> web.Response:
    """Slack's button clicks: verified on the raw body, answered at once, handled after."""
    clicks, metrics = request.app[CLICKS], request.app[METRICS]
    if clicks.slack is None:
        return error(404, "Slack is not configured (slack.bot_token, signing_secret, channel)")
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        return error(413, too_large_reason(request))
    if not clicks.slack.verify(body, request.headers):
        metrics.webhook_rejected.labels("slack", "401").inc()
        _log.warning("slack.bad_signature", remote=request.remote)
        return error(401, "invalid Slack signature or timestamp")
    try:
        payload = json.loads(parse_qs(body.decode())["payload"][0])
        user = str(payload["user"]["id"])
        [action] = payload["actions"]
        action_id, approval_id = str(action["action_id"]), str(action["value"])
        channel = str(
            (payload.get("channel") or {}).get("id") or payload["container"]["channel_id"]
        )
    except (KeyError, IndexError, ValueError, TypeError, RecursionError) as exc:
        return error(400, f"not a block_actions payload: {type(exc).__name__}")
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

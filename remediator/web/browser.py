"""Middlewares that keep browsers and broken input out: a foreign `Origin` is 403, a POST
body that is not JSON is 415, and an unexpected exception is answered 400, never 500.

Any web page open on an operator's machine can make the browser POST to the daemon, but a
browser can only send `text/plain`, form or multipart bodies without a CORS preflight, and it
always names the page's origin. Alertmanager, Datadog, Slack and the CLI send no `Origin`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from remediator import log

_log = log.get("remediator.web")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# Slack's interactions are form-encoded and signed; every other POST carries JSON.
JSON_ONLY = ("/webhook/", "/api/v1/", "/-/reload")


def _error(status: int, reason: str) -> web.Response:
    return web.json_response({"error": reason}, status=status)


def same_origin(request: web.Request) -> bool:
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    host = request.headers.get("Host", "")
    return bool(host) and origin.rstrip("/").lower() in (
        f"http://{host}".lower(),
        f"https://{host}".lower(),
    )


def _has_body(request: web.Request) -> bool:
    if request.content_length is not None:
        return request.content_length > 0
    return request.body_exists  # chunked: a body of unknown length


@web.middleware
async def browser_guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not same_origin(request):
        _log.warning(
            "http.foreign_origin",
            path=request.path,
            origin=request.headers.get("Origin", "")[:200],
            remote=request.remote,
        )
        return _error(403, "cross-origin requests are refused")
    if (
        request.method == "POST"
        and request.path.startswith(JSON_ONLY)
        and _has_body(request)
        and request.content_type != "application/json"
    ):
        return _error(415, "the body must be JSON: Content-Type: application/json")
    return await handler(request)


@web.middleware
async def no_server_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Last line of defence: input the handlers did not foresee is a 400, logged loudly, so a
    sender never retries a poison body forever. Tests assert `http.unhandled` never happens."""
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except Exception:  # noqa: BLE001  # any escaped exception is answered, not turned into a 500
        _log.exception("http.unhandled", path=request.path, method=request.method)
        return _error(400, "the request could not be processed")

"""The middleware that keeps browsers and broken input out: a foreign `Origin` is 403, a POST
body that is not JSON is 415, and an unexpected exception is answered 400, never 500.

Any web page open on an operator's machine can make the browser POST to the daemon, but a
browser can only send `text/plain`, form or multipart bodies without a CORS preflight, and it
always names the page's origin. Alertmanager, Datadog, Slack and the CLI send no `Origin`.
A page whose own name was made to resolve to 127.0.0.1 (DNS rebinding) is same-origin, so a
daemon on loopback also refuses any `Host` that is not a loopback address or `localhost`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

from remediator import log
from remediator.addresses import is_loopback

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


def loopback_host(request: web.Request) -> bool:
    """The Host header names this machine's loopback (as every local client writes it)."""
    host = request.headers.get("Host", "")
    name = host[1:].partition("]")[0] if host.startswith("[") else host.rpartition(":")[0] or host
    return is_loopback(name.lower())


def _has_body(request: web.Request) -> bool:
    if request.content_length is not None:
        return request.content_length > 0
    return request.body_exists  # chunked: a body of unknown length


def guard(on_loopback: bool) -> Middleware:
    """The one middleware (a middleware is a call layer on every request, the webhooks' hot
    path included); `on_loopback`: the daemon listens on a loopback address only.

    Last line of defence around all of it: input the handlers (or these checks) did not
    foresee is a 400, logged loudly, so a sender never retries a poison body forever. Tests
    assert `http.unhandled` never happens."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            refused = _refused(request, on_loopback)
            return refused if refused is not None else await handler(request)
        except web.HTTPException:
            raise
        except Exception:  # noqa: BLE001  # any escaped exception is answered, not a 500
            _log.exception("http.unhandled", path=request.path, method=request.method)
            return _error(400, "the request could not be processed")

    return middleware


def _foreign(request: web.Request, event: str, header: str, reason: str) -> web.Response:
    """403 for a foreign `Host` or `Origin`, logged with the header's value (cut: it is the
    sender's text) under the header's name."""
    value = request.headers.get(header, "")[:200]
    fields = {header.lower(): value, "path": request.path, "remote": request.remote}
    _log.warning(event, **fields)
    return _error(403, reason)


def _refused(request: web.Request, on_loopback: bool) -> web.Response | None:
    """The answer to a request refused before its handler, or None."""
    if on_loopback and not loopback_host(request):
        why = "Host is not a loopback address (DNS rebinding is refused)"
        return _foreign(request, "http.foreign_host", "Host", why)
    if not same_origin(request):
        why = "cross-origin requests are refused"
        return _foreign(request, "http.foreign_origin", "Origin", why)
    if (
        request.method == "POST"
        and request.path.startswith(JSON_ONLY)
        and _has_body(request)
        and request.content_type != "application/json"
    ):
        return _error(415, "the body must be JSON: Content-Type: application/json")
    return None

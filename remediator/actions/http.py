"""The `http.request` action: call a rollback hook (a CI job, `deploy.sh --rollback`).

`${secret:NAME}` in the URL, headers or body is filled from the config's `secrets` only at the
moment of sending; every reason names the URL as the policy rendered it (references
unexpanded, userinfo stripped, redacted) and never quotes what the hook answered.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import quote

import aiohttp
from pydantic import SecretStr
from yarl import URL

from remediator.actions.base import ActionRequest, ActionResult
from remediator.core import urlscope
from remediator.core.kinds.http import DEFAULT_EXPECT, DEFAULT_TIMEOUT, hook_call
from remediator.core.render import SECRET_REF
from remediator.errors import ActionError
from remediator.log import redact

# Characters left as they are when a URL goes on the wire: RFC 3986 reserved and unreserved
# ones, and `%` (escapes the policy wrote). Anything else (`{`, `"`, `|`...) is escaped.
_URL_SAFE = "!#$&'()*+,/:;=?@[]~%"
_HEADER_UNSAFE = re.compile(r"[\x00-\x1f\x7f]")
_LOCATION_MAX = 200


class HttpExecutor:
    def __init__(self, secrets: Mapping[str, SecretStr]) -> None:
        self._secrets = secrets
        self._session: aiohttp.ClientSession | None = None

    def _fill(self, text: str, *, in_url: bool = False) -> str:
        def secret(match: re.Match[str]) -> str:
            found = self._secrets.get(match[1])
            if found is None:
                raise ActionError(
                    f"http.request: no secret {match[1]!r} is configured (config key `secrets`)"
                )
            value = found.get_secret_value()
            # In a URL a secret is data: escaped, so it can never add a segment, `?` or `#`.
            return quote(value, safe="") if in_url else value

        return SECRET_REF.sub(secret, text)

    def _wire_url(self, url: str, shown: str) -> URL:
        """The URL to send: secrets filled in, still exactly the URL the scope check passed."""
        filled = quote(self._fill(url, in_url=True), safe=_URL_SAFE)
        try:
            checked, sent = urlscope.split_url(url), urlscope.split_url(filled)
        except ValueError as exc:
            raise ActionError(f"http.request: url {shown} {exc}") from None
        if (checked.scheme, checked.host, checked.port) != (sent.scheme, sent.host, sent.port):
            raise ActionError(f"http.request: url {shown}: a secret changed its host or port")
        # encoded=True: sent as checked, never re-normalised (no `..` collapsing, no decoding).
        return URL(filled, encoded=True)

    def _headers(self, params: Mapping[str, str]) -> dict[str, str]:
        headers = {}
        for key, value in params.items():
            if key.startswith("header."):
                filled = self._fill(value)
                if _HEADER_UNSAFE.search(filled):
                    name = key.removeprefix("header.")
                    raise ActionError(f"http.request: header {name} has a control character")
                headers[key.removeprefix("header.")] = filled
        return headers

    async def execute(self, request: ActionRequest) -> ActionResult:
        params = request.params
        try:
            call = hook_call(params)  # checked at render already: the one reading of them
        except ValueError as exc:
            raise ActionError(redact(f"http.request: {exc}")) from None
        # As rendered, secrets still as ${secret:NAME}; userinfo stripped, then redacted.
        shown = redact(urlscope.without_userinfo(call.url))
        what = f"{call.method} {shown}"
        url = self._wire_url(call.url, shown)
        headers = self._headers(params)
        body = self._fill(params["body"]) if "body" in params else None
        if self._session is None:
            self._session = aiohttp.ClientSession()
        try:
            async with self._session.request(
                call.method,
                url,
                data=body,
                headers=headers,
                # Never followed: a redirect could lead anywhere, with the secret headers.
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=call.timeout.total_seconds()),
            ) as resp:
                status, length = resp.status, resp.content_length
                location = resp.headers.get("Location")
        except aiohttp.ClientConnectorError as exc:
            # Refused before the request left: nothing can have run, so it may be retried.
            # The OS error names only the address the scope check allowed, never the path.
            raise ActionError(
                redact(f"{what}: cannot connect: {exc.os_error}"),
                retryable=True,
            ) from None
        except TimeoutError:
            raise ActionError(
                f"{what}: no answer within {params.get('timeout', DEFAULT_TIMEOUT)}"
            ) from None
        except (aiohttp.ClientError, ValueError) as exc:
            # It may have reached the hook (a CI job may be running): never send it again.
            # Only the type: aiohttp's messages quote the URL as sent, secrets filled in.
            raise ActionError(f"{what}: {type(exc).__name__}") from None
        if 300 <= status < 400:
            raise ActionError(f"{what} answered {status}, {_redirect(location)}")
        if status not in call.expected:  # the kind's rule of success: an expected status
            wanted = params.get("expect_status", DEFAULT_EXPECT)
            raise ActionError(f"{what} answered {status}, expected {wanted}{_size(length)}")
        return ActionResult(ok=True, detail=f"{what} answered {status}{_size(length)}")

    async def probe(self) -> str | None:
        return None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _size(length: int | None) -> str:
    # The body itself is never quoted: a hook may echo the request, secrets included.
    return "" if length is None else f" ({length}-byte body)"


def _redirect(location: str | None) -> str:
    if location is None:
        return "a redirect with no Location: redirects are never followed"
    shown = _HEADER_UNSAFE.sub("", urlscope.without_userinfo(location))
    if len(shown) > _LOCATION_MAX:
        shown = shown[:_LOCATION_MAX] + "..."
    return f"a redirect to Location {redact(shown)}: redirects are never followed"

"""The `http.request` kind: call a rollback hook. Its params (read once, by `hook_call`, for
the target at render and for the executor), its static check, its URL scope, and what
counts as success (an expected status, never a 3xx). Pure.

Its allow_targets are URLs with a fixed scheme, host and port, checked by `urlscope`, never
by a glob over the raw URL. The target is the URL as rendered, `${secret:NAME}` unexpanded:
what the scope check, the audit log and Slack see.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from types import MappingProxyType

from remediator.core import urlscope
from remediator.core.durations import parse_timeout
from remediator.core.kinds.base import ActionKind, Backend, Refusal, is_static, parse_static_timeout
from remediator.core.render import Template
from remediator.errors import RenderError

HTTP_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})
DEFAULT_METHOD = "POST"
DEFAULT_TIMEOUT = "10s"
DEFAULT_EXPECT = "2xx"


def expected_statuses(text: str) -> frozenset[int]:
    """`2xx`, `200`, `200,202` -> the statuses that count as success."""
    found: set[int] = set()
    for part in (p.strip().lower() for p in text.split(",")):
        if len(part) == 3 and part[0] in "12345" and part.endswith("xx"):
            base = int(part[0]) * 100
            found.update(range(base, base + 100))
        elif part.isdigit() and 100 <= int(part) <= 599:
            found.add(int(part))
        else:
            raise ValueError(f"expect_status {text!r}: use e.g. 2xx, 200 or 200,202")
    return frozenset(found)


def hook_statuses(text: str) -> frozenset[int]:
    """An http.request's expect_status: as `expected_statuses`, but never a 3xx."""
    found = expected_statuses(text)
    if any(300 <= code < 400 for code in found):
        raise ValueError(
            f"expect_status {text!r}: a 3xx is never success (redirects are not followed)"
        )
    return found


@dataclass(frozen=True, slots=True)
class HookCall:
    """Read params of one call (headers and body stay with the executor, which fills in
    their secrets); `expected`: the statuses that count as success."""

    method: str
    url: str
    timeout: timedelta
    expected: frozenset[int]


def hook_call(params: Mapping[str, str]) -> HookCall:
    """The one reading of rendered http.request params; ValueError says what is wrong."""
    url = params["url"]
    if not url.lower().startswith(("http://", "https://")):
        shown = urlscope.without_userinfo(url)
        raise ValueError(f"rendered url {shown!r} is not an http(s) URL")
    method = params.get("method", DEFAULT_METHOD).upper()
    if method not in HTTP_METHODS:
        raise ValueError(f"method must be one of {', '.join(sorted(HTTP_METHODS))}")
    try:
        expected = hook_statuses(params.get("expect_status", DEFAULT_EXPECT))
    except ValueError as exc:
        raise ValueError(f"param expect_status: {exc}") from None
    try:
        timeout = parse_timeout(params.get("timeout", DEFAULT_TIMEOUT))
    except ValueError as exc:
        raise ValueError(f"param timeout: {exc}") from None
    return HookCall(method, url, timeout, expected)


class HttpRequest(ActionKind):
    type = "http.request"
    backend = Backend.HTTP
    allowed = frozenset({"method", "url", "body", "expect_status", "timeout"})
    required = frozenset({"url"})
    prefixes = ("header.",)  # `headers`, flattened to one templated param each
    params_doc = MappingProxyType(
        {
            "method": f"The HTTP method (default {DEFAULT_METHOD}).",
            "url": "The URL (a template; scheme, host and port must be those of an "
            "allow_targets entry; redirects are never followed).",
            "headers": "A mapping of header name to value (templates; `${secret:NAME}` only "
            "where the policy writes it).",
            "body": "The request body (a template).",
            "expect_status": f"Statuses that count as success: `200`, `2xx`, `200,204` "
            f"(default {DEFAULT_EXPECT}).",
            "timeout": f"How long the call may take (default {DEFAULT_TIMEOUT}).",
        }
    )

    def check_static(self, params: Mapping[str, Template]) -> None:
        method = params.get("method")
        if method is not None and method.source.upper() not in HTTP_METHODS:
            raise ValueError(f"method must be one of {', '.join(sorted(HTTP_METHODS))}")
        url = params["url"].source
        if "{" not in url.split("//", 1)[0] and not url.startswith(("http://", "https://")):
            raise ValueError("url must start with http:// or https://")
        status = params.get("expect_status")
        if status is not None and is_static(status):
            hook_statuses(status.source)
        timeout = params.get("timeout")
        if timeout is not None and is_static(timeout):
            parse_static_timeout(timeout.source)

    def check_targets(self, params: Mapping[str, Template], allow_targets: tuple[str, ...]) -> None:
        """allow_targets of an http.request are URLs with a fixed scheme, host and port."""
        if not allow_targets:
            raise ValueError(
                "allow_targets is required: list the URLs this policy may call, with their "
                'scheme, host and port (e.g. "https://ci.example.com/job/rollback-*/build")'
            )
        for entry in allow_targets:
            urlscope.check_entry(entry)
        url = params["url"]
        if not any(mark in url.source for mark in ("{{", "{%", "{#")):
            # A URL with no template in it: `check` can tell now whether it is in scope.
            reason = urlscope.out_of_scope(url.source.strip(), allow_targets)
            if reason is not None:
                raise ValueError(f"params.url: {reason}")

    def target(self, params: Mapping[str, str]) -> str:
        try:
            return hook_call(params).url
        except ValueError as exc:
            raise RenderError(str(exc)) from None

    def scope(
        self, target: str, allow_targets: tuple[str, ...], protected: frozenset[str]
    ) -> Refusal | None:
        reason = urlscope.out_of_scope(target, allow_targets)
        if reason is None:
            return None
        return Refusal(reason, urlscope.without_userinfo(target))


HTTP_REQUEST = HttpRequest()

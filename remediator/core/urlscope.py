"""Scope of an `http.request`: is a rendered URL within one of the policy's allow_targets URLs?

Pure. A URL is in scope only when its scheme, host and port equal an entry's and its path,
query and fragment match the entry's globs piece by piece; anything a client, proxy or
server might re-interpret (dot segments, encoded slashes, backslashes, userinfo, control
characters, malformed escapes) is refused rather than normalised.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import unquote

_URL = re.compile(
    r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://(?P<authority>[^/?#]*)(?P<path>[^?#]*)"
    r"(?:\?(?P<query>[^#]*))?(?:#(?P<fragment>.*))?$",
    re.DOTALL,
)
_DEFAULT_PORTS = {"http": 80, "https": 443}
# A bracketed IPv6 literal, or a name / IPv4 address. Compared literally: `0x7f.1` is not
# `127.0.0.1`, so an unusual spelling can only ever be out of scope, never in.
_HOST = re.compile(r"^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+)\Z")
_PORT = re.compile(r"^[0-9]{1,5}\Z")
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
# Encoded `/` or `\` (servers that decode before routing see another path) and encoded
# control characters (header or log injection at the hook).
_FORBIDDEN_ESCAPE = re.compile(r"%(?:2[Ff]|5[Cc]|[01][0-9A-Fa-f]|7[Ff])")
# What a `*` may never match, per URL part: a path `*` stays within one segment (and never
# swallows a `;` matrix parameter, which Tomcat/Jetty strip before routing: `..;`); a query
# `*` stays within one `name=value` pair.
_PATH_STOP = "/;"
_QUERY_STOP = "&;"


@dataclass(frozen=True, slots=True)
class UrlParts:
    """A URL split for comparison: scheme and host lower-cased, the port always explicit."""

    scheme: str
    host: str
    port: int
    path: str
    query: str | None
    fragment: str | None


def without_userinfo(url: str) -> str:
    """`url` with any `user:password@` removed, for reasons and targets shown to people."""
    head, sep, rest = url.partition("://")
    if not sep:
        return url
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    authority = rest[:end]
    if "@" not in authority:
        return url
    return f"{head}://{authority.rpartition('@')[2]}{rest[end:]}"


def split_url(url: str) -> UrlParts:
    """Split an absolute http(s) URL, refusing anything ambiguous. ValueError says why."""
    if any(not "!" <= c <= "~" for c in url):
        raise ValueError("contains whitespace, a control character or a non-ASCII character")
    if "\\" in url:
        raise ValueError("contains a backslash")
    match = _URL.match(url)
    if match is None:
        raise ValueError("is not an absolute http:// or https:// URL")
    scheme = match["scheme"].lower()
    if scheme not in _DEFAULT_PORTS:
        raise ValueError("is not an http:// or https:// URL")
    authority = match["authority"]
    if "@" in authority:
        raise ValueError("has userinfo (user@ or user:password@)")
    host, port = _host_port(authority, scheme)
    if _BAD_ESCAPE.search(url):
        raise ValueError("has a % that does not start a %XX escape")
    if _FORBIDDEN_ESCAPE.search(url):
        raise ValueError("has an encoded / or \\ (%2F, %5C) or an encoded control character")
    path = match["path"] or "/"
    for segment in path.split("/")[1:-1]:
        if not segment:
            raise ValueError("has an empty path segment (//)")
    for segment in path.split("/")[1:]:
        # `%2e%2e` and `..;x` are `..` to some client or server on the way.
        if unquote(segment).split(";", 1)[0] in (".", ".."):
            raise ValueError("has a . or .. path segment")
    return UrlParts(scheme, host, port, path, match["query"], match["fragment"])


def _host_port(authority: str, scheme: str) -> tuple[str, int]:
    if authority.startswith("["):
        host, _, rest = authority.partition("]")
        host += "]"
        if rest and not rest.startswith(":"):
            raise ValueError(f"has a malformed host {authority!r}")
        port_text = rest[1:] if rest else None
    else:
        host, sep, tail = authority.partition(":")
        port_text = tail if sep else None
    if not _HOST.match(host):
        raise ValueError(f"has a malformed or empty host {authority!r}")
    if port_text is None:
        return host.lower(), _DEFAULT_PORTS[scheme]
    if not _PORT.match(port_text) or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"has a malformed port {authority!r}")
    return host.lower(), int(port_text)


def check_entry(entry: str) -> UrlParts:
    """Validate one allow_targets URL of an http.request (at policy load). ValueError says why."""
    head, sep, rest = entry.partition("://")
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    if sep and "*" in head + authority:
        raise ValueError(
            f"allow_targets entry {entry!r}: no wildcard in the scheme, host or port "
            "(list each host:port the policy may call)"
        )
    try:
        return split_url(entry)
    except ValueError as exc:
        raise ValueError(f"allow_targets entry {without_userinfo(entry)!r} {exc}") from None


@lru_cache(maxsize=1024)
def _entry(entry: str) -> UrlParts:
    return check_entry(entry)


@lru_cache(maxsize=1024)
def _glob(pattern: str, stop: str) -> re.Pattern[str]:
    # Only `*` is special: `?` and `[` are literal, so a URL character never becomes a wildcard.
    any_run = f"[^{re.escape(stop)}]*"
    return re.compile(any_run.join(re.escape(part) for part in pattern.split("*")), re.DOTALL)


def _optional(pattern: str | None, value: str | None) -> bool:
    """A query or fragment is allowed only where the entry has one; its glob then applies."""
    if pattern is None:
        return value is None
    return _glob(pattern, _QUERY_STOP).fullmatch(value or "") is not None


def matches(url: UrlParts, entry: UrlParts) -> bool:
    return (
        url.scheme == entry.scheme
        and url.host == entry.host
        and url.port == entry.port
        and _glob(entry.path, _PATH_STOP).fullmatch(url.path) is not None
        and _optional(entry.query, url.query)
        and _optional(entry.fragment, url.fragment)
    )


def out_of_scope(url: str, allow_targets: Iterable[str]) -> str | None:
    """None when `url` is within one of `allow_targets`, else the reason (userinfo stripped)."""
    shown = without_userinfo(url)
    try:
        parts = split_url(url)
    except ValueError as exc:
        return f"url {shown!r} {exc}"
    entries = tuple(allow_targets)
    for entry in entries:
        try:
            if matches(parts, _entry(entry)):
                return None
        except ValueError:
            continue  # refused at load; an invalid entry allows nothing
    allowed = ", ".join(without_userinfo(e) for e in entries)
    return f"url {shown!r} is not in allow_targets [{allowed}]"

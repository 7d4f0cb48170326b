"""Request authentication: bearer tokens and basic credentials, compared in constant time.

Every check takes the header as it arrived; a value that is not valid text (aiohttp hands
undecodable bytes through as surrogates) simply does not match — never an exception.
"""

from __future__ import annotations

import hmac

from aiohttp import BasicAuth
from pydantic import SecretStr

from remediator.config_auth import AlertmanagerAuth, ApiAuth, DatadogAuth


def _bytes(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def _same(given: str, expected: SecretStr) -> bool:
    try:
        raw = _bytes(given)
    except UnicodeEncodeError:  # lone surrogates that were never bytes: not a credential
        return False
    return hmac.compare_digest(raw, _bytes(expected.get_secret_value()))


def _bearer(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, credentials = header.partition(" ")
    return credentials.strip() if scheme.lower() == "bearer" else None


def bearer_ok(header: str | None, token: SecretStr) -> bool:
    given = _bearer(header)
    return given is not None and _same(given, token)


def basic_ok(header: str | None, username: str, password: SecretStr) -> bool:
    if not header:
        return False
    try:
        given = BasicAuth.decode(header)
    except (ValueError, UnicodeError):
        return False
    # Both compared even if the first differs, so timing says nothing about which one.
    try:
        user_ok = hmac.compare_digest(_bytes(given.login), _bytes(username))
    except UnicodeEncodeError:
        return False
    return _same(given.password, password) & user_ok


def alertmanager_ok(header: str | None, auth: AlertmanagerAuth | None) -> bool:
    if auth is None or auth.allow_unauthenticated:
        return True
    if auth.bearer_token is not None:
        return bearer_ok(header, auth.bearer_token)
    assert auth.basic is not None  # noqa: S101  # config validation demands one of the two
    return basic_ok(header, auth.basic.username, auth.basic.password)


def datadog_ok(value: str | None, auth: DatadogAuth | None) -> bool:
    if auth is None or auth.allow_unauthenticated:
        return True
    assert auth.token is not None  # noqa: S101  # config validation demands a token
    return value is not None and _same(value, auth.token)


OPEN = "api:anonymous"


def api_identity(header: str | None, auth: ApiAuth | None) -> str | None:
    """The caller's identity `api:NAME` from its bearer token; None when it matches none.

    With no API auth (loopback only, or allow_unauthenticated) every caller is `api:anonymous`.
    Every token is compared, so timing does not tell which name came close.
    """
    if auth is None or auth.allow_unauthenticated:
        return OPEN
    given = _bearer(header)
    if given is None:
        return None
    found = None
    for identity, token in auth.identities().items():
        if _same(given, token):
            found = identity
    return found

"""Request authentication: bearer tokens and basic credentials, compared in constant time."""

from __future__ import annotations

import hmac

from aiohttp import BasicAuth
from pydantic import SecretStr

from remediator.config import AlertmanagerAuth, ApiAuth, DatadogAuth


def _same(given: str, expected: SecretStr) -> bool:
    return hmac.compare_digest(given.encode(), expected.get_secret_value().encode())


def bearer_ok(header: str | None, token: SecretStr) -> bool:
    if not header:
        return False
    scheme, _, credentials = header.partition(" ")
    return scheme.lower() == "bearer" and _same(credentials.strip(), token)


def basic_ok(header: str | None, username: str, password: SecretStr) -> bool:
    if not header:
        return False
    try:
        given = BasicAuth.decode(header)
    except ValueError:
        return False
    # Both compared even if the first differs, so timing says nothing about which one.
    user_ok = hmac.compare_digest(given.login.encode(), username.encode())
    return _same(given.password, password) & user_ok


def alertmanager_ok(header: str | None, auth: AlertmanagerAuth | None) -> bool:
    if auth is None:
        return True
    if auth.bearer_token is not None:
        return bearer_ok(header, auth.bearer_token)
    assert auth.basic is not None  # noqa: S101  # config validation demands one of the two
    return basic_ok(header, auth.basic.username, auth.basic.password)


def api_ok(header: str | None, auth: ApiAuth | None) -> bool:
    return True if auth is None else bearer_ok(header, auth.bearer_token)


def datadog_ok(value: str | None, auth: DatadogAuth | None) -> bool:
    if auth is None:
        return True
    return value is not None and _same(value, auth.token)

"""The `auth` sections: per endpoint, credentials or `allow_unauthenticated: true`. They only
check what is configured; checking a request against them is remediator/web/auth.py's.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import SecretStr, ValidationInfo, field_validator, model_validator

from remediator.config_section import NonEmptySecret, Section, named_secrets


class BasicCredentials(Section):
    username: str
    """The user name Alertmanager sends."""
    password: NonEmptySecret
    """The password (or `password_file`)."""


class EndpointAuth(Section):
    """Every endpoint's block may instead be `{allow_unauthenticated: true}`: deliberately open."""

    allow_unauthenticated: bool = False
    """true: this endpoint is open on purpose (no credentials may be set beside it)."""

    def _one_of(self, *given: object) -> None:
        present = sum(value is not None for value in given)
        if self.allow_unauthenticated and present:
            raise ValueError("allow_unauthenticated: true cannot be combined with credentials")
        if not self.allow_unauthenticated and present != 1:
            raise ValueError(self._which)

    _which = "set credentials"


class AlertmanagerAuth(EndpointAuth):
    bearer_token: NonEmptySecret | None = None
    """The token Alertmanager sends as `Authorization: Bearer` (its
    `http_config.authorization.credentials`)."""
    basic: BasicCredentials | None = None
    """HTTP basic auth instead of a bearer token (`basic_auth` in Alertmanager)."""
    _which = "set exactly one of bearer_token or basic (or allow_unauthenticated: true)"

    @model_validator(mode="after")
    def _exactly_one(self) -> AlertmanagerAuth:
        self._one_of(self.bearer_token, self.basic)
        return self


class DatadogAuth(EndpointAuth):
    header: str = "X-Remediator-Token"
    """The header the Datadog webhook sends the token in (its custom headers)."""
    token: NonEmptySecret | None = None
    """The token the Datadog webhook sends in `header`."""
    _which = "set token (or allow_unauthenticated: true)"

    @model_validator(mode="after")
    def _token(self) -> DatadogAuth:
        self._one_of(self.token)
        return self


_TOKEN_NAME = re.compile(r"^[a-zA-Z0-9_.-]{1,64}\Z")


class ApiAuth(EndpointAuth):
    """Named tokens: the caller's identity is `api:<name>` (who approved, paused, reset)."""

    tokens: dict[str, NonEmptySecret] | None = None
    """Named API tokens: the caller of `NAME`'s token acts as `api:NAME` (approvals,
    pause, reset); `NAME_file` reads one from a file."""
    bearer_token: NonEmptySecret | None = None
    """Shorthand for one token named `api` (`tokens: {api: ...}`)."""
    read: bool = False
    """true: `GET /api/v1/*` needs a token too."""
    _which = "set tokens or bearer_token (or allow_unauthenticated: true)"

    @field_validator("tokens", mode="before")
    @classmethod
    def _token_files(cls, value: Any, info: ValidationInfo) -> Any:
        return named_secrets(value, info, "token")

    @model_validator(mode="after")
    def _named(self) -> ApiAuth:
        self._one_of(self.tokens if self.tokens else None, self.bearer_token)
        for name in self.tokens or {}:
            if not _TOKEN_NAME.match(name):
                raise ValueError(f"token name {name!r}: use letters, digits, _ . - (1-64)")
        values = [t.get_secret_value() for t in self.identities().values()]
        if len(set(values)) != len(values):
            raise ValueError("two token names share one token: each identity needs its own")
        return self

    def identities(self) -> dict[str, SecretStr]:
        """identity (`api:NAME`) -> its token."""
        if self.bearer_token is not None:
            return {"api:api": self.bearer_token}
        return {f"api:{name}": token for name, token in (self.tokens or {}).items()}


class AuthConfig(Section):
    alertmanager: AlertmanagerAuth | None = None
    """Auth of `POST /webhook/alertmanager`; none: open (loopback only)."""
    datadog: DatadogAuth | None = None
    """Auth of `POST /webhook/datadog`; none: open (loopback only)."""
    api: ApiAuth | None = None
    """Auth of the API's writes and `/-/reload`; none: open (loopback only), every caller
    is `api:anonymous`."""

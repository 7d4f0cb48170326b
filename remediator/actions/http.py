"""The `http.request` action: call a rollback hook (a CI job, `deploy.sh --rollback`).

`${secret:NAME}` in the URL, headers or body is filled from `http.secrets` in the config at
the moment of sending, so secrets never reach the audit log, logs or Slack.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import aiohttp
from pydantic import SecretStr

from remediator.actions.base import ActionRequest, ActionResult
from remediator.core.durations import parse_duration
from remediator.core.policy import expected_statuses
from remediator.errors import ActionError

_SECRET = re.compile(r"\$\{secret:([A-Za-z0-9_]+)\}")


class HttpExecutor:
    def __init__(self, secrets: Mapping[str, SecretStr]) -> None:
        self._secrets = secrets
        self._session: aiohttp.ClientSession | None = None

    def _fill(self, text: str) -> str:
        def secret(match: re.Match[str]) -> str:
            found = self._secrets.get(match[1])
            if found is None:
                raise ActionError(f"http.request: no secret {match[1]!r} in http.secrets")
            return found.get_secret_value()

        return _SECRET.sub(secret, text)

    async def execute(self, request: ActionRequest) -> ActionResult:
        params = request.params
        method = params.get("method", "POST").upper()
        shown = params["url"]  # as rendered: secrets still as ${secret:NAME}
        timeout = parse_duration(params.get("timeout", "10s"))
        expected = expected_statuses(params.get("expect_status", "2xx"))
        headers = {
            k.removeprefix("header."): self._fill(v)
            for k, v in params.items()
            if k.startswith("header.")
        }
        body = self._fill(params["body"]) if "body" in params else None
        if self._session is None:
            self._session = aiohttp.ClientSession()
        try:
            async with self._session.request(
                method,
                self._fill(shown),
                data=body,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=timeout.total_seconds()),
            ) as resp:
                text = (await resp.text(errors="replace"))[:300]
                status = resp.status
        except aiohttp.ClientConnectorError as exc:
            # Refused before the request left: nothing can have run, so it may be retried.
            raise ActionError(
                f"{method} {shown}: cannot connect: {exc.os_error}", retryable=True
            ) from None
        except (aiohttp.ClientError, TimeoutError) as exc:
            # It may have reached the hook (a CI job may be running): never send it again.
            raise ActionError(f"{method} {shown}: {type(exc).__name__}: {exc}") from None
        if status not in expected:
            wanted = params.get("expect_status", "2xx")
            raise ActionError(f"{method} {shown} answered {status}, expected {wanted}: {text}")
        return ActionResult(ok=True, detail=f"{method} {shown} answered {status}")

    async def probe(self) -> str | None:
        return None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

"""Alertmanager webhook v4 bodies (and Grafana's `version: "1"` contact point) -> Alerts.

Lenient about what senders add (unknown fields ignored), strict about what a decision
needs: one malformed alert rejects the whole body, so no partial decisions are made.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from remediator.core.alert import Alert
from remediator.core.timestamps import GO_ZERO_TIME, parse_rfc3339_ns
from remediator.errors import IngestError
from remediator.ingest.fingerprint import label_fingerprint


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class AMAlert(_Lenient):
    status: Literal["firing", "resolved"] | None = None
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: str  # noqa: N815  # wire names
    endsAt: str = ""  # noqa: N815
    generatorURL: str = ""  # noqa: N815
    fingerprint: str = ""


class AMMessage(_Lenient):
    version: str = "4"
    status: Literal["firing", "resolved"] | None = None
    receiver: str = ""
    groupKey: str = ""  # noqa: N815
    alerts: list[AMAlert]


def _reason(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "body"
    more = f" (and {exc.error_count() - 1} more problems)" if exc.error_count() > 1 else ""
    return f"{where}: {first['msg']}{more}"


def parse_alertmanager(body: bytes) -> list[Alert]:
    """Alerts of one webhook body, or IngestError(400) naming the first problem."""
    try:
        message = AMMessage.model_validate_json(body)
    except ValidationError as exc:
        raise IngestError(400, f"malformed Alertmanager webhook body: {_reason(exc)}") from None
    alerts = []
    for index, raw in enumerate(message.alerts):
        try:
            starts_at, starts_ns = parse_rfc3339_ns(raw.startsAt)
            ends_at = parse_rfc3339_ns(raw.endsAt)[0] if raw.endsAt else GO_ZERO_TIME
        except ValueError as exc:
            raise IngestError(400, f"alerts.{index}: {exc}") from None
        # Pre-0.19 bodies may lack per-alert status: Alertmanager zeroes endsAt while firing.
        status = raw.status or ("firing" if ends_at == GO_ZERO_TIME else "resolved")
        fingerprint = raw.fingerprint or label_fingerprint(raw.labels)
        alerts.append(
            Alert(
                source="alertmanager",
                status=status,
                labels=raw.labels,
                annotations=raw.annotations,
                starts_at=starts_at,
                fingerprint=fingerprint,
                episode=f"am:{fingerprint}:{starts_ns}",
                generator_url=raw.generatorURL,
            )
        )
    return alerts

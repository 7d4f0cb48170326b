"""The normalized alert every ingest adapter produces, whatever the sender."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

Source = Literal["alertmanager", "datadog"]
Status = Literal["firing", "resolved"]


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert. `episode` identifies its firing episode: one action per (policy, episode)."""

    source: Source
    status: Status
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    starts_at: datetime
    fingerprint: str
    episode: str
    generator_url: str = ""

    @property
    def name(self) -> str:
        return self.labels.get("alertname", "")

    def template_view(self) -> dict[str, object]:
        """The `alert` object templates see (SPEC: status, source, starts_at, fingerprint, ...)."""
        return {
            "status": self.status,
            "source": self.source,
            "starts_at": self.starts_at.isoformat(),
            "fingerprint": self.fingerprint,
            "generator_url": self.generator_url,
            "name": self.name,
        }

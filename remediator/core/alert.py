"""The normalized alert every ingest adapter produces, whatever the sender."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Literal, NamedTuple

Source = Literal["alertmanager", "datadog"]
Status = Literal["firing", "resolved"]
# How a notification moves its incident when the sender gives no incident id: it opens one
# (or continues the open one), repeats it, or ends it. The store numbers the cycles.
Cycle = Literal["start", "repeat", "end"]


class Alert(NamedTuple):
    """One alert. `episode` identifies its firing episode: one action per (policy, episode).
    A NamedTuple, as the other records built per alert (see judge_records.Verdict)."""

    source: Source
    status: Status
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    starts_at: datetime
    fingerprint: str
    episode: str
    generator_url: str = ""
    # None: `episode` is final. Otherwise `episode` names a group whose current cycle the
    # store resolves (Datadog without $ALERT_CYCLE_KEY), so a new trigger after a recovery
    # is a new episode while Re-Triggered/Renotify stay repeats of the open one.
    cycle: Cycle | None = None

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

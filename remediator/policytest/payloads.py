"""A test's alerts as the webhook bodies their senders would post (Alertmanager's v4 body,
the Datadog payload of deploy/datadog-webhook-payload.json), read by the daemon's own ingest
parsers: a test sees the labels, episodes and fingerprints the daemon would see.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta

from remediator.core.alert import Alert
from remediator.ingest.alertmanager import parse_alertmanager
from remediator.ingest.datadog import parse_datadog
from remediator.policytest.spec import AlertEvent

_GO_ZERO = "0001-01-01T00:00:00Z"  # Alertmanager's endsAt of a firing alert


class Episodes:
    """When each label set began firing, as Alertmanager keeps `startsAt` while an alert
    fires: a resolved alert ends it, and firing again starts a new one."""

    def __init__(self) -> None:
        self._began: dict[str, timedelta] = {}

    def starts_at(self, event: AlertEvent) -> timedelta:
        key = _key(event)
        start = event.starts_at
        if start is None:
            start = self._began.get(key, event.at)
        if event.status == "firing":
            self._began[key] = start
        else:
            self._began.pop(key, None)
        return start


def _key(event: AlertEvent) -> str:
    return json.dumps([event.source, sorted(event.labels.items())])


def _rfc3339(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def to_alerts(event: AlertEvent, episodes: Episodes, start: datetime) -> list[Alert]:
    """The alert as the daemon reads it from its sender's body; `start` is the test's 0s."""
    began = start + episodes.starts_at(event)
    now = start + event.at
    if event.source == "datadog":
        return parse_datadog(datadog_body(event, began), now)
    return parse_alertmanager(alertmanager_body(event, began, now))


def alertmanager_body(event: AlertEvent, began: datetime, now: datetime) -> bytes:
    alert = {
        "status": event.status,
        "labels": event.labels,
        "annotations": event.annotations,
        "startsAt": _rfc3339(began),
        "endsAt": _rfc3339(now) if event.status == "resolved" else _GO_ZERO,
        "generatorURL": "",
    }
    body = {
        "version": "4",
        "status": event.status,
        "receiver": "remediator",
        "groupKey": "{}:{}",
        "groupLabels": {},
        "commonLabels": event.labels,
        "commonAnnotations": event.annotations,
        "externalURL": "http://alertmanager.invalid",
        "alerts": [alert],
    }
    return json.dumps(body).encode()


def datadog_body(event: AlertEvent, began: datetime) -> bytes:
    """Tags carry the labels; $ALERT_CYCLE_KEY is stable for one episode (label set and
    start), as Datadog's is from Triggered to Recovered."""
    labels = dict(event.labels)
    name = labels.pop("alertname")
    fields = dict(event.annotations)
    transition = fields.pop(
        "transition", "Recovered" if event.status == "resolved" else "Triggered"
    )
    monitor = labels.pop("monitor_id", None) or str(int(_digest(name)[:8], 16))
    body = {
        "source": "datadog",
        "monitor_id": monitor,
        "cycle_key": _digest(f"{_key(event)}@{began.isoformat()}"),
        "transition": transition,
        "title": f"[{transition}] {name}",
        "alert_title": name,
        "tags": ",".join(f"{key}:{value}" for key, value in labels.items() if key != "host"),
        "date": str(int(began.timestamp() * 1000)),
        **fields,
    }
    if "host" in labels:
        body["hostname"] = labels["host"]
    if "priority" in labels:
        body["priority"] = labels["priority"]
    return json.dumps(body).encode()


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]

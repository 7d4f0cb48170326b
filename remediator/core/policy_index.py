"""PLACEHOLDER (brute force) until the indexed version lands; same API."""

from __future__ import annotations

from collections.abc import Sequence

from remediator.core.alert import Alert
from remediator.core.matchers import matches_all
from remediator.core.policy import Policy


class PolicyIndex:
    def __init__(self, policies: Sequence[Policy]) -> None:
        self.policies = tuple(policies)
        self.by_name = {p.name: p for p in self.policies}

    def concerned(self, alert: Alert) -> list[Policy]:
        return [
            p
            for p in self.policies
            if p.matches_source(alert.source) and matches_all(p.match.matchers, alert.labels)
        ]

    def matching(self, alert: Alert) -> list[Policy]:
        return [p for p in self.concerned(alert) if p.match.status == alert.status]

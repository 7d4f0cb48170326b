"""The rule set: the loaded policies (indexed) and the settings they are judged with, as one
immutable value. A reload builds a new one and swaps it in whole; a webhook takes the one in
force when it arrives and is decided by it to the end, so none sees half of a reload.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from itertools import count

from remediator.config import Config
from remediator.core.guards import Gates, Settings
from remediator.core.policy import Policy
from remediator.core.policy_index import PolicyIndex

_generations = count(1)


@dataclass(frozen=True, slots=True, eq=False)
class Ruleset:
    index: PolicyIndex
    settings: Settings
    dry_run: bool
    # Unique per rule set built in this process: what a cache of matches is valid for.
    generation: int

    @classmethod
    def of(cls, policies: Sequence[Policy], config: Config) -> Ruleset:
        return cls(
            PolicyIndex(policies), Settings.from_config(config), config.dry_run, next(_generations)
        )

    @property
    def policies(self) -> tuple[Policy, ...]:
        return self.index.policies

    @property
    def by_name(self) -> Mapping[str, Policy]:
        return self.index.by_name

    def gates(self, switches: Gates) -> Gates:
        """The switches as a decision under this rule set sees them: global dry run is part of
        the rule set (a reload may change it); the kill switch and breakers are the store's."""
        if switches.dry_run == self.dry_run:
            return switches
        return replace(switches, dry_run=self.dry_run)

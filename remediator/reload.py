"""Hot reload (SIGHUP, `POST /-/reload`): re-read the config file and every policy, validate
them as `serve` does at start, and only when all of it holds, swap the new rule set into the
running daemon in one step. On any problem the running set stays. Keys that cannot change
under a running daemon (listen, state, backends, auth...) keep their running value and are
reported as needing a restart: never half-applied.

Which keys changed and the config a reload puts in force are pure functions; the reading of
files, the swap and the cancellations are `Reloader`'s. The shared store is never changed by
a reload itself, only the pending approvals of a removed policy are cancelled.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Protocol

from pydantic import BaseModel

from remediator import log
from remediator.config import Config
from remediator.core.audit import OperatorEvent
from remediator.core.policy import Policy
from remediator.daemon import Daemon
from remediator.errors import ConfigError, PolicyError, RemediatorError, StoreError
from remediator.policy_files import load_policies, retention_problems

_log = log.get("remediator.reload")

# What a reload applies: the policies and what they are judged with. A section named with
# None is applied whole; with a tuple, only those keys of it. Every other key keeps its
# running value until a restart: the listener, the store, auth, the backends' addresses and
# the runner's slots are built once at start and used by requests and actions under way.
HOT: dict[str, tuple[str, ...] | None] = {
    "policies": None,
    "dry_run": None,
    "retention": None,
    "secrets": None,
    "http": None,  # http.secrets, the older spelling of `secrets`
    "drain_timeout": None,
    "limits": ("global_rate", "approval_ttl"),
    "slack": ("approvers",),
}


def changed_keys(old: BaseModel, new: BaseModel, prefix: str = "") -> list[str]:
    """Dotted names of the leaves that differ (names only: values may be secrets)."""
    found = []
    for name in type(old).model_fields:
        if name == "base_dir":  # the config file's folder, the same file
            continue
        before, after = getattr(old, name), getattr(new, name)
        if before == after:
            continue
        if isinstance(before, BaseModel) and isinstance(after, BaseModel):
            found.extend(changed_keys(before, after, f"{prefix}{name}."))
        else:
            found.append(f"{prefix}{name}")
    return found


def is_hot(key: str) -> bool:
    top, _, rest = key.partition(".")
    if top not in HOT:
        return False
    keys = HOT[top]
    return keys is None or rest.partition(".")[0] in keys


def needs_restart(running: Config, new: Config) -> list[str]:
    """The keys `new` changes that a reload does not apply."""
    return [key for key in changed_keys(running, new) if not is_hot(key)]


def in_force(running: Config, new: Config) -> Config:
    """The config a reload puts in force: `new`'s hot keys, every other key as it runs."""
    update: dict[str, Any] = {}
    for name in Config.model_fields:
        if name == "base_dir" or (name in HOT and HOT[name] is None):
            continue
        kept = getattr(running, name)
        hot = HOT.get(name)
        if hot is not None:  # a section of which only some keys are applied
            fields = type(kept).model_fields
            kept = getattr(new, name).model_copy(
                update={f: getattr(kept, f) for f in fields if f not in hot}
            )
        update[name] = kept
    return new.model_copy(update=update)


class ReloadRefusedError(RemediatorError):
    """The new config or a policy is invalid (`problems`, every one), or no reload can run
    now; the running set stays."""

    def __init__(self, problems: list[str], *, status: int = 400) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems
        self.status = status


class Backends(Protocol):
    """Builds what a policy set needs that the daemon lacks (app.LiveBackends)."""

    def prepare(self, config: Config, policies: list[Policy]) -> Callable[[], None]:
        """Raises ConfigError when a backend cannot be built; else returns how to install
        what was built (synchronous: part of the swap). Builders open nothing until used."""
        ...


@dataclass(frozen=True)
class Reloaded:
    policies: int
    added: list[str]
    removed: list[str]
    restart_required: list[str]
    cancelled_approvals: list[str] = field(default_factory=list)

    def to_api(self) -> dict[str, object]:
        return {"status": "applied", **asdict(self)}


@dataclass(frozen=True)
class _Plan:
    config: Config
    policies: list[Policy]
    install: Callable[[], None]
    restart: list[str]


class Reloader:
    """One reload at a time, by whoever asks; holds the config in force."""

    def __init__(
        self,
        daemon: Daemon,
        config: Config,
        load: Callable[[], Config],
        backends: Backends,
        *,
        slack_problem: Callable[[Config], str | None] = lambda _: None,
    ) -> None:
        """`load` reads the config file as `serve` did; `slack_problem` is serve's check of
        the slack block (it needs a restart to change, but an invalid one refuses a start)."""
        self.daemon = daemon
        self.config = config  # in force
        self._load = load
        self._backends = backends
        self._slack_problem = slack_problem
        self._lock = asyncio.Lock()  # one reload at a time (SIGHUP and the API may race)
        self._secrets = set(config.secret_values())
        self.draining = False

    async def reload(self, by: str) -> Reloaded:
        """Validate, then swap; `by` is who asked (`api:NAME`, `signal:SIGHUP`)."""
        async with self._lock:
            if self.draining:
                raise ReloadRefusedError(["shutting down: not reloading"], status=503)
            try:
                plan = self._plan()
            except ReloadRefusedError as exc:
                self.daemon.metrics.reload_successful.set(0)
                _log.error("config.reload_failed", by=by, problems=exc.problems)
                self._record(by, f"refused: {len(exc.problems)} problem(s)")
                raise
            before = set(self.daemon.intake.rules.by_name)
            # The swap: backends first, so the first webhook of the new set finds them. No
            # await until it is done: no other task runs between its steps.
            plan.install()
            removed = self.daemon.adopt(plan.policies, plan.config)
            self._secrets |= set(plan.config.secret_values())
            log.register_secrets(self._secrets)  # the old ones too: they may still be quoted
            self.config = plan.config
            self.daemon.metrics.reload_successful.set(1)
            self.daemon.metrics.reload_success_time.set_to_current_time()
            result = Reloaded(
                policies=len(plan.policies),
                added=sorted({p.name for p in plan.policies} - before),
                removed=removed,
                restart_required=plan.restart,
            )
            if plan.restart:
                _log.warning(
                    "config.restart_required",
                    by=by,
                    keys=plan.restart,
                    detail="these keys changed but keep their running value until a restart",
                )
            try:
                cancelled = await self.daemon.approvals.cancel_removed()
            except StoreError as exc:  # the sync loop retries each second
                _log.error("config.reload_cancel_failed", by=by, error=str(exc))
            else:
                result = replace(result, cancelled_approvals=cancelled)
            _log.info("config.reloaded", by=by, **asdict(result))
            self._record(
                by, f"applied: {result.policies} policies, +{len(result.added)} -{len(removed)}"
            )
            return result

    def _record(self, by: str, detail: str) -> None:
        """The operator-events journal keeps who reloaded, like every other operator act.
        Written in the background: a reload changes nothing in the store and must not wait
        for it (a store that is busy or down delays or loses only this record; the log line
        has it too). As the daemon's side work, a stop gives it time to finish before the
        store closes, rather than leaving it to fail against a closed store."""
        event = OperatorEvent(self.daemon.clock(), by, "reload", detail=detail)
        self.daemon.supervisor.spawn(self._write(event), "reload-journal")

    async def _write(self, event: OperatorEvent) -> None:
        try:
            await self.daemon.store.add_operator_event(event)
        except StoreError as exc:
            _log.error("config.reload_unrecorded", by=event.who, error=str(exc))

    def _plan(self) -> _Plan:
        """Everything `serve` checks at start, over the new files; every problem found."""
        try:
            new = self._load()
        except ConfigError as exc:
            raise ReloadRefusedError(str(exc).splitlines()) from None
        problems = []
        slack = self._slack_problem(new)
        if slack is not None:
            problems.append(slack)
        config = in_force(self.config, new)
        try:
            policies = load_policies(
                config.policy_paths(),
                must_exist=config.policies_configured,
                secrets=config.action_secrets(),
            )
        except PolicyError as exc:
            raise ReloadRefusedError(problems + exc.problems) from None
        problems += retention_problems(config.retention, config.limits.global_rate.window, policies)
        try:
            install = self._backends.prepare(config, policies)
        except ConfigError as exc:
            problems += str(exc).splitlines()
        if problems:
            raise ReloadRefusedError(problems)
        return _Plan(config, policies, install, needs_restart(self.config, new))

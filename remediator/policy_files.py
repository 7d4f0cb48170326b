"""Reads policy files and folders (`*.yaml`, `*.yml`, not recursive) into validated policies."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterable, Iterator
from datetime import timedelta
from pathlib import Path

from remediator.config import Config
from remediator.core.durations import format_duration
from remediator.core.job import secret_names
from remediator.core.policy import Policy, check_unique, parse_policies
from remediator.errors import ConfigError, PolicyError


def policy_files(paths: Iterable[Path], *, must_exist: bool) -> tuple[list[Path], list[str]]:
    files, problems = [], []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml")))
        elif path.is_file():
            files.append(path)
        elif must_exist:
            problems.append(f"{path}: policy ?: (file): no such file or folder")
    return files, problems


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Loading makes about a hundred objects per policy and keeps nearly all of them: the
    cyclic collector, started every 700 allocations, finds next to nothing to free but
    rescans the growing heap (and once the whole process): about 100 ms of the 0.6 s that
    5,000 policies take. Paused meanwhile; cycles loading left are collected afterwards."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def load_policies(
    paths: Iterable[Path], *, must_exist: bool = True, secrets: Iterable[str] | None = None
) -> list[Policy]:
    """All policies, or PolicyError listing every problem in every file.

    `must_exist=False` is for the built-in default `./policies`: absent means no policies,
    while a path an operator configured and mistyped is an error. `secrets`: the configured
    secret names; a `${secret:NAME}` naming another is a problem (None: not checked).
    """
    files, problems = policy_files(paths, must_exist=must_exist)
    located: list[tuple[str, Policy]] = []
    with _collector_paused():
        for file in files:
            try:
                text = file.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                problems.append(f"{file}: policy ?: (file): cannot read: {exc}")
                continue
            policies, found = parse_policies(text, str(file))
            problems.extend(found)
            located.extend((str(file), p) for p in policies)
    problems.extend(check_unique(located))
    if secrets is not None:
        known = frozenset(secrets)
        for file_name, policy in located:
            for name in sorted(secret_names(policy) - known):
                problems.append(
                    f"{file_name}: policy {policy.name}: action.params: ${{secret:{name}}} "
                    f"is not configured (config key `secrets`)"
                )
    if problems:
        raise PolicyError(problems)
    return [p for _, p in located]


def retention_problems(
    retention: timedelta, global_window: timedelta, policies: Iterable[Policy]
) -> list[str]:
    """Cooldowns and rate limits count action rows that a prune deletes after `retention`:
    a window longer than it would quietly forget what it must remember."""
    problems = []
    if global_window > retention:
        problems.append(
            f"retention ({format_duration(retention)}) is shorter than limits.global_rate's "
            f"window ({format_duration(global_window)})"
        )
    for policy in policies:
        guards = policy.guards
        windows = [("guards.cooldown", guards.cooldown)]
        if guards.rate_limit is not None:
            windows.append(("guards.rate_limit", guards.rate_limit.window))
        for field, window in windows:
            if window > retention:
                problems.append(
                    f"policy {policy.name}: {field}: {format_duration(window)} is longer than "
                    f"retention ({format_duration(retention)}); raise retention"
                )
    return problems


def load_configured(config: Config) -> list[Policy]:
    """The policies `config` names, checked against it: secrets it defines, windows its
    retention keeps. PolicyError or ConfigError list every problem."""
    policies = load_policies(
        config.policy_paths(),
        must_exist=config.policies_configured,
        secrets=config.action_secrets(),
    )
    too_long = retention_problems(config.retention, config.limits.global_rate.window, policies)
    if too_long:
        raise ConfigError("\n".join(too_long))
    return policies

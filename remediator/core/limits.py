"""Cooldown and sliding-window rate arithmetic over counts the store supplies. Pure."""

from __future__ import annotations

from datetime import datetime, timedelta

from remediator.core.durations import Rate, format_duration


def cooldown_reason(
    last_action_at: datetime | None, cooldown: timedelta, now: datetime
) -> str | None:
    """None when the (policy, target) may act; else why not, with the time left."""
    if last_action_at is None or cooldown <= timedelta(0):
        return None
    ends = last_action_at + cooldown
    if now >= ends:
        return None
    left = timedelta(seconds=int((ends - now).total_seconds()) + 1)
    return (
        f"cooldown {format_duration(cooldown)}: last action at {last_action_at.isoformat()}, "
        f"{format_duration(left)} left"
    )


def rate_reason(actions_in_window: int, rate: Rate | None, scope: str) -> str | None:
    """None when one more action stays within `rate`; `scope` names the limit in the reason."""
    if rate is None or actions_in_window < rate.count:
        return None
    return f"{scope} {rate}: {actions_in_window} actions in the last {format_duration(rate.window)}"

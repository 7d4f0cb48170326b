"""The `notify` kind: post a text to the configured Slack channel. It changes nothing else,
so its target is that channel ("slack") and it needs no allow_targets. Pure.

Its text is only posted, never has secrets filled in: an alert's `${` there is harmless, and
each alert value in it is escaped for Slack (core/render.compile_mrkdwn).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType

from remediator.core.kinds.base import ActionKind, Backend, Refusal, glob_scope
from remediator.core.render import Template, compile_mrkdwn

SLACK_TARGET = "slack"
# A channel id (C0123ABC) or name (#alerts-critical, as chat.postMessage takes them).
_CHANNEL = re.compile(r"^#?[a-z0-9][a-z0-9._-]{0,79}\Z|^[CGD][A-Z0-9]{6,}\Z")


class Notify(ActionKind):
    type = "notify"
    backend = Backend.NOTIFY
    allowed = frozenset({"text", "channel"})
    required = frozenset({"text"})
    scoped = False
    params_doc = MappingProxyType(
        {
            "text": "The message (a template; alert values are escaped for Slack).",
            "channel": "A Slack channel name or id, the policy's own (never a template); "
            "default: slack.channel.",
        }
    )

    def compile(self, source: str) -> Template:
        return compile_mrkdwn(source)

    def check_static(self, params: Mapping[str, Template]) -> None:
        """A text that compiled is a text that can be posted; a `channel` is the policy's
        own choice (never from an alert) and a Slack channel name or id."""
        channel = params.get("channel")
        if channel is None:
            return
        if "{" in channel.source:
            raise ValueError("channel is the policy's own, never a template")
        if not _CHANNEL.match(channel.source):
            raise ValueError(f"channel {channel.source!r} is not a Slack channel name or id")

    def target(self, params: Mapping[str, str]) -> str:
        return SLACK_TARGET  # the configured channel

    def scope(
        self, target: str, allow_targets: tuple[str, ...], protected: frozenset[str]
    ) -> Refusal | None:
        return glob_scope(target, allow_targets or (SLACK_TARGET,))


NOTIFY = Notify()

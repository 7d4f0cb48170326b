"""The Slack conversation: what remediator says (approval requests and their updates, trips,
action results) and the button clicks it hears. Posts run as side work, never inside a
request or a transaction; what a click may change is decided by the approvals part.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import TYPE_CHECKING, Any

from remediator import log
from remediator.actions.base import ActionRequest
from remediator.approvals import Approvals
from remediator.core.approval import Approval, ApprovalRefused
from remediator.core.mrkdwn import escape_mrkdwn
from remediator.core.outcomes import Outcome
from remediator.errors import SlackError, StoreError
from remediator.metrics import Metrics
from remediator.slack_messages import code_span, mention, request_message, status_line
from remediator.store.roles.store import Store

if TYPE_CHECKING:  # slack_sdk is imported only when Slack is configured (backends.build_slack)
    from remediator.slack import SlackApprover

_log = log.get("remediator.conversation")
# Side work under the supervisor: (coroutine, task name).
Spawn = Callable[[Coroutine[Any, Any, None], str], None]


class Conversation:
    """What remediator says in Slack. Without Slack configured, it says nothing."""

    def __init__(
        self,
        store: Store,
        slack: SlackApprover | None,
        clock: Callable[[], datetime],
        spawn: Spawn,
        *,
        post_results: bool = False,
    ) -> None:
        self._store = store
        self.slack = slack
        self._clock = clock
        self._spawn = spawn
        self._post_results = post_results

    def announce(self, approval: Approval) -> None:
        """Post an approval request (and remember its message), in the background."""
        if self.slack is not None:
            self._spawn(self._announce(approval), f"slack-announce-{approval.id}")

    def refresh(self, approval_id: str, outcome: str | None = None) -> None:
        """Show an approval's current state on its message, in the background."""
        if self.slack is not None:
            self._spawn(self._refresh(approval_id, outcome), f"slack-refresh-{approval_id}")

    def tripped(self, policy: str, reason: str) -> None:
        """A breaker opened here: say so, and how to reset it."""
        if self.slack is not None:
            text = (
                f":rotating_light: Policy `{policy}` tripped: {escape_mrkdwn(reason)}. "
                "It takes no action until "
                f"someone checks and resets it: `POST /api/v1/policies/{policy}/reset`"
            )
            self._spawn(self._say(text), f"slack-tripped-{policy}")

    async def tell(self, channel: str, user: str, text: str) -> None:
        """A message only `user` sees (the answer to a click)."""
        if self.slack is None:
            return
        try:
            await self.slack.ephemeral(channel, user, text)
        except SlackError as exc:
            _log.error("slack.ephemeral_failed", user=user, error=str(exc))

    async def finished(
        self, request: ActionRequest, outcome: str, reason: str, seconds: float
    ) -> None:
        """An action's result (the runner's on_finished): in its approval's thread, or the
        channel if post_results."""
        if self.slack is None:
            return
        mark = ":white_check_mark:" if outcome == Outcome.EXECUTED else ":x:"
        # Targets and reasons carry alert text: shown as text, never as Slack markup.
        text = (
            f"{mark} `{request.type}` on {code_span(request.target)} {outcome} in "
            f"{seconds:.1f}s: {escape_mrkdwn(reason)}"
        )
        try:
            approval = await self._store.approval_for_action(request.action_id)
            message = await self._store.approval_message(approval.id) if approval else None
            if message is not None:
                await self.slack.post(text, thread_ts=message[1])
            elif self._post_results:
                await self.slack.post(f"{text} (policy `{request.policy}`)")
        except (SlackError, StoreError) as exc:
            _log.error("slack.result_failed", action_id=request.action_id, error=str(exc))

    async def _say(self, text: str) -> None:
        assert self.slack is not None  # noqa: S101  # callers check
        try:
            await self.slack.post(text)
        except SlackError as exc:
            _log.error("slack.post_failed", error=str(exc))

    async def _announce(self, approval: Approval) -> None:
        assert self.slack is not None  # noqa: S101  # callers check
        try:
            context = await self._store.approval_context(approval.id)
            text, blocks = request_message(approval, context)
            channel, ts = await self.slack.post(text, blocks)
            await self._store.set_approval_message(approval.id, channel, ts)
        except (SlackError, StoreError) as exc:
            _log.error("approval.announce_failed", approval_id=approval.id, error=str(exc))
            return
        _log.info("approval.announced", approval_id=approval.id, channel=channel, ts=ts)

    async def _refresh(self, approval_id: str, outcome: str | None) -> None:
        """Who, when, what happened, on the approval's message."""
        assert self.slack is not None  # noqa: S101  # callers check
        try:
            message = await self._store.approval_message(approval_id)
            current = await self._store.approval(approval_id)
            if message is None or current is None:
                return
            context = await self._store.approval_context(approval_id)
            line = status_line(current, outcome, self._clock())
            text, blocks = request_message(current, context, line)
            await self.slack.update(*message, text, blocks)
        except (SlackError, StoreError) as exc:
            _log.error("approval.update_failed", approval_id=approval_id, error=str(exc))


class Clicks:
    """Button clicks on approval messages, verified by the web layer: handled after Slack got
    its 200, each answered in Slack when it changed nothing."""

    def __init__(
        self,
        conversation: Conversation,
        approvals: Approvals,
        store: Store,
        metrics: Metrics,
        clock: Callable[[], datetime],
        spawn: Spawn,
    ) -> None:
        self._conversation = conversation
        self._approvals = approvals
        self._store = store
        self._metrics = metrics
        self._clock = clock
        self._spawn = spawn

    @property
    def slack(self) -> SlackApprover | None:
        return self._conversation.slack

    def clicked(self, approval_id: str, user: str, *, approve: bool, channel: str) -> None:
        """Handle one verified click in the background; the request never waits for it."""
        work = self.slack_click(approval_id, user, approve=approve, channel=channel)
        self._spawn(work, f"slack-click-{approval_id}")

    async def slack_click(
        self, approval_id: str, user: str, *, approve: bool, channel: str
    ) -> None:
        if self.slack is None:
            return
        try:
            await self._click(approval_id, user, approve=approve, channel=channel)
        except StoreError as exc:  # nothing was committed: the click changed nothing
            _log.error("approval.click_failed", approval_id=approval_id, user=user, error=str(exc))
            await self._conversation.tell(
                channel,
                user,
                "remediator cannot reach its state store; nothing changed. Try again.",
            )

    async def _click(self, approval_id: str, user: str, *, approve: bool, channel: str) -> None:
        tell = self._conversation.tell
        current = await self._store.approval(approval_id)
        if current is None:
            await tell(channel, user, "This approval does not exist (any more); nothing changed.")
            return
        # In Slack an empty approver list means nobody: a button must never approve by itself.
        if user not in current.approvers:
            reason = f"{mention(user)} is not an approver of policy {current.policy}"
            await self._store.add_approval_event(
                approval_id, user, "refused", reason, self._clock()
            )
            self._metrics.approval_decisions.labels(current.policy, "refused").inc()
            _log.warning(
                "approval.refused", approval_id=approval_id, user=user, policy=current.policy
            )
            await tell(
                channel,
                user,
                f"You are not an approver of policy `{current.policy}`; nothing changed.",
            )
            return
        try:
            await self._approvals.decide_approval(approval_id, user, approve=approve)
        except ApprovalRefused as exc:
            await self._store.add_approval_event(
                approval_id, user, "click_refused", exc.reason, self._clock()
            )
            await tell(channel, user, f"Nothing changed: {escape_mrkdwn(exc.reason)}.")

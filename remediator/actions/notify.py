"""The `notify` action: posts its rendered text to the Slack channel (the configured one, or
the policy's `channel`), and nothing else.

The policy's own text is posted as written (it may mention `<!here>` on purpose); every alert
value rendered into it was escaped for mrkdwn by its template (core/render.compile_mrkdwn),
so an alert can never add a mention or a disguised link.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from remediator.actions.base import ActionRequest, ActionResult
from remediator.errors import ActionError, SlackError

if TYPE_CHECKING:  # slack_sdk is imported only when Slack is configured (backends.build_slack)
    from remediator.slack import SlackApprover


class NotifyExecutor:
    def __init__(self, slack: SlackApprover) -> None:
        self._slack = slack

    async def execute(self, request: ActionRequest) -> ActionResult:
        try:
            channel, ts = await self._slack.post(
                str(request.params["text"]), channel=request.params.get("channel")
            )
        except SlackError as exc:
            raise ActionError(str(exc)) from None
        return ActionResult(ok=True, detail=f"posted to {channel} (ts {ts})")

    async def probe(self) -> str | None:
        return None

    async def close(self) -> None:
        return None

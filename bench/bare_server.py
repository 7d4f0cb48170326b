"""A bare aiohttp webhook endpoint: the baseline the daemon's webhook throughput is compared to.

It does only what any Alertmanager receiver must (parse and validate the body, answer JSON),
served the way the daemon serves: one process, default event loop, access log off.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from typing import Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class AlertmanagerAlert(_Lenient):
    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: str  # noqa: N815  # wire names
    endsAt: str = ""  # noqa: N815
    generatorURL: str = ""  # noqa: N815
    fingerprint: str = ""


class AlertmanagerWebhook(_Lenient):
    version: str
    groupKey: str = ""  # noqa: N815
    truncatedAlerts: int = 0  # noqa: N815
    status: Literal["firing", "resolved"]
    receiver: str
    groupLabels: dict[str, str] = Field(default_factory=dict)  # noqa: N815
    commonLabels: dict[str, str] = Field(default_factory=dict)  # noqa: N815
    commonAnnotations: dict[str, str] = Field(default_factory=dict)  # noqa: N815
    externalURL: str = ""  # noqa: N815
    alerts: list[AlertmanagerAlert]


async def webhook(request: web.Request) -> web.Response:
    try:
        message = AlertmanagerWebhook.model_validate_json(await request.read())
    except ValidationError as exc:
        return web.json_response({"error": str(exc)}, status=400)
    return web.json_response({"alerts": len(message.alerts), "status": message.status})


async def readyz(_: web.Request) -> web.Response:
    return web.json_response({"status": "ready"})


async def serve(host: str, port: int) -> None:
    app = web.Application()
    app.router.add_post("/webhook/alertmanager", webhook)
    app.router.add_get("/readyz", readyz)
    # Same runner settings as remediator.app.run, so only the handlers differ.
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=10.0)
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await web.TCPSite(runner, host, port).start()
        await stop.wait()
    finally:
        await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    asyncio.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()

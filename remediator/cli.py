"""The `remediator` command: serve | check | simulate | approvals | test, and --version."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from remediator import __version__, advice, log
from remediator.config import Config, load_config
from remediator.errors import ConfigError, IngestError, PolicyError, StoreError
from remediator.ingest.alertmanager import parse_alertmanager
from remediator.ingest.datadog import parse_datadog
from remediator.policy_files import load_configured


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="remediator", description="Turns alert webhooks into guarded, audited remediation."
    )
    parser.add_argument("--version", action="version", version=f"remediator {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    def with_config(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--config",
            type=Path,
            default=None,
            help="config file (default ./remediator.yaml, else built-in defaults)",
        )

    serve = sub.add_parser("serve", help="run the daemon")
    with_config(serve)
    serve.add_argument(
        "--log-level",
        default=os.environ.get("REMEDIATOR_LOG_LEVEL", "info"),
        choices=["debug", "info", "warning", "error"],
    )
    check = sub.add_parser("check", help="validate the config and every policy")
    with_config(check)
    sim = sub.add_parser("simulate", help="decide a payload with no side effects")
    with_config(sim)
    sim.add_argument("payload", type=Path)
    sim.add_argument("--source", choices=["alertmanager", "datadog"], default="alertmanager")
    sim.add_argument("--json", action="store_true", help="machine-readable output")
    sub.add_parser("schema", help="print the JSON Schema of a policy (for editors and CI)")
    appr = sub.add_parser("approvals", help="list, approve or deny pending approvals")
    appr.add_argument("verb", choices=["list", "approve", "deny"])
    appr.add_argument("id", nargs="?")
    appr.add_argument("--url", default=os.environ.get("REMEDIATOR_URL", "http://127.0.0.1:9595"))
    appr.add_argument(
        "--token",
        default=os.environ.get("REMEDIATOR_API_TOKEN"),
        help="API bearer token (or REMEDIATOR_API_TOKEN)",
    )
    appr.add_argument(
        "--by",
        default=os.environ.get("USER", "cli"),
        help="a note recorded with the decision; the approver is the token's identity",
    )
    policy_test = sub.add_parser("test", help="run policy test files (like promtool test rules)")
    policy_test.add_argument("files", type=Path, nargs="+", metavar="FILE")
    return parser


def _load(config_path: Path | None) -> tuple[Config, list[Any]]:
    """For `check` and `simulate`, which need no secret values: an unset `${VAR}` or an
    unreadable secret file is a note on stderr, not an error (`serve` refuses it)."""
    unset: list[str] = []
    try:
        config = load_config(config_path, unset=unset)
    finally:
        for line in unset:
            print(f"note: {line} (checked without it; serve refuses it)", file=sys.stderr)
    policies = load_configured(config)
    return config, policies


def _check(args: argparse.Namespace) -> int:
    try:
        config, policies = _load(args.config)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    except PolicyError as exc:
        for line in exc.problems:
            print(line, file=sys.stderr)
        return 1
    for line in advice.warnings(config, policies):
        print(f"warning: {line}", file=sys.stderr)
    where = ", ".join(str(p) for p in config.policy_paths())
    print(f"ok: config valid, {len(policies)} policies from {where}")
    return 0


def _simulate(args: argparse.Namespace) -> int:
    from remediator.app import utcnow  # noqa: PLC0415  # keeps `check` free of server imports
    from remediator.simulate import format_report, simulate, state_path  # noqa: PLC0415

    try:
        config, policies = _load(args.config)
        body = args.payload.read_bytes()
        now = utcnow()
        alerts = (
            parse_alertmanager(body) if args.source == "alertmanager" else parse_datadog(body, now)
        )
        report = asyncio.run(simulate(config, policies, alerts, now, state_path(config)))
    except (ConfigError, StoreError) as exc:
        print(exc, file=sys.stderr)
        return 1
    except PolicyError as exc:
        print("\n".join(exc.problems), file=sys.stderr)
        return 1
    except IngestError as exc:
        print(f"{args.payload}: {exc.reason}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"{args.payload}: {exc.strerror}", file=sys.stderr)
        return 1
    print(json.dumps(report, indent=2, ensure_ascii=False) if args.json else format_report(report))
    return 0


def _schema(_: argparse.Namespace) -> int:
    from remediator.schema import policy_schema  # noqa: PLC0415  # only this command needs it

    print(json.dumps(policy_schema(), indent=2))
    return 0


def _approvals(args: argparse.Namespace) -> int:
    base = args.url.rstrip("/")
    headers = {"Content-Type": "application/json"}
    if args.token:
        headers["Authorization"] = f"Bearer {args.token}"
    if not base.startswith(("http://", "https://")):
        print("error: --url must be http:// or https://", file=sys.stderr)
        return 2
    # S310 below: the scheme was checked just above.
    if args.verb == "list":
        request = urllib.request.Request(f"{base}/api/v1/approvals", headers=headers)  # noqa: S310
    else:
        if not args.id:
            print(f"error: approvals {args.verb} needs an approval ID", file=sys.stderr)
            return 2
        body = json.dumps({"by": args.by}).encode()
        request = urllib.request.Request(  # noqa: S310
            f"{base}/api/v1/approvals/{args.id}/{args.verb}",
            data=body,
            headers=headers,
            method="POST",
        )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310  # scheme checked above
            print(json.dumps(json.loads(response.read()), indent=2))
            return 0
    except urllib.error.HTTPError as exc:
        print(f"error: HTTP {exc.code}: {exc.read().decode(errors='replace')}", file=sys.stderr)
    except urllib.error.URLError as exc:
        print(f"error: cannot reach {base}: {exc.reason}", file=sys.stderr)
    return 1


def _serve(args: argparse.Namespace) -> int:
    from remediator.app import run  # noqa: PLC0415  # aiohttp and docker only when serving

    log.configure(args.log_level)
    logger = log.get("remediator.cli")
    try:
        config = load_config(args.config)
        asyncio.run(run(config, path=args.config))
    except ConfigError as exc:
        # Exit 2, a usage error, before anything listens: an orchestrator shows it at once.
        logger.error("config.invalid", error=str(exc))
        print(exc, file=sys.stderr)
        return 2
    except PolicyError as exc:
        logger.error("policies.invalid", problems=exc.problems)
        print("\n".join(exc.problems), file=sys.stderr)
        return 2
    except StoreError as exc:
        logger.error("store.unavailable", error=str(exc))
        return 1
    except OSError as exc:
        logger.error("daemon.start_failed", error=str(exc))
        return 1
    return 0


def _test(args: argparse.Namespace) -> int:
    from remediator.policytest import run_files  # noqa: PLC0415  # the daemon's parts: only here

    log.configure("error")  # the daemon's own log lines would bury PASS and FAIL
    return run_files(args.files, sys.stdout, sys.stderr)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    handlers = {
        "serve": _serve,
        "check": _check,
        "simulate": _simulate,
        "approvals": _approvals,
        "schema": _schema,
        "test": _test,
    }
    return handlers[args.command](args)


if __name__ == "__main__":
    sys.exit(main())

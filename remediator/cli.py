"""The `remediator` command: serve | check | simulate | schema | test, the API commands of
remote.py (approvals | pause | resume | reset), and --version."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

from remediator import __version__, advice, log, remote
from remediator.config import Config
from remediator.config_file import load_config
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
    remote.add_commands(sub)
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
        "schema": _schema,
        "test": _test,
    }
    handlers.update(dict.fromkeys(remote.COMMANDS, remote.run))
    return handlers[args.command](args)


if __name__ == "__main__":
    sys.exit(main())

"""The commands that talk to a running daemon's API: `approvals`, `pause`, `resume`, `reset`.

One HTTP path for all of them. The token comes from a file (`--token-file`) or the
environment (`REMEDIATOR_API_TOKEN`), so it never stands in a shell history or `ps`; it is
never printed. Exit codes: 0 done, 1 the daemon refused or failed (an HTTP error, which is
printed), 2 a usage error (bad URL, unreadable token file, bad name), 3 the daemon could not
be reached.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

OK, REFUSED, USAGE, UNREACHABLE = 0, 1, 2, 3
TOKEN_ENV = "REMEDIATOR_API_TOKEN"  # noqa: S105  # the variable's name, not a token
_POLICY_NAME = re.compile(r"[a-z0-9-]+")
_TOKEN_TEXT = re.compile(r"[\x21-\x7e]+")  # what a bearer header can carry as is


class UsageError(Exception):
    """The command line cannot work as given: exit 2 with this message."""


def add_commands(sub: Any) -> None:
    """The parsers of `approvals`, `pause`, `resume` and `reset` (sub: add_subparsers())."""
    appr = sub.add_parser("approvals", help="list, approve or deny pending approvals")
    appr.add_argument("verb", choices=["list", "approve", "deny"])
    appr.add_argument("id", nargs="?")
    _connection(appr)
    appr.add_argument(
        "--token", default=None, help=f"API bearer token (better: {TOKEN_ENV} or --token-file)"
    )
    appr.add_argument(
        "--by",
        default=os.environ.get("USER", "cli"),
        help="a note recorded with the decision; the approver is the token's identity",
    )
    for name, what in (
        ("pause", "kill switch: hold every action until resumed"),
        ("resume", "lift the kill switch"),
    ):
        _connection(sub.add_parser(name, help=what))
    reset = sub.add_parser("reset", help="close a policy's tripped circuit breaker")
    reset.add_argument("policy")
    reset.add_argument(
        "--limits", action="store_true", help="also clear the policy's cooldowns and rate window"
    )
    _connection(reset)


def _connection(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url",
        default=os.environ.get("REMEDIATOR_URL", "http://127.0.0.1:9595"),
        help="the daemon's address (default $REMEDIATOR_URL, else http://127.0.0.1:9595)",
    )
    parser.add_argument(
        "--token-file", type=Path, default=None, help=f"file holding the API token (or {TOKEN_ENV})"
    )


def _token(args: argparse.Namespace) -> str | None:
    """The API token: --token (approvals only), else --token-file, else the environment."""
    given: str | None = getattr(args, "token", None)
    if given is None and args.token_file is not None:
        try:
            given = args.token_file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise UsageError(f"cannot read token file {args.token_file}: {reason}") from None
        if not given:
            raise UsageError(f"token file {args.token_file} is empty")
    if given is None:
        given = os.environ.get(TOKEN_ENV) or None
    if given is not None and not _TOKEN_TEXT.fullmatch(given):
        raise UsageError("the API token has characters an HTTP header cannot carry")
    return given


def _shown(url: str) -> str:
    """The URL as it may be printed: without userinfo."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[-1]))


def call(args: argparse.Namespace, method: str, path: str, body: Any = None) -> int:
    """One request to the daemon; its JSON answer on stdout, or a clear error on stderr."""
    base = args.url.rstrip("/")
    if not base.startswith(("http://", "https://")):
        raise UsageError("--url must be http:// or https://")
    token = _token(args)
    headers = {"Accept": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    # S310: the scheme was checked just above.
    request = urllib.request.Request(base + path, data=data, headers=headers, method=method)  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            print(json.dumps(json.loads(response.read() or b"{}"), indent=2))
            return OK
    except urllib.error.HTTPError as exc:
        print(_refusal(exc, method, path, token is not None), file=sys.stderr)
        return REFUSED
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", None) or exc
        print(
            f"error: cannot reach {_shown(base)}: {reason} "
            "(is `remediator serve` running there? see --url)",
            file=sys.stderr,
        )
        return UNREACHABLE


def _refusal(exc: urllib.error.HTTPError, method: str, path: str, had_token: bool) -> str:
    raw = exc.read().decode(errors="replace")
    try:
        said = str(json.loads(raw).get("error", raw))
    except (ValueError, AttributeError):
        said = raw.strip()[:300]
    line = f"error: HTTP {exc.code} for {method} {path}: {said}"
    if exc.code == 401:
        hint = f"set {TOKEN_ENV} or --token-file" if not had_token else "check the token"
        line += f" ({'no API token was given; ' if not had_token else ''}{hint})"
    return line


def _approvals(args: argparse.Namespace) -> int:
    if args.verb == "list":
        return call(args, "GET", "/api/v1/approvals")
    if not args.id:
        raise UsageError(f"approvals {args.verb} needs an approval ID")
    path = f"/api/v1/approvals/{quote(args.id, safe='')}/{args.verb}"
    return call(args, "POST", path, {"by": args.by})


def _pause(args: argparse.Namespace) -> int:
    return call(args, "POST", "/api/v1/pause")


def _resume(args: argparse.Namespace) -> int:
    return call(args, "POST", "/api/v1/resume")


def _reset(args: argparse.Namespace) -> int:
    if not _POLICY_NAME.fullmatch(args.policy):
        raise UsageError(f"{args.policy!r} is not a policy name ([a-z0-9-]+)")
    body = {"limits": True} if args.limits else None
    return call(args, "POST", f"/api/v1/policies/{args.policy}/reset", body)


def run(args: argparse.Namespace) -> int:
    """The command's exit code; a usage error is printed and exits 2."""
    handler = {"approvals": _approvals, "pause": _pause, "resume": _resume, "reset": _reset}
    try:
        return handler[args.command](args)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return USAGE


COMMANDS = ("approvals", "pause", "resume", "reset")

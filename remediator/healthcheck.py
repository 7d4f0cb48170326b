"""The image's HEALTHCHECK: GET /readyz on the address the config's `listen` names; exit 0 on
200, 1 otherwise. It reads only that one key with stdlib and PyYAML: importing
remediator.config (pydantic) would cost most of a second of CPU at every check."""

from __future__ import annotations

import argparse
import sys
import urllib.error
import urllib.request
from pathlib import Path

import yaml

DEFAULT_CONFIG = Path("/etc/remediator/remediator.yaml")
DEFAULT_LISTEN = "127.0.0.1:9595"  # Config.listen's default
# A wildcard address is not one a client can connect to; its loopback is.
_WILDCARDS = {"0.0.0.0": "127.0.0.1", "::": "::1"}  # noqa: S104


def probe_url(listen: str, path: str = "/readyz") -> str:
    """`http://HOST:PORT/PATH` for a valid `listen` value, a wildcard host replaced by
    loopback."""
    # addresses.parse_listen's split (tests/unit/test_healthcheck.py keeps the two equal).
    host, _, port = listen.rpartition(":")
    host = host.strip("[]") or "0.0.0.0"  # noqa: S104  # ":9595" means all interfaces
    host = _WILDCARDS.get(host, host)
    return f"http://[{host}]:{port}{path}" if ":" in host else f"http://{host}:{port}{path}"


def listen_of(config: Path) -> str:
    """The config file's `listen`, or the default when the file or the key is absent."""
    try:
        data = yaml.safe_load(config.read_text())
    except FileNotFoundError:
        return DEFAULT_LISTEN
    listen = data.get("listen") if isinstance(data, dict) else None
    return str(listen) if listen else DEFAULT_LISTEN


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m remediator.healthcheck")
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    parser.add_argument("--path", default="/readyz")
    parser.add_argument("--timeout", type=float, default=3.0)
    args = parser.parse_args(argv)
    url = probe_url(listen_of(args.config), args.path)
    try:
        with urllib.request.urlopen(url, timeout=args.timeout) as answer:  # noqa: S310  # built above: http on our own listen address
            ready = answer.status == 200
    except urllib.error.HTTPError as exc:  # an answer, not 200: it holds the open response
        exc.close()
        print(f"{url}: {exc.code}", file=sys.stderr)
        return 1
    except (urllib.error.URLError, OSError) as exc:
        print(f"{url}: {exc}", file=sys.stderr)
        return 1
    return 0 if ready else 1


if __name__ == "__main__":
    sys.exit(main())

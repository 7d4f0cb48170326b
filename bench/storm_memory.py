"""Resident memory of the daemon in a storm of distinct alerts: it must stay flat once the
bounded caches are full (issue: unbounded growth). Prints RSS after each step of the storm.

Every alert is a new label set, so none is a repeat; none matches a policy, so the store
keeps nothing and only the in-memory caches could grow. `make bench` runs it after the
throughput bench; `python bench/storm_memory.py --alerts 200000` runs a longer storm.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from bench.webhook_bench import (
    BenchError,
    daemon_config,
    free_port,
    policies_yaml,
    post,
    rss_mib,
    running,
    wait_ready,
)

BATCH = 200  # alerts per webhook body, as a busy Alertmanager group sends them


def storm_body(start: int) -> bytes:
    alerts = [
        {
            "labels": {"alertname": "StormNoise", "instance": f"host-{n}:9100", "job": "node"},
            "annotations": {"summary": f"noise {n}"},
            "startsAt": "2026-11-22T10:00:00Z",
        }
        for n in range(start, start + BATCH)
    ]
    return json.dumps({"version": "4", "status": "firing", "alerts": alerts}).encode()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--alerts", type=int, default=150_000)
    parser.add_argument("--steps", type=int, default=6)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="remediator-storm-") as tmp:
        work = Path(tmp)
        (work / "policies").mkdir()
        (work / "policies" / "bench.yaml").write_text(policies_yaml(20, 3))
        port = free_port()
        (work / "remediator.yaml").write_text(daemon_config(port))
        base = f"http://127.0.0.1:{port}"
        argv_ = [sys.executable, "-m", "remediator", "serve", "--config", "remediator.yaml"]
        with running(argv_, work, work / "daemon.log") as proc:
            wait_ready(f"{base}/readyz", proc, work / "daemon.log")
            print(f"storm of {args.alerts:,} distinct alerts, {BATCH} per body, none matching")
            print(f"{'alerts':>9}  {'RSS':>9}")
            print(f"{0:>9,}  {rss_mib(proc.pid):>5.1f} MiB")
            sent, step = 0, args.alerts // args.steps
            for target in range(step, args.alerts + 1, step):
                while sent < target:
                    post(f"{base}/webhook/alertmanager", storm_body(sent))
                    sent += BATCH
                print(f"{sent:>9,}  {rss_mib(proc.pid):>5.1f} MiB")
            db = work / "state.db"
            print(f"state file: {db.stat().st_size / 1024:.0f} KiB (no rows for unmatched alerts)")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)

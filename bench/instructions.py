"""Instructions the daemon executes per request (repeat) or per alert (storm), counted by
valgrind's callgrind: a figure that does not move with the machine's speed.

`make bench` measures rates beside a bare endpoint, and on a shared 2-core machine whose
speed moves 2-3x within an hour its ratios move by more than most single changes are worth.
An instruction count does not depend on the machine's speed (hash seed fixed, the same
requests in the same order), so two trees can be compared on any machine:

    .venv/bin/python bench/instructions.py --tree /path/to/old --tree . [--bare]

What still moves it is the daemon's clock-driven work, counted with the requests: the 1 s
loops (repeat counts flushed, switches synced) and the backend probe every 15 s, which
lands in some runs and not others (one run in four measured 13% more). Each tree is
therefore measured `--runs` times, interleaved, and the median reported with every run.

Each tree's daemon runs under callgrind with instrumentation off through its start; a few
unmeasured requests warm it (caches, compiled templates, the repeat's settled episode), then
instrumentation is switched on for exactly the measured requests, sent one at a time by one
client, and the counts dumped. The count covers every thread of the daemon (the event loop
and SQLite's), not the client. It is not the cost in time: a cache miss or a system call
costs more than its instructions, and a daemon runs ~50x slower under valgrind. Needs
valgrind (`apt-get install valgrind`).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from bench.storm import DRY_RUN_CONFIG, storm_body, storm_policies
from bench.webhook_bench import (
    BARE_SERVER,
    HEADERS,
    WEBHOOK_PATH,
    BenchError,
    alert_body,
    daemon_config,
    free_port,
    policies_yaml,
    running,
)

READY_DEADLINE = 600.0  # a start under valgrind takes tens of seconds
WARM = 20
MATCHING = 3  # the repeat bench's policies matching its alert


def bodies(mode: str, batch: int, count: int) -> Iterator[bytes]:
    """`count` bodies: the same repeat, or distinct storm alerts `batch` to a body."""
    for n in range(count):
        yield alert_body() if mode == "repeat" else storm_body(9, n * batch, batch)


def _ready(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + READY_DEADLINE
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"daemon exited with {proc.returncode} before ready")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/readyz")
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise BenchError(f"not ready after {READY_DEADLINE:g}s under valgrind")


def _callgrind(pid: int, *flags: str) -> None:
    subprocess.run(["callgrind_control", *flags, str(pid)], check=True, capture_output=True)


def _dumped(work: Path) -> int:
    """Instructions in the dump taken after the measured requests (not the start, which
    instrumentation skipped, nor the shutdown, written at exit)."""
    total = 0
    for path in work.glob("callgrind.*"):
        text = path.read_text(errors="replace")
        if "Trigger: dump" in text:
            total += sum(
                int(line.split()[1]) for line in text.splitlines() if line.startswith("summary:")
            )
    if not total:
        raise BenchError(f"no callgrind dump with counts in {work}")
    return total


@contextlib.contextmanager
def _workdir() -> Iterator[Path]:
    """A temporary directory; INSTRUCTIONS_KEEP=DIR keeps it (for callgrind_annotate) in DIR."""
    keep = os.environ.get("INSTRUCTIONS_KEEP")
    if keep:
        yield Path(tempfile.mkdtemp(dir=keep))
        return
    with tempfile.TemporaryDirectory() as tmp:
        yield Path(tmp)


def _serve(work: Path, port: int, mode: str) -> list[str]:
    """The daemon's command line, its config and policies written in `work`."""
    (work / "policies").mkdir()
    if mode == "repeat":
        (work / "policies" / "bench.yaml").write_text(policies_yaml(20, MATCHING))
        config = daemon_config(port)
    else:
        (work / "policies" / "storm.yaml").write_text(storm_policies(20))
        config = daemon_config(port) + DRY_RUN_CONFIG
    (work / "remediator.yaml").write_text(config)
    return ["-m", "remediator", "serve", "--config", "remediator.yaml", "--log-level", "warning"]


def measure(tree: Path | None, mode: str, batch: int, requests: int) -> float:
    """Instructions per request (repeat) or per alert (storm) of the daemon in `tree`, or
    (None) of the bare endpoint the benches compare it to."""
    with _workdir() as work:
        port = free_port()
        served = (
            [str(BARE_SERVER), "--port", str(port)] if tree is None else _serve(work, port, mode)
        )
        argv = [
            "valgrind",
            "--tool=callgrind",
            "--instr-atstart=no",
            f"--callgrind-out-file={work}/callgrind.%p",
            sys.executable,
            *served,
        ]
        env = {**os.environ, "PYTHONHASHSEED": "0"}
        if tree is not None:
            env["PYTHONPATH"] = str(tree)
        with running(argv, work, work / "daemon.log", env) as proc:
            _ready(port, proc)
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
            sent = bodies(mode, batch, WARM + requests)
            for n, body in enumerate(sent):
                if n == WARM:
                    _callgrind(proc.pid, "--instr=on")
                    began = time.monotonic()
                conn.request("POST", WEBHOOK_PATH, body=body, headers=HEADERS)
                response = conn.getresponse()
                response.read()
                if response.status != 200:
                    raise BenchError(f"POST {WEBHOOK_PATH}: HTTP {response.status}")
            _callgrind(proc.pid, "--dump")
            if os.environ.get("INSTRUCTIONS_DEBUG"):
                print(f"  measured window {time.monotonic() - began:.1f} s", file=sys.stderr)
        return _dumped(work) / (requests * (batch if mode == "storm" else 1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--mode", choices=("repeat", "storm"), default="repeat")
    parser.add_argument("--batch", type=int, default=100, help="alerts per storm body")
    parser.add_argument("--requests", type=int, default=0, help="measured requests")
    parser.add_argument(
        "--tree", type=Path, action="append", help="source tree to measure (repeatable)"
    )
    parser.add_argument("--runs", type=int, default=3, help="runs per tree (the median)")
    parser.add_argument(
        "--bare", action="store_true", help="also the bare endpoint the benches compare to"
    )
    args = parser.parse_args(argv)
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        print("valgrind is not installed: apt-get install valgrind", file=sys.stderr)
        return 2
    requests = args.requests or (300 if args.mode == "repeat" or args.batch == 1 else 40)
    unit = "request" if args.mode == "repeat" else "alert"
    trees: list[Path | None] = [t.resolve() for t in args.tree or [Path(__file__).parent.parent]]
    if args.bare:
        trees.append(None)
    what = args.mode if args.mode == "repeat" else f"storm of {args.batch}-alert bodies"
    counts: dict[Path | None, list[float]] = {tree: [] for tree in trees}
    for _ in range(args.runs):  # interleaved, as the trees' runs should meet the same machine
        for tree in trees:
            try:
                counts[tree].append(measure(tree, args.mode, args.batch, requests))
            except BenchError as exc:
                print(f"{tree or 'bare endpoint'}: {exc}", file=sys.stderr)
                return 1
    for tree, found in counts.items():
        runs = ", ".join(f"{c / 1000:,.1f}k" for c in found)
        print(
            f"{tree or 'bare endpoint'}: {statistics.median(found) / 1000:,.1f}k instructions"
            f" per {unit}, median of {len(found)} ({runs}; {what}, {requests} measured)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

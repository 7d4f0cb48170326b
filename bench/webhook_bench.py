"""Webhook throughput: the daemon answering repeats of a known firing alert, against a bare
aiohttp endpoint that only parses the same body, both driven by wrk on loopback.

The daemon runs twice: on its SQLite store (`daemon`) and on a PostgreSQL store (`daemon-pg`)
in a throwaway server from tests/fixtures/postgres.py. That module is imported from the repo
root, which the project's editable install (`make`) puts on sys.path. Without PostgreSQL
installed the PostgreSQL run is skipped, said so, and the SQLite figures still stand.
The bare endpoint runs beside each daemon and the two are measured in turn, `--rounds`
times; the ratio is the median of the rounds' ratios.

Run `.venv/bin/python bench/webhook_bench.py [--duration 5] [--rounds 3] [--connections 16]
[--json]`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pwd
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

from tests.fixtures.postgres import Postgres, _bin_dir, _remove

TOKEN = "bench-token"
TARGET_RATIO = 0.7  # issue 12: repeat ingest stays >= 0.7x the bare endpoint
READY_DEADLINE = 30.0
STOP_DEADLINE = 15.0
WEBHOOK_PATH = "/webhook/alertmanager"
HEADERS = {"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"}
BARE_SERVER = Path(__file__).resolve().with_name("bare_server.py")

_LATENCY_UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}
_PERCENTILE = re.compile(r"^\s*(\d+(?:\.\d+)?)%\s+([\d.]+)(us|ms|s|m|h)\s*$", re.MULTILINE)
_RATE = re.compile(r"^Requests/sec:\s+([\d.]+)", re.MULTILINE)
_TOTAL = re.compile(r"^\s*(\d+) requests in", re.MULTILINE)
_NON_2XX = re.compile(r"Non-2xx or 3xx responses:\s*(\d+)")
_SOCKET_ERRORS = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")


class BenchError(Exception):
    """The run cannot produce a trustworthy number; the message says why."""


class PostgresMissingError(Exception):
    """PostgreSQL is not installed: the PostgreSQL run is skipped, not failed."""


@dataclass(frozen=True)
class Result:
    target: str
    requests_per_s: float
    requests: int
    p50_ms: float
    p99_ms: float
    rss_mib: float


# --- inputs ------------------------------------------------------------------------------


def alert_body() -> bytes:
    """One firing ContainerDown alert, shaped as Alertmanager's webhook notifier sends v4."""
    labels = {
        "alertname": "ContainerDown",
        "container": "web-1",
        "instance": "node-1:9323",
        "job": "cadvisor",
        "service": "web",
        "severity": "critical",
    }
    annotations = {
        "description": "Container web-1 on node-1 has not been seen by cadvisor for 2 minutes.",
        "runbook_url": "docs/runbooks/containers.md#containerdown",
        "summary": "Container web-1 is down",
    }
    group = {"alertname": "ContainerDown", "service": "web"}
    message = {
        "receiver": "remediator",
        "status": "firing",
        "alerts": [
            {
                "status": "firing",
                "labels": labels,
                "annotations": annotations,
                "startsAt": "2026-05-17T21:38:10.483215961Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus:9090/graph?g0.expr=up%7Bjob%3D%22cadvisor%22%7D"
                "+%3D%3D+0&g0.tab=1",
                "fingerprint": "5b1c0e0a9c6f7d21",
            }
        ],
        "notification_reason": "first notification",
        "groupLabels": group,
        "commonLabels": labels,
        "commonAnnotations": annotations,
        "externalURL": "http://alertmanager:9093",
        "version": "4",
        "groupKey": '{}:{alertname="ContainerDown", service="web"}',
        "truncatedAlerts": 0,
    }
    # Compact and HTML-escaped, as Go's encoding/json writes it on the wire.
    wire = json.dumps(message, separators=(",", ":"), ensure_ascii=False)
    for char, escape in (("&", "\\u0026"), ("<", "\\u003c"), (">", "\\u003e")):
        wire = wire.replace(char, escape)
    return wire.encode()


def policies_yaml(count: int, matching: int) -> str:
    """`count` docker.restart policies of which `matching` (spread through the list) match
    the bench alert; the others fail on alertname or on a service regex, so the match stage
    pays for both kinds of miss."""
    hits = {round(k * count / matching) for k in range(matching)} if matching else set()
    documents = []
    for index in range(count):
        if index in hits:
            name = f"restart-web-{index}"
            matchers = ['alertname="ContainerDown"', 'service=~"web|api"']
        elif index % 2:
            name = f"restart-worker-{index}"
            matchers = ['alertname="ContainerDown"', f'service=~"worker-{index}|queue"']
        else:
            name = f"restart-disk-{index}"
            matchers = [f'alertname="DiskFull{index}"', 'service=~"web|api"']
        documents.append(
            "\n".join(
                [
                    f"name: {name}",
                    "match:",
                    "  source: alertmanager",
                    f"  matchers: {json.dumps(matchers)}",
                    "action:",
                    "  type: docker.restart",
                    '  params: {container: "{{ labels.container }}", timeout: 1s}',
                    '  allow_targets: ["web-*"]',
                    'guards: {cooldown: 10m, rate_limit: "3/1h", dry_run: true}',
                ]
            )
        )
    return "\n---\n".join(documents) + "\n"


def daemon_config(port: int, state: str = "sqlite:///./state.db") -> str:
    return "\n".join(
        [
            f'listen: "127.0.0.1:{port}"',
            f'state: "{state}"',
            'policies: ["./policies"]',
            "auth:",
            f'  alertmanager: {{bearer_token: "{TOKEN}"}}',
            "",
        ]
    )


def lua_string(data: bytes) -> str:
    # Decimal escapes for every byte outside printable ASCII: LuaJIT lacks \u, and three
    # digits stop a following digit from being read as part of the escape.
    chars = (chr(b) if 0x20 <= b < 0x7F and b not in (0x22, 0x5C) else f"\\{b:03d}" for b in data)
    return '"' + "".join(chars) + '"'


def wrk_script(body: bytes, headers: Mapping[str, str]) -> str:
    lines = ['wrk.method = "POST"', f"wrk.body = {lua_string(body)}"]
    lines += [
        f"wrk.headers[{lua_string(k.encode())}] = {lua_string(v.encode())}"
        for k, v in headers.items()
    ]
    return "\n".join(lines) + "\n"


# --- processes ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def log_tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no output)"


def stop(proc: subprocess.Popen[bytes]) -> int:
    """SIGTERM, then SIGKILL if it outlives the deadline; the exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=STOP_DEADLINE)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


@contextlib.contextmanager
def running(
    argv: list[str], cwd: Path, log: Path, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        yield proc
    finally:
        code = stop(proc)
        if code not in (0, -signal.SIGTERM):
            print(f"warning: {argv[0]} exited with {code} on SIGTERM:", file=sys.stderr)
            print(log_tail(log), file=sys.stderr)


def wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + READY_DEADLINE
    while True:
        if proc.poll() is not None:
            raise BenchError(
                f"{url}: server exited with {proc.returncode} before ready:\n{log_tail(log)}"
            )
        try:
            with urllib.request.urlopen(url, timeout=1.0) as response:  # noqa: S310  # loopback http URL built here
                if response.status == 200:
                    return
        except OSError:
            pass  # not listening yet, or 503 while the store opens
        if time.monotonic() >= deadline:
            raise BenchError(f"{url}: not ready after {READY_DEADLINE:g}s:\n{log_tail(log)}")
        time.sleep(0.05)


def post(url: str, body: bytes) -> Any:
    # Loopback http URLs built in this module; never a caller's scheme.
    request = urllib.request.Request(url, data=body, headers=HEADERS, method="POST")  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=10.0) as response:  # noqa: S310
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")
        raise BenchError(f"POST {url}: HTTP {exc.code}: {detail}") from None
    except urllib.error.URLError as exc:
        raise BenchError(f"POST {url}: {exc.reason}") from None


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise BenchError(f"/proc/{pid}/status has no VmRSS line")


# --- load --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Load:
    threads: int
    connections: int
    duration: int
    warmup: int
    script: Path
    timeout: int | None = None  # wrk's --timeout in seconds (wrk's own default: 2)


def wrk(url: str, load: Load, seconds: int) -> str:
    argv = [
        "wrk",
        f"-t{load.threads}",
        f"-c{load.connections}",
        f"-d{seconds}s",
        "--latency",
        *([f"--timeout={load.timeout}s"] if load.timeout else []),
        "-s",
        str(load.script),
        url,
    ]
    try:
        # wrk stops itself after -d; the margin only catches a wedged run.
        done = subprocess.run(
            argv, capture_output=True, text=True, check=False, timeout=seconds + 60
        )
    except subprocess.TimeoutExpired:
        raise BenchError(f"wrk did not finish within {seconds + 60}s") from None
    if done.returncode != 0:
        raise BenchError(f"wrk exited with {done.returncode}:\n{done.stdout}{done.stderr}")
    return done.stdout


def parse_wrk(output: str, target: str) -> tuple[float, int, float, float]:
    """(requests/s, requests, p50 ms, p99 ms); BenchError if any request failed."""
    problems = []
    # wrk counts status >= 400 here; the servers under test send no 1xx or 3xx.
    non_2xx = _NON_2XX.search(output)
    if non_2xx:
        problems.append(f"{non_2xx.group(1)} non-2xx responses")
    sockets = _SOCKET_ERRORS.search(output)
    if sockets and any(int(n) for n in sockets.groups()):
        problems.append(sockets.group(0))
    rate, total = _RATE.search(output), _TOTAL.search(output)
    percentiles = {
        float(p): float(value) * _LATENCY_UNITS_MS[unit]
        for p, value, unit in _PERCENTILE.findall(output)
    }
    if rate is None or total is None or not {50.0, 99.0} <= percentiles.keys():
        problems.append("cannot read requests/sec and latency percentiles")
    elif int(total.group(1)) == 0:
        problems.append("no request completed")
    if problems or rate is None or total is None:
        raise BenchError(f"{target}: {'; '.join(problems)}\n--- wrk output ---\n{output}")
    return float(rate.group(1)), int(total.group(1)), percentiles[50.0], percentiles[99.0]


def measure(
    target: str, base: str, proc: subprocess.Popen[bytes], load: Load, *, warm: bool = True
) -> Result:
    url = base + WEBHOOK_PATH
    if warm and load.warmup > 0:
        parse_wrk(wrk(url, load, load.warmup), f"{target} warm-up")
    rate, total, p50, p99 = parse_wrk(wrk(url, load, load.duration), target)
    if proc.poll() is not None:
        raise BenchError(f"{target}: server exited with {proc.returncode} during the load")
    return Result(target, rate, total, p50, p99, rss_mib(proc.pid))


def prime_daemon(url: str, body: bytes, matching: int) -> None:
    """Bring the episode to its steady state and check it is the one being measured.

    The first body decides (dry run); the second writes the episode's one `deduplicated`
    record; from the third on, repeats are answered from memory with the same ids.
    """
    first, second, third = (post(url, body) for _ in range(3))
    outcomes = [d["outcome"] for d in first["decisions"]]
    if len(outcomes) != matching or set(outcomes) - {"dry_run"}:
        raise BenchError(f"first notification: want {matching} dry_run decisions, got {first}")
    if second != third or {d["outcome"] for d in third["decisions"]} != {"deduplicated"}:
        raise BenchError(f"repeats are not settled deduplications: {second} then {third}")


@dataclass(frozen=True)
class Server:
    base: str
    proc: subprocess.Popen[bytes]


@dataclass(frozen=True)
class Rounds:
    """The daemon and the bare endpoint measured in turn, round after round: a machine that
    slows down for a minute (shared hosts do) moves both sides of a round's ratio."""

    daemon: tuple[Result, ...]
    bare: tuple[Result, ...]

    @property
    def ratios(self) -> list[float]:
        return [
            d.requests_per_s / b.requests_per_s for d, b in zip(self.daemon, self.bare, strict=True)
        ]

    @property
    def ratio(self) -> float:
        return statistics.median(self.ratios)

    @property
    def middle(self) -> int:
        """The round whose ratio is the median (the lower middle one for an even count)."""
        order = sorted(range(len(self.ratios)), key=self.ratios.__getitem__)
        return order[(len(order) - 1) // 2]


def bench_daemon(
    work: Path,
    body: bytes,
    load: Load,
    count: int,
    matching: int,
    bare: Server,
    *,
    rounds: int = 1,
    target: str = "daemon",
    state: str = "sqlite:///./state.db",
) -> Rounds:
    cli = Path(sys.executable).with_name("remediator")
    if not cli.exists():
        raise BenchError(f"{cli} not found: run with the project venv's python")
    port = free_port()
    (work / "policies").mkdir()
    (work / "policies" / "bench.yaml").write_text(policies_yaml(count, matching))
    config = work / "remediator.yaml"
    config.write_text(daemon_config(port, state))
    argv = [str(cli), "serve", "--config", str(config), "--log-level", "warning"]
    base = f"http://127.0.0.1:{port}"
    with running(argv, work, work / "daemon.log") as proc:
        wait_ready(base + "/readyz", proc, work / "daemon.log")
        prime_daemon(base + WEBHOOK_PATH, body, matching)
        daemon, plain = [], []
        for index in range(rounds):
            plain.append(measure("bare", bare.base, bare.proc, load, warm=index == 0))
            daemon.append(measure(target, base, proc, load, warm=index == 0))
        return Rounds(tuple(daemon), tuple(plain))


# The fixture helpers report through pytest outcomes (BaseException subclasses): skip or
# fail for a missing server binary (fail under CI=true), fail for a command that failed.
_FIXTURE_OUTCOMES = (pytest.skip.Exception, pytest.fail.Exception)


def postgres_version() -> str:
    """The major version the fixture will start; PostgresMissingError if none is installed."""
    try:
        return _bin_dir().parent.name  # /usr/lib/postgresql/<major>/bin
    except _FIXTURE_OUTCOMES as exc:
        raise PostgresMissingError(str(exc)) from None


_HELD_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _release(previous: Mapping[signal.Signals, Any], held: list[int]) -> None:
    """Put back the handlers `postgres_server` replaced; deliver the first signal it held."""
    for sig, handler in previous.items():
        signal.signal(sig, signal.SIG_DFL if handler is None else handler)
    for signum in held[:1]:
        signal.raise_signal(signum)


@contextlib.contextmanager
def postgres_server() -> Iterator[Postgres]:
    """A throwaway PostgreSQL, stopped and deleted on the way out whatever happens.

    Built from the fixture's parts rather than its `_start_server`, which hands the server
    back only once it is up, so a Ctrl-C or failure while it starts would leave it running
    with nobody to remove it. While initdb and pg_ctl run, Ctrl-C and SIGTERM are held here:
    the commands (or, as root, the `su` running them) get the terminal's Ctrl-C themselves
    and stop cleanly, where an interrupted subprocess.run would SIGKILL `su` and orphan them.
    """
    bin_dir = _bin_dir()
    server = Postgres(Path(tempfile.mkdtemp(prefix="remediator-pg-")), free_port(), bin_dir)
    held: list[int] = []
    previous = {s: signal.signal(s, lambda signum, _: held.append(signum)) for s in _HELD_SIGNALS}
    try:
        try:
            if os.geteuid() == 0:  # as _start_server: PostgreSQL runs as `postgres`
                owner = pwd.getpwnam("postgres")
                os.chown(server.folder, owner.pw_uid, owner.pw_gid)
            server.init()
            server.start()
        finally:
            _release(previous, held)
        yield server
    except pytest.fail.Exception as exc:  # a fixture command failed
        raise BenchError(f"PostgreSQL: {exc}") from None
    finally:
        try:
            _remove(server)
        except pytest.fail.Exception as exc:
            print(f"warning: PostgreSQL in {server.folder} not removed: {exc}", file=sys.stderr)


def bench_postgres(
    work: Path, body: bytes, load: Load, args: argparse.Namespace, bare: Server
) -> Rounds:
    with postgres_server() as server:
        url = server.database()
        return bench_daemon(
            work,
            body,
            load,
            args.policies,
            args.matching,
            bare,
            rounds=args.rounds,
            target="daemon-pg",
            state=url,
        )


@contextlib.contextmanager
def bare_server(work: Path, body: bytes) -> Iterator[Server]:
    port = free_port()
    argv = [sys.executable, str(BARE_SERVER), "--port", str(port)]
    base = f"http://127.0.0.1:{port}"
    with running(argv, work, work / "bare.log") as proc:
        wait_ready(base + "/readyz", proc, work / "bare.log")
        post(base + WEBHOOK_PATH, body)
        yield Server(base, proc)


# --- report ------------------------------------------------------------------------------


def table(results: list[Result], ratios: Mapping[str, Rounds]) -> str:
    rows = [("target", "req/s", "requests", "p50", "p99", "RSS")]
    rows += [
        (
            r.target,
            f"{r.requests_per_s:,.0f}",
            f"{r.requests:,}",
            f"{r.p50_ms:.2f} ms",
            f"{r.p99_ms:.2f} ms",
            f"{r.rss_mib:.1f} MiB",
        )
        for r in results
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(
            cell.ljust(width) if i == 0 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    ]
    for target, pair in ratios.items():
        met = "met" if pair.ratio >= TARGET_RATIO else "NOT met"
        each = ", ".join(f"{r:.2f}" for r in pair.ratios)
        lines += [
            "",
            f"ratio {target}/bare: {pair.ratio:.2f} (median of rounds: {each})",
            f"target ratio >= {TARGET_RATIO}: {met}",
        ]
    return "\n".join(lines)


def _terminate(signum: int, _: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds, so servers and PostgreSQL are removed


@dataclass(frozen=True)
class Run:
    daemon: Rounds
    pg: Rounds | None = None
    pg_version: str = ""  # major version of the PostgreSQL found
    pg_skipped: str = ""  # why PostgreSQL was not measured: it is not installed
    pg_error: str = ""  # why the PostgreSQL run failed

    @property
    def results(self) -> list[Result]:
        """Each store's median round: its daemon, then the bare endpoint beside it."""
        rows = []
        for pair in (self.daemon, self.pg):
            if pair is not None:
                rows += [pair.daemon[pair.middle], pair.bare[pair.middle]]
        return rows

    @property
    def ratios(self) -> dict[str, Rounds]:
        ratios = {"daemon": self.daemon}
        if self.pg is not None:
            ratios["daemon-pg"] = self.pg
        return ratios


def run(args: argparse.Namespace, body: bytes) -> Run:
    with tempfile.TemporaryDirectory(prefix="remediator-bench-") as tmp:
        work = Path(tmp)
        script = work / "post.lua"
        script.write_text(wrk_script(body, HEADERS))
        load = Load(args.threads, args.connections, args.duration, args.warmup, script)
        for name in ("daemon", "bare", "daemon-pg"):
            (work / name).mkdir()
        with bare_server(work / "bare", body) as bare:
            daemon = bench_daemon(
                work / "daemon", body, load, args.policies, args.matching, bare, rounds=args.rounds
            )
            try:
                version = postgres_version()
            except PostgresMissingError as exc:
                return Run(daemon, pg_skipped=str(exc))
            try:
                pg = bench_postgres(work / "daemon-pg", body, load, args, bare)
            except (BenchError, OSError) as exc:
                return Run(daemon, pg_version=version, pg_error=str(exc))
            return Run(daemon, pg, pg_version=version)


def json_report(result: Run, args: argparse.Namespace, body: bytes) -> str:
    ratio = result.daemon.ratio
    pg_ratio = None if result.pg is None else result.pg.ratio
    report = {
        "results": [asdict(r) for r in result.results],
        "rounds": {
            target: [
                {"daemon": asdict(d), "bare": asdict(b)}
                for d, b in zip(pair.daemon, pair.bare, strict=True)
            ]
            for target, pair in result.ratios.items()
        },
        "ratio": round(ratio, 4),
        "target_ratio": TARGET_RATIO,
        "target_met": ratio >= TARGET_RATIO,
        "postgresql": {
            "status": "measured" if result.pg else "skipped" if result.pg_skipped else "failed",
            "reason": result.pg_skipped or result.pg_error or None,
            "version": result.pg_version or None,
            "ratio": None if pg_ratio is None else round(pg_ratio, 4),
            "target_met": None if pg_ratio is None else pg_ratio >= TARGET_RATIO,
        },
        "load": {
            "tool": "wrk",
            "threads": args.threads,
            "connections": args.connections,
            "duration_s": args.duration,
            "rounds": args.rounds,
            "warmup_s": args.warmup,
            "policies": args.policies,
            "matching": args.matching,
            "body_bytes": len(body),
        },
    }
    return json.dumps(report, indent=2)


def text_report(result: Run, args: argparse.Namespace, body: bytes) -> str:
    lines = [
        f"POST {WEBHOOK_PATH}: {len(body)}-byte body, {args.policies} policies "
        f"({args.matching} matching), wrk -t{args.threads} -c{args.connections} "
        f"-d{args.duration}s after {args.warmup}s warm-up; {args.rounds} rounds of the bare "
        "endpoint then the daemon (the table: each store's median round)",
        "",
        table(result.results, result.ratios),
        "",
    ]
    if result.pg is not None:
        lines.append(
            f"daemon: SQLite store; daemon-pg: PostgreSQL {result.pg_version} store "
            "(throwaway local server, fsync=off)"
        )
    elif result.pg_skipped:
        lines.append(f"daemon-pg: SKIPPED, {result.pg_skipped}")
        lines.append("(daemon and bare above are the SQLite store's figures and stand)")
    else:
        lines.append("daemon-pg: FAILED, see the error below")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=int, default=5, help="seconds of measured load")
    parser.add_argument("--rounds", type=int, default=3, help="measurements of each server")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of unmeasured load")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--policies", type=int, default=20)
    parser.add_argument("--matching", type=int, default=3, help="policies the alert matches")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if not 0 <= args.matching <= args.policies:
        parser.error("--matching must be between 0 and --policies")
    if shutil.which("wrk") is None:
        print("error: wrk is not on PATH", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _terminate)
    body = alert_body()
    try:
        result = run(args, body)
    except (BenchError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    print(json_report(result, args, body) if args.json else text_report(result, args, body))
    if result.pg_error:
        print(f"error: daemon-pg: {result.pg_error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

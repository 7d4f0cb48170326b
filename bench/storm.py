"""Storm mode: what the daemon costs when every alert is a new firing episode, beside the bare
parser (bench/bare_server.py, which only parses the same bodies).

Every alert has labels no other alert of the run has (a run id, a per-client id and a
counter in `instance` and `container`), so each one is decided, never deduplicated. The
daemon runs in whole-daemon dry run on 20 docker.restart policies keyed by
`alertname="StormN"` (each alert matches exactly one; targets are distinct, so no cooldown
collides) with `limits.global_rate` out of the way: the figures are the decision cost.

1. Distinct throughput: alerts/s for 100-alert and 1-alert bodies, daemon and bare parser,
   both driven by wrk whose Lua `request()` builds every body (threads numbered by `setup`),
   for `--duration` s after one unmeasured body; what wrk leaves in flight is let through
   before the next figure. Both servers run side by side and are measured in turn,
   `--rounds` times: the ratio is the median of each round's daemon/bare, so a machine that
   slows down for a minute (shared hosts do) moves both sides of a ratio, not one.
2. Flatness: a storm of `--alerts` alerts in 100-alert bodies from an aiohttp client with a
   few connections; the rate over the last 20% of the alerts against the first 20%.
   The same client against the bare parser shows what it can push (it must not be the limit).
3. Exactness: after the storm, the store's `decisions` hold one row per alert sent, none
   `deduplicated`; every HTTP answer of the run is 2xx (anything else is a bench error).
4. Policy count: a storm of up to a fifth of `--alerts` (no body sent after `MANY_STORM_S`
   s) on a fresh daemon with 5,000 policies (1% regex-only, matching nothing), against the
   20-policy storm's rate over as many alerts from its start, as per-alert cost; and the
   daemon's start time with 5,000 policies (process spawn to /readyz 200).
5. Memory: RSS after the storm's first 1,000 alerts and at its end.
6. Repeat ingest is bench/webhook_bench.py's figure, which `make bench` prints first.
7. The same figures on a PostgreSQL store (a throwaway server, as webhook_bench), reported with
   no threshold; skipped, said so, when PostgreSQL is not installed or `--skip-postgres`.

Thresholds apply to the SQLite figures. The exit status is 0 when thresholds fail (this is a
report) unless `--strict`; a bench error (non-2xx answer, a server that died) is 1.

Run `.venv/bin/python bench/storm.py [--alerts 200000] [--duration 5] [--rounds 3]
[--skip-postgres] [--strict] [--json]`; for a quick look `--alerts 5000 --duration 2`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import operator
import os
import re
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from bench.webhook_bench import (
    BARE_SERVER,
    HEADERS,
    WEBHOOK_PATH,
    BenchError,
    Load,
    PostgresMissingError,
    _terminate,
    daemon_config,
    free_port,
    lua_string,
    parse_wrk,
    post,
    postgres_server,
    postgres_version,
    rss_mib,
    running,
    wait_ready,
    wrk,
)

BATCH = 100  # alerts per body in the storm and the first throughput figure
NAMES = 20  # alertnames Storm0..Storm19: one policy each
MANY_POLICIES = 5_000
MANY_STORM_S = 32  # s: no body of the 5,000-policy storm is sent after this
FIRST_ALERTS = 1_000  # RSS is first read once this many alerts are answered
WRK_TIMEOUT = 30  # s: a slow daemon queues bodies; that is a low rate, not a socket error
STARTS_AT = "2026-11-22T10:00:00Z"
DRY_RUN_CONFIG = 'dry_run: true\nlimits:\n  global_rate: "1000000/1h"\n'
_SLOT = re.compile(r"@(name|key|fp)@")
_runs = itertools.count(1)  # one id per load run (warm-ups too): no label set ever repeats

# --- bodies ------------------------------------------------------------------------------


def _alert_json() -> str:
    """One firing alert as Alertmanager's v4 webhook sends it, @slot@ where it varies."""
    alert = {
        "status": "firing",
        "labels": {
            "alertname": "@name@",
            "container": "@key@",
            "instance": "@key@:9100",
            "job": "node",
            "severity": "critical",
        },
        "annotations": {"summary": "Storm alert on @key@", "runbook_url": "docs/storm.md"},
        "startsAt": STARTS_AT,
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus:9090/graph?g0.expr=up%3D%3D0",
        "fingerprint": "@fp@",
    }
    return json.dumps(alert, separators=(",", ":"))


def _envelope() -> tuple[str, str]:
    """The body around the alerts: (text up to `[`, text from `]`)."""
    message = {
        "receiver": "remediator",
        "status": "firing",
        "alerts": "@alerts@",
        "groupLabels": {},
        "commonLabels": {"job": "node", "severity": "critical"},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "version": "4",
        "groupKey": "{}:{}",
        "truncatedAlerts": 0,
    }
    head, tail = json.dumps(message, separators=(",", ":")).split('"@alerts@"')
    return head + "[", "]" + tail


# Literal text and slot names alternately (re.split keeps the captured names).
_PARTS = _SLOT.split(_alert_json())
_TEMPLATE = "".join(  # %-style: twice as fast as str.format, and the client must keep up
    f"%({part})s" if i % 2 else part.replace("%", "%%") for i, part in enumerate(_PARTS)
)
_HEAD, _TAIL = _envelope()


def storm_body(run: int, start: int, count: int) -> bytes:
    """Alerts start..start+count-1 of `run` (client 0), keyed as the Lua script keys them."""
    alerts = [
        _TEMPLATE
        % {
            "name": f"Storm{n % NAMES}",
            "key": f"storm-r{run}-t0-{n}",
            "fp": f"{run:04x}0000{n:08x}",
        }
        for n in range(start, start + count)
    ]
    return (_HEAD + ",".join(alerts) + _TAIL).encode()


def storm_script(run: int, batch: int) -> str:
    """wrk Lua: every request() builds `batch` new alerts; setup() numbers the threads so
    their counters never meet."""
    alert = " .. ".join(
        part if i % 2 else lua_string(part.encode()) for i, part in enumerate(_PARTS)
    )
    headers = [
        f"wrk.headers[{lua_string(k.encode())}] = {lua_string(v.encode())}"
        for k, v in HEADERS.items()
    ]
    return "\n".join(
        [
            'wrk.method = "POST"',
            *headers,
            f"local run, batch, names = {run}, {batch}, {NAMES}",
            f"local head, tail = {lua_string(_HEAD.encode())}, {lua_string(_TAIL.encode())}",
            "local threads = 0",
            "function setup(thread)",
            "  threads = threads + 1",
            '  thread:set("tid", threads)',
            "end",
            "local n, alerts = 0, {}",
            "function request()",
            "  for i = 1, batch do",
            '    local name = "Storm" .. (n % names)',
            '    local key = string.format("storm-r%d-t%d-%d", run, tid, n)',
            '    local fp = string.format("%04x%04x%08x", run, tid, n)',
            f"    alerts[i] = {alert}",
            "    n = n + 1",
            "  end",
            '  return wrk.format(nil, nil, nil, head .. table.concat(alerts, ",") .. tail)',
            "end",
            "",
        ]
    )


def storm_policies(count: int) -> str:
    """`count` docker.restart policies: alertname="StormI" equality, but every 100th is
    regex-only (alertname=~"Regex.*I") and matches nothing the storm sends."""
    documents = []
    for index in range(count):
        regex = index % 100 == 99
        matcher = f'alertname=~"Regex.*{index}"' if regex else f'alertname="Storm{index}"'
        documents.append(
            "\n".join(
                [
                    f"name: storm-{index}",
                    "match:",
                    "  source: alertmanager",
                    f"  matchers: {json.dumps([matcher])}",
                    "action:",
                    "  type: docker.restart",
                    '  params: {container: "{{ labels.container }}", timeout: 1s}',
                    '  allow_targets: ["storm-*"]',
                ]
            )
        )
    return "\n---\n".join(documents) + "\n"


# --- servers -----------------------------------------------------------------------------


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    base: str
    start_s: float = 0.0  # spawn to /readyz 200
    outcomes: Counter[str] = field(default_factory=Counter)  # the store's, once stopped

    @property
    def url(self) -> str:
        return self.base + WEBHOOK_PATH


@contextlib.contextmanager
def serving(argv: list[str], work: Path, port: int) -> Iterator[Server]:
    base, log = f"http://127.0.0.1:{port}", work / "server.log"
    started = time.monotonic()
    with running(argv, work, log) as proc:
        wait_ready(base + "/readyz", proc, log)
        yield Server(proc, base, time.monotonic() - started)


@contextlib.contextmanager
def daemon(work: Path, policies: int, state: str) -> Iterator[Server]:
    """The daemon on `policies` storm policies; its store's outcomes are read once stopped."""
    cli = Path(sys.executable).with_name("remediator")
    if not cli.exists():
        raise BenchError(f"{cli} not found: run with the project venv's python")
    (work / "policies").mkdir(parents=True)
    (work / "policies" / "storm.yaml").write_text(storm_policies(policies))
    port = free_port()
    (work / "remediator.yaml").write_text(daemon_config(port, state) + DRY_RUN_CONFIG)
    argv = [str(cli), "serve", "--config", "remediator.yaml", "--log-level", "warning"]
    with serving(argv, work, port) as server:
        yield server
    server.outcomes = store_outcomes(state, work)


@contextlib.contextmanager
def bare(work: Path) -> Iterator[Server]:
    work.mkdir(parents=True)
    port = free_port()
    with serving([sys.executable, str(BARE_SERVER), "--port", str(port)], work, port) as server:
        yield server


def store_outcomes(state: str, work: Path) -> Counter[str]:
    """outcome -> decisions recorded, read from the stopped daemon's store."""
    query = "SELECT outcome, count(*) FROM decisions GROUP BY outcome"
    if state.startswith("sqlite:"):
        with contextlib.closing(sqlite3.connect(work / "state.db")) as db:
            return Counter({str(k): int(v) for k, v in db.execute(query)})
    return asyncio.run(_pg_outcomes(state, query))


async def _pg_outcomes(url: str, query: str) -> Counter[str]:
    import asyncpg  # noqa: PLC0415  # only for the PostgreSQL run

    conn = await asyncpg.connect(url)
    try:
        return Counter({str(row[0]): int(row[1]) for row in await conn.fetch(query)})
    finally:
        await conn.close()


# --- wrk: distinct throughput ------------------------------------------------------------


def distinct_rate(server: Server, batch: int, args: argparse.Namespace, work: Path) -> float:
    """Alerts/s of distinct alerts in `batch`-alert bodies, after one unmeasured body."""
    post(server.url, storm_body(next(_runs), 0, batch))
    run = next(_runs)
    script = work / f"storm-{run}.lua"
    script.write_text(storm_script(run, batch))
    load = Load(args.threads, args.connections, args.duration, 0, script, WRK_TIMEOUT)
    output = wrk(server.url, load, args.duration)
    settle(server)
    return parse_wrk(output, f"{server.base}, {batch}-alert bodies")[0] * batch


def _cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def settle(server: Server, deadline: float = 300.0) -> None:
    """Wait until the server idles (under 5% of a CPU for two 0.2 s windows in a row): wrk
    stops with bodies in flight that the server still decides, and the next figure must not
    pay for them."""
    window = 0.2
    quiet_ticks = 0.05 * window * os.sysconf("SC_CLK_TCK")
    quiet, until = 0, time.monotonic() + deadline
    before = _cpu_ticks(server.proc.pid)
    while quiet < 2:
        if server.proc.poll() is not None:
            raise BenchError(f"{server.base}: exited with {server.proc.returncode} under load")
        if time.monotonic() > until:
            raise BenchError(f"{server.base}: still busy {deadline:g}s after the load stopped")
        time.sleep(window)
        now = _cpu_ticks(server.proc.pid)
        quiet = quiet + 1 if now - before <= quiet_ticks else 0
        before = now


# --- the storm ---------------------------------------------------------------------------


@dataclass
class Progress:
    """Answers as they come: (alerts answered, seconds since the start), and RSS once
    FIRST_ALERTS are in."""

    pid: int
    started: float = field(default_factory=time.monotonic)
    marks: list[tuple[int, float]] = field(default_factory=list)
    rss_first: float = 0.0

    def answered(self, alerts: int) -> None:
        done = alerts + (self.marks[-1][0] if self.marks else 0)
        self.marks.append((done, time.monotonic() - self.started))
        if not self.rss_first and done >= FIRST_ALERTS:
            self.rss_first = rss_mib(self.pid)


@dataclass(frozen=True)
class Storm:
    marks: list[tuple[int, float]]  # (alerts answered, seconds since the first POST)
    rss_first_mib: float
    rss_end_mib: float

    @property
    def alerts(self) -> int:
        return self.marks[-1][0]

    @property
    def seconds(self) -> float:
        return self.marks[-1][1]

    @property
    def rate(self) -> float:
        return self.alerts / self.seconds

    def _mark(self, alerts: float) -> tuple[int, float]:
        return next(m for m in self.marks if m[0] >= alerts)

    def rate_until(self, alerts: float) -> float:
        """Alerts/s from the start to the first answer that brings the count to `alerts`."""
        done, at = self._mark(alerts)
        return done / at

    @property
    def first_rate(self) -> float:  # the first 20% of the alerts
        return self.rate_until(0.2 * self.alerts)

    @property
    def last_rate(self) -> float:  # the last 20%
        done, at = self._mark(0.8 * self.alerts)
        return (self.alerts - done) / max(self.seconds - at, 1e-9)

    def summary(self) -> dict[str, float]:
        names = (
            "alerts",
            "seconds",
            "rate",
            "first_rate",
            "last_rate",
            "rss_first_mib",
            "rss_end_mib",
        )
        return {name: round(getattr(self, name), 4) for name in names}


async def _post_all(
    session: aiohttp.ClientSession,
    url: str,
    bodies: Iterator[tuple[int, bytes]],
    progress: Progress,
    until: float,
) -> None:
    for count, body in bodies:  # one generator shared by every connection
        if time.monotonic() > until:
            return
        try:
            async with session.post(url, data=body, headers=HEADERS) as response:
                text = await response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise BenchError(f"POST {url}: {exc!r}") from None
        if not 200 <= response.status < 300:
            raise BenchError(f"POST {url}: HTTP {response.status}: {text[:300]!r}")
        progress.answered(count)


async def _push(
    url: str, bodies: list[tuple[int, bytes]], connections: int, until: float, p: Progress
) -> None:
    shared = iter(bodies)
    connector = aiohttp.TCPConnector(limit=connections)
    timeout = aiohttp.ClientTimeout(total=300)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        try:
            async with asyncio.TaskGroup() as group:
                for _ in range(connections):
                    group.create_task(_post_all(session, url, shared, p, until))
        except* (BenchError, OSError) as failed:
            raise failed.exceptions[0] from None


def storm(server: Server, total: int, connections: int, seconds: float = 0.0) -> Storm:
    """`total` alerts in BATCH-alert bodies over `connections` connections; with `seconds`,
    no body is sent after that long (the bodies in flight are still answered). The bodies
    are built first (~40 MB per 100,000 alerts), so the client only sends."""
    run = next(_runs)
    sizes = [(s, min(BATCH, total - s)) for s in range(0, total, BATCH)]
    bodies = [(count, storm_body(run, s, count)) for s, count in sizes]
    progress = Progress(server.proc.pid)
    until = progress.started + seconds if seconds else float("inf")
    asyncio.run(_push(server.url, bodies, connections, until, progress))
    if server.proc.poll() is not None:
        raise BenchError(f"{server.base}: exited with {server.proc.returncode} in the storm")
    return Storm(progress.marks, progress.rss_first, rss_mib(server.proc.pid))


# --- one store ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Bare:
    client_rate: float  # the storm client against the bare parser


@dataclass(frozen=True)
class Paired:
    """Distinct throughput of the daemon and of the bare parser, measured in turn per round."""

    rounds: tuple[tuple[float, float], ...]  # (daemon alerts/s, bare alerts/s)

    @property
    def daemon(self) -> float:
        return statistics.median(d for d, _ in self.rounds)

    @property
    def bare(self) -> float:
        return statistics.median(b for _, b in self.rounds)

    @property
    def ratios(self) -> list[float]:
        return [d / b for d, b in self.rounds]

    @property
    def ratio(self) -> float:
        return statistics.median(self.ratios)


@dataclass(frozen=True)
class StoreRun:
    store: str
    distinct_100: Paired
    distinct_1: Paired
    many: Storm  # a shorter storm on 5,000 policies
    start_s: float
    start_many_s: float
    storm: Storm
    storm_outcomes: dict[str, int]
    wrk_deduplicated: int


@contextlib.contextmanager
def phase(name: str) -> Iterator[None]:
    """Says on stderr what runs now (a run takes minutes) and names it in a BenchError."""
    print(f"storm: {name}", file=sys.stderr, flush=True)
    try:
        yield
    except BenchError as exc:
        raise BenchError(f"{name}: {exc}") from None


def bench_bare(work: Path, args: argparse.Namespace) -> Bare:
    with phase("bare parser: the storm client"), bare(work) as server:
        client = storm(server, args.alerts, args.storm_connections)
    return Bare(client.rate)


def paired(
    server: Server, plain: Server, batch: int, args: argparse.Namespace, work: Path
) -> Paired:
    """`--rounds` of the bare parser then the daemon, each for `--duration` s."""
    rounds = []
    for _ in range(args.rounds):
        bare_rate = distinct_rate(plain, batch, args, work)
        rounds.append((distinct_rate(server, batch, args, work), bare_rate))
    return Paired(tuple(rounds))


def bench_store(
    store: str, work: Path, new_state: Callable[[], str], args: argparse.Namespace
) -> StoreRun:
    wrk_phase = phase(f"{store}, {NAMES} policies: wrk, beside the bare parser")
    with wrk_phase, daemon(work / "few", NAMES, new_state()) as few, bare(work / "bare") as plain:
        distinct_100 = paired(few, plain, BATCH, args, work)
        distinct_1 = paired(few, plain, 1, args, work)
    many_phase = phase(
        f"{store}, {MANY_POLICIES:,} policies: storm of {args.alerts // 5:,} at most"
    )
    with many_phase, daemon(work / "many", MANY_POLICIES, new_state()) as many:
        many_storm = storm(many, args.alerts // 5, args.storm_connections, MANY_STORM_S)
    storm_phase = phase(f"{store}, {NAMES} policies: storm of {args.alerts:,}")
    with storm_phase, daemon(work / "storm", NAMES, new_state()) as stormy:
        result = storm(stormy, args.alerts, args.storm_connections)
    return StoreRun(
        store=store,
        distinct_100=distinct_100,
        distinct_1=distinct_1,
        many=many_storm,
        start_s=few.start_s,
        start_many_s=many.start_s,
        storm=result,
        storm_outcomes=dict(stormy.outcomes),
        wrk_deduplicated=few.outcomes["deduplicated"],
    )


@dataclass(frozen=True)
class Postgres:
    run: StoreRun | None = None
    version: str = ""
    skipped: str = ""  # why it was not measured
    error: str = ""  # why its run failed


def bench_postgres(work: Path, args: argparse.Namespace) -> Postgres:
    if args.skip_postgres:
        return Postgres(skipped="--skip-postgres")
    try:
        version = postgres_version()
    except PostgresMissingError as exc:
        return Postgres(skipped=str(exc))
    try:
        with postgres_server() as server:
            return Postgres(bench_store("postgresql", work, server.database, args), version)
    except (BenchError, OSError) as exc:
        return Postgres(version=version, error=str(exc))


# --- figures and thresholds --------------------------------------------------------------


@dataclass(frozen=True)
class Figure:
    key: str
    label: str
    shown: str  # format for the value
    op: str = ""  # threshold, on the SQLite figure: op limit
    limit: float = 0.0


_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    "<": operator.lt,
    "==": operator.eq,
}
_RATE = "{:,.0f}/s"
FIGURES = [
    Figure("rate_100", "distinct alerts/s, 100-alert bodies (median)", _RATE),
    Figure("bare_100", "  bare parser (median)", _RATE),
    Figure("ratio_100", "  daemon/bare (median of rounds)", "{:.3f}", ">=", 0.05),
    Figure("rate_1", "distinct alerts/s, 1-alert bodies (median)", _RATE),
    Figure("bare_1", "  bare parser (median)", _RATE),
    Figure("ratio_1", "  daemon/bare (median of rounds)", "{:.3f}", ">=", 0.25),
    Figure("storm_first", "storm alerts/s, first 20%", _RATE),
    Figure("storm_last", "storm alerts/s, last 20%", _RATE),
    Figure("flatness", "  last/first", "{:.3f}", ">=", 0.8),
    Figure("client_rate", "  storm client into bare parser", _RATE, ">=", 50_000),
    Figure("decision_gap", "storm decisions recorded - alerts sent", "{:+,.0f}", "==", 0),
    Figure("deduplicated", "storm decisions deduplicated", "{:,.0f}", "==", 0),
    Figure("wrk_deduplicated", "wrk-run decisions deduplicated", "{:,.0f}", "==", 0),
    Figure("rate_many", "storm alerts/s, 5,000 policies (shorter storm)", _RATE),
    Figure("rate_many_ref", "  20 policies, over as many alerts", _RATE),
    Figure("policy_cost", "  per-alert cost 5,000/20 policies", "{:.2f}x", "<=", 1.5),
    Figure("start_s", "start, 20 policies", "{:.2f} s"),
    Figure("start_many_s", "start, 5,000 policies", "{:.2f} s", "<", 2.0),
    Figure("rss_first", "RSS after first 1,000 storm alerts", "{:.1f} MiB"),
    Figure("rss_end", "RSS after the storm", "{:.1f} MiB"),
    Figure("rss_growth", "  end/first", "{:.2f}x", "<=", 1.5),
]


def figures(run: StoreRun, bare_: Bare) -> dict[str, float]:
    storm_ = run.storm
    return {
        "rate_100": run.distinct_100.daemon,
        "bare_100": run.distinct_100.bare,
        "ratio_100": run.distinct_100.ratio,
        "rate_1": run.distinct_1.daemon,
        "bare_1": run.distinct_1.bare,
        "ratio_1": run.distinct_1.ratio,
        "storm_first": storm_.first_rate,
        "storm_last": storm_.last_rate,
        "flatness": storm_.last_rate / storm_.first_rate,
        "client_rate": bare_.client_rate,
        "decision_gap": sum(run.storm_outcomes.values()) - storm_.alerts,
        "deduplicated": run.storm_outcomes.get("deduplicated", 0),
        "wrk_deduplicated": run.wrk_deduplicated,
        "rate_many": run.many.rate,
        "rate_many_ref": storm_.rate_until(run.many.alerts),
        "policy_cost": storm_.rate_until(run.many.alerts) / run.many.rate,
        "start_s": run.start_s,
        "start_many_s": run.start_many_s,
        "rss_first": storm_.rss_first_mib,
        "rss_end": storm_.rss_end_mib,
        "rss_growth": storm_.rss_end_mib / storm_.rss_first_mib,
    }


def passed(figure: Figure, value: float) -> bool | None:
    return _OPS[figure.op](value, figure.limit) if figure.op else None


# --- report ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Report:
    bare: Bare
    sqlite: StoreRun
    pg: Postgres

    def values(self) -> tuple[dict[str, float], dict[str, float] | None]:
        pg = None if self.pg.run is None else figures(self.pg.run, self.bare)
        return figures(self.sqlite, self.bare), pg

    def failed(self) -> list[str]:
        sqlite = self.values()[0]
        return [f.key for f in FIGURES if passed(f, sqlite[f.key]) is False]


def _cells(figure: Figure, sqlite: dict[str, float], pg: dict[str, float] | None) -> list[str]:
    verdict = passed(figure, sqlite[figure.key])
    return [
        figure.label,
        figure.shown.format(sqlite[figure.key]),
        f"{figure.op} {figure.limit:,g}" if figure.op else "",
        "" if verdict is None else "PASS" if verdict else "FAIL",
        "-" if pg is None else figure.shown.format(pg[figure.key]),
    ]


def table(report: Report) -> str:
    sqlite, pg = report.values()
    rows = [["figure", "SQLite", "threshold", "result", "PostgreSQL"]]
    rows += [_cells(f, sqlite, pg) for f in FIGURES]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(
            c.ljust(w) if i in (0, 3) else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    )


def _pg_line(pg: Postgres) -> str:
    if pg.run is not None:
        return f"PostgreSQL {pg.version} store (throwaway local server, fsync=off): no thresholds"
    if pg.skipped:
        return f"PostgreSQL: SKIPPED, {pg.skipped}"
    return "PostgreSQL: FAILED, see the error below"


def text_report(report: Report, args: argparse.Namespace) -> str:
    failed = report.failed()
    outcomes = ", ".join(f"{k} {v:,}" for k, v in sorted(report.sqlite.storm_outcomes.items()))
    return "\n".join(
        [
            f"Storm mode: distinct alerts (each a new episode), whole-daemon dry run, {NAMES} "
            "docker.restart policies keyed by alertname",
            f"wrk -t{args.threads} -c{args.connections} -d{args.duration}s after one "
            f"unmeasured body, {args.rounds} rounds of bare parser then daemon; storm of "
            f"{args.alerts:,} alerts in {BATCH}-alert bodies over {args.storm_connections} "
            "connections",
            "",
            table(report),
            "",
            *_rounds_lines(report),
            f"SQLite storm outcomes: {outcomes or 'none'}",
            f"{MANY_POLICIES:,}-policy storm: {report.sqlite.many.alerts:,} alerts (at most "
            f"{args.alerts // 5:,}; no body sent after {MANY_STORM_S}s), compared with the "
            "20-policy storm's rate over as many alerts from its start",
            _pg_line(report.pg),
            "repeat ingest (the same alert again): bench/webhook_bench.py's ratio, printed above",
            f"thresholds: {'all met' if not failed else 'NOT met: ' + ', '.join(failed)}",
        ]
    )


def _rounds_lines(report: Report) -> list[str]:
    """Each round's daemon/bare: how far the ratio moves within one run."""
    runs = [("SQLite", report.sqlite), ("PostgreSQL", report.pg.run)]
    return [
        f"{name} daemon/bare per round, {label}: " + ", ".join(f"{r:.3f}" for r in pair.ratios)
        for name, run in runs
        if run is not None
        for label, pair in (("100-alert bodies", run.distinct_100), ("1-alert", run.distinct_1))
    ]


def _store_json(run: StoreRun | None, values: dict[str, float] | None) -> object:
    if run is None:
        return None
    many = run.many
    return {
        "figures": {k: round(v, 4) for k, v in (values or {}).items()},
        "distinct_rounds": {
            "100": [{"daemon": d, "bare": b} for d, b in run.distinct_100.rounds],
            "1": [{"daemon": d, "bare": b} for d, b in run.distinct_1.rounds],
        },
        "storm": run.storm.summary(),
        "storm_outcomes": run.storm_outcomes,
        "many_policies_storm": {"alerts": many.alerts, "seconds": many.seconds, "rate": many.rate},
    }


def json_report(report: Report, args: argparse.Namespace) -> str:
    sqlite, pg = report.values()
    checks = [
        {"figure": f.key, "value": round(sqlite[f.key], 4), "threshold": f"{f.op} {f.limit:g}"}
        | {"passed": passed(f, sqlite[f.key])}
        for f in FIGURES
        if f.op
    ]
    body = {
        "sqlite": _store_json(report.sqlite, sqlite),
        "postgresql": _store_json(report.pg.run, pg),
        "checks": checks,
        "thresholds_met": not report.failed(),
        "postgresql_run": {
            "status": "measured" if report.pg.run else "skipped" if report.pg.skipped else "failed",
            "reason": report.pg.skipped or report.pg.error or None,
            "version": report.pg.version or None,
        },
        "load": {k: v for k, v in vars(args).items() if k not in ("json", "strict")}
        | {"batch": BATCH, "policies": NAMES, "many_policies": MANY_POLICIES},
    }
    return json.dumps(body, indent=2)


# --- main --------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> Report:
    with tempfile.TemporaryDirectory(prefix="remediator-storm-") as tmp:
        work = Path(tmp)
        bare_ = bench_bare(work / "bare", args)
        sqlite = bench_store("sqlite", work / "sqlite", lambda: "sqlite:///./state.db", args)
        return Report(bare_, sqlite, bench_postgres(work / "postgresql", args))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--alerts", type=int, default=200_000, help="alerts in the storm")
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk measurement")
    parser.add_argument(
        "--rounds", type=int, default=3, help="wrk measurements of each server per body size"
    )
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--connections", type=int, default=8, help="wrk connections")
    parser.add_argument("--storm-connections", type=int, default=4, help="storm client connections")
    parser.add_argument("--skip-postgres", action="store_true", help="SQLite only")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a threshold fails")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if args.alerts < 50 * BATCH:  # a fifth of it is the 5,000-policy storm: 10 bodies or more
        parser.error(f"--alerts must be at least {50 * BATCH}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("wrk") is None:
        print("error: wrk is not on PATH", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _terminate)
    try:
        report = run(args)
    except (BenchError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    print(json_report(report, args) if args.json else text_report(report, args))
    if report.pg.error:
        print(f"error: PostgreSQL: {report.pg.error}", file=sys.stderr)
        return 1
    return 1 if args.strict and report.failed() else 0


if __name__ == "__main__":
    sys.exit(main())

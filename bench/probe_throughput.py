"""Benchmark: probes/s, CPU per probe, scheduling lag and latency accuracy for N checks.

One command, several runs, medians:

    .venv/bin/python -m bench.probe_throughput                  # 1,000 and 10,000 checks
    .venv/bin/python -m bench.probe_throughput --checks 1000 --runs 5 --duration 30

The target is a separate process on loopback (bench/target.py), so only the monitor's own CPU
is counted. Every run is a fresh monitor process with the real scheduler, probe (a fresh
connection per probe), engine, SQLite store and metrics. One check in ten asks the target for
a page that takes exactly 50 ms, and the table reports how far the measured latency is off.

`run_one` (one fresh monitor process, its figures as a dict) is shared with bench.scale and
bench.blackbox_compare, which point the plain checks at nginx instead (`--target-url`).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from array import array
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

KNOWN_DELAY_MS = 50
ROOT = Path(__file__).resolve().parent.parent
# After the warm-up intervals, how long to wait at most for the checks that have not yet
# recorded a first result (their first write is one transaction each, see _one): with tens of
# thousands of checks on an empty database, that backlog outlasts the first interval.
FIRST_ROUND_TIMEOUT = 600.0


def _config(
    *,
    checks: int,
    interval: float,
    plain_url: str,
    delay_url: str | None,
    delay_every: int,
    database: str,
) -> dict[str, Any]:
    per_site = 100
    parts = urlsplit(plain_url)
    origin = f"{parts.scheme}://{parts.netloc}"
    sites = []
    for s in range((checks + per_site - 1) // per_site):
        count = min(per_site, checks - s * per_site)
        sites.append(
            {
                "id": f"site{s}",
                "url": origin,
                "checks": [
                    {
                        "id": f"c{i}",
                        # An absolute URL replaces the site's: the delayed page may live on
                        # another server than the plain one.
                        "url": delay_url
                        if delay_url and delay_every and i % delay_every == 0
                        else plain_url,
                    }
                    for i in range(count)
                ],
            }
        )
    return {
        "database": {"url": f"sqlite+aiosqlite:///{database}"},
        "server": {"port": 0},
        "scheduler": {"max_concurrency": 1024, "per_host": 1024},
        "defaults": {"interval": f"{interval}s", "timeout": "10s"},
        "clients": [{"id": "bench", "sites": sites}],
    }


async def _one(
    *,
    checks: int,
    interval: float,
    duration: float,
    plain_url: str,
    delay_url: str | None,
    delay_every: int,
    warmup: float,
    first_round_timeout: float,
) -> dict[str, Any]:
    began = time.monotonic()
    from checks.result import ProbeResult
    from incidents.model import CheckState, Transition
    from monitor.app import running_monitor
    from monitor.config.models import ConfiguredCheck, MonitorConfig

    imported = time.monotonic()
    with tempfile.TemporaryDirectory() as folder:
        config = MonitorConfig.model_validate(
            _config(
                checks=checks,
                interval=interval,
                plain_url=plain_url,
                delay_url=delay_url,
                delay_every=delay_every,
                database=f"{folder}/b.db",
            )
        )
        validated = time.monotonic()
        async with running_monitor(config, serve=False) as running:
            started = time.monotonic()
            monitor, store = running.monitor, running.store
            counted = {"probes": 0, "failures": 0, "writes": 0}
            errors: list[float] = []
            first_round: set[str] = set()
            all_recorded = asyncio.Event()
            measuring = False
            delayed_path = f"/delay/{KNOWN_DELAY_MS}"
            original = monitor.process
            original_record = store.record

            async def record(check: ConfiguredCheck, result: ProbeResult) -> None:
                counted["probes"] += 1
                if not result.ok:
                    counted["failures"] += 1
                if check.spec.url.endswith(delayed_path) and result.latency:
                    errors.append(result.latency - KNOWN_DELAY_MS / 1000)
                await original(check, result)
                if not measuring:
                    first_round.add(check.key)
                    if len(first_round) == checks:
                        all_recorded.set()

            async def counting_record(
                *, transition: Transition, previous_state: CheckState, **rest: Any
            ) -> Any:
                # The store's own rule (monitor.store.store._state_changed): a result costs a
                # transaction when the state changed beyond last_result_at, or an incident did.
                if measuring and (
                    transition.timeline
                    or transition.incident_changed
                    or dataclasses.replace(previous_state, last_result_at=None)
                    != dataclasses.replace(transition.state, last_result_at=None)
                ):
                    counted["writes"] += 1
                return await original_record(
                    transition=transition, previous_state=previous_state, **rest
                )

            monitor.process = record  # type: ignore[method-assign]
            store.record = counting_record  # type: ignore[method-assign]
            # Warm-up: each check's first result writes its state row (one transaction each;
            # a healthy check writes no state after that), so measuring starts once every
            # check has recorded a first result and at least `warmup` intervals have passed.
            await asyncio.sleep(warmup * interval)
            try:
                await asyncio.wait_for(all_recorded.wait(), first_round_timeout)
            except TimeoutError:
                pass
            warmed = time.monotonic()
            first_round_complete = len(first_round) == checks
            measuring = True
            first_round.clear()
            counted["probes"] = counted["failures"] = counted["writes"] = 0
            errors.clear()
            # Every lag of the window (the monitor keeps only the latest 10,000).
            lags = array("d")
            monitor.recent_lags = lags  # type: ignore[assignment]
            # Garbage collector pauses stall the loop: they explain lag and latency outliers.
            pauses: list[float] = []
            full_collections = [0]
            gc_began = [0.0]

            def on_gc(phase: str, info: dict[str, int]) -> None:
                if phase == "start":
                    gc_began[0] = time.perf_counter()
                else:
                    pauses.append(time.perf_counter() - gc_began[0])
                    full_collections[0] += info["generation"] == 2

            gc.callbacks.append(on_gc)
            cpu0, wall0 = time.process_time(), time.monotonic()
            await asyncio.sleep(duration)
            cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
            gc.callbacks.remove(on_gc)
            probes, failures, writes = counted["probes"], counted["failures"], counted["writes"]
            max_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            end_rss = _rss_now_mb()
            sorted_lags = sorted(lags)
            errors.sort()
            # Over the whole run, warm-up included: a false incident anywhere counts.
            incidents = await store.list_incidents(limit=1_000_000)
            registry = running.registry
            discarded = registry.get_sample_value(
                "monitor_probe_results_discarded_total", {"reason": "event_loop_lag"}
            )
            skipped = registry.get_sample_value(
                "monitor_probes_skipped_total", {"reason": "overlap"}
            )
    return {
        "checks": checks,
        "probes": probes,
        "wall_s": wall,
        "cpu_s": cpu,
        "probes_per_s": probes / wall,
        "cpu_ms_per_probe": cpu / probes * 1000 if probes else float("nan"),
        "cpu_percent": cpu / wall * 100,
        "lag_p50_ms": _pct(sorted_lags, 0.50) * 1000,
        "lag_p99_ms": _pct(sorted_lags, 0.99) * 1000,
        "latency_err_p50_ms": _pct(errors, 0.50) * 1000,
        "latency_err_p99_ms": _pct(errors, 0.99) * 1000,
        "latency_samples": len(errors),
        "failures": failures,
        "incidents": len(incidents),
        "state_writes": writes,
        "discarded": discarded or 0.0,
        "skipped": skipped or 0.0,
        "gc_full_collections": full_collections[0],
        "gc_max_ms": max(pauses, default=0.0) * 1000,
        "max_rss_mb": max_rss,
        "end_rss_mb": end_rss,
        "import_s": imported - began,
        "config_s": validated - imported,
        "start_s": started - validated,
        "warmup_s": warmed - started,
        "first_round_complete": first_round_complete,
    }


def _rss_now_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _pct(sorted_values: Any, q: float) -> float:
    if not sorted_values:
        return float("nan")
    return float(sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * q))])


def run_one(
    *,
    checks: int,
    interval: float,
    duration: float,
    plain_url: str,
    delay_url: str | None = None,
    delay_every: int = 10,
    warmup: float = 2.0,
    first_round_timeout: float = FIRST_ROUND_TIMEOUT,
) -> dict[str, Any]:
    """One fresh monitor process; its figures (see `_one`) once it has measured and stopped."""
    command = [
        sys.executable,
        "-m",
        "bench.probe_throughput",
        "--one",
        "--checks",
        str(checks),
        "--interval",
        str(interval),
        "--duration",
        str(duration),
        "--target-url",
        plain_url,
        "--delay-every",
        str(delay_every),
        "--warmup",
        str(warmup),
        "--first-round-timeout",
        str(first_round_timeout),
    ]
    if delay_url:
        command += ["--delay-url", delay_url]
    out = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        sys.stderr.write(out.stderr)
        raise RuntimeError(f"the monitor run failed (exit {out.returncode}): {' '.join(command)}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


COLUMNS = (
    ("checks", "checks", "{:.0f}"),
    ("probes_per_s", "probes/s", "{:.1f}"),
    ("cpu_ms_per_probe", "CPU ms/probe", "{:.3f}"),
    ("cpu_percent", "CPU %", "{:.1f}"),
    ("lag_p50_ms", "lag p50 ms", "{:.2f}"),
    ("lag_p99_ms", "lag p99 ms", "{:.2f}"),
    ("latency_err_p50_ms", "lat err p50 ms", "{:.2f}"),
    ("latency_err_p99_ms", "lat err p99 ms", "{:.2f}"),
    ("failures", "failures", "{:.0f}"),
    ("max_rss_mb", "max RSS MB", "{:.0f}"),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--checks", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument(
        "--interval", type=float, default=10.0, help="seconds between probes of one check"
    )
    parser.add_argument("--duration", type=float, default=20.0, help="measured seconds per run")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--target-url",
        help="URL of the plain page (e.g. an nginx of yours); default bench/target.py's /",
    )
    parser.add_argument(
        "--delay-every",
        type=int,
        default=10,
        help=f"one check in N asks for the {KNOWN_DELAY_MS} ms page (0: none)",
    )
    parser.add_argument(
        "--warmup",
        type=float,
        default=2.0,
        help="intervals to run before measuring (and until every check has a first result)",
    )
    parser.add_argument(
        "--first-round-timeout",
        type=float,
        default=FIRST_ROUND_TIMEOUT,
        help="seconds to wait at most, after the warm-up, for every check's first result",
    )
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--delay-url", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)  # the old `--one` form
    args = parser.parse_args()

    if args.one:
        if args.port and not args.target_url:
            args.target_url = f"http://127.0.0.1:{args.port}/"
            args.delay_url = args.delay_url or f"{args.target_url}delay/{KNOWN_DELAY_MS}"
        import uvloop

        result = uvloop.run(
            _one(
                checks=args.checks[0],
                interval=args.interval,
                duration=args.duration,
                plain_url=args.target_url,
                delay_url=args.delay_url,
                delay_every=args.delay_every,
                warmup=args.warmup,
                first_round_timeout=args.first_round_timeout,
            )
        )
        print(json.dumps(result))
        return

    from bench.servers import target

    with target() as server:
        delay_url = f"{server.url}delay/{KNOWN_DELAY_MS}"
        plain_url = args.target_url or server.url
        print(
            f"interval {args.interval:g}s, {args.duration:g}s measured per run, {args.runs} runs, "
            f"median shown; {os.cpu_count()} cores; plain page {plain_url}"
            + (
                f"; one check in {args.delay_every} hits a {KNOWN_DELAY_MS} ms page"
                if args.delay_every
                else ""
            ),
            flush=True,
        )
        rows = []
        for checks in args.checks:
            runs = [
                run_one(
                    checks=checks,
                    interval=args.interval,
                    duration=args.duration,
                    plain_url=plain_url,
                    delay_url=delay_url,
                    delay_every=args.delay_every,
                    warmup=args.warmup,
                    first_round_timeout=args.first_round_timeout,
                )
                for _ in range(args.runs)
            ]
            rows.append({key: statistics.median(r[key] for r in runs) for key, _, _ in COLUMNS})
        print_table(rows, COLUMNS)


def print_table(rows: list[dict[str, float]], columns: tuple[tuple[str, str, str], ...]) -> None:
    """A markdown table, numbers right-aligned."""
    header = [title for _, title, _ in columns]
    body = [[fmt.format(row[key]) for key, _, fmt in columns] for row in rows]
    widths = [max(len(cell) for cell in column) for column in zip(header, *body, strict=True)]
    lines = [header, ["-" * (w - 1) + ":" for w in widths], *body]
    for line in lines:
        print("| " + " | ".join(cell.rjust(w) for cell, w in zip(line, widths, strict=True)) + " |")


if __name__ == "__main__":
    main()

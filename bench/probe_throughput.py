"""Benchmark: probes/s, CPU per probe, scheduling lag and latency accuracy for N checks.

One command, several runs, medians:

    .venv/bin/python -m bench.probe_throughput                  # 1,000 and 10,000 checks
    .venv/bin/python -m bench.probe_throughput --checks 1000 --runs 5 --duration 30

The target is a separate process on loopback (bench/target.py), so only the monitor's own CPU
is counted. Every run is a fresh monitor process with the real scheduler, probe (a fresh
connection per probe), engine, SQLite store and metrics. One check in ten asks the target for
a page that takes exactly 50 ms, and the table reports how far the measured latency is off.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

KNOWN_DELAY_MS = 50


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _config(*, checks: int, interval: float, port: int, database: str) -> dict[str, Any]:
    per_site = 100
    sites = []
    for s in range((checks + per_site - 1) // per_site):
        count = min(per_site, checks - s * per_site)
        sites.append(
            {
                "id": f"site{s}",
                "url": f"http://127.0.0.1:{port}",
                "checks": [
                    {"id": f"c{i}", "url": f"/delay/{KNOWN_DELAY_MS}" if i % 10 == 0 else "/"}
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


async def _one(*, checks: int, interval: float, duration: float, port: int) -> dict[str, Any]:
    from checks.result import ProbeResult
    from monitor.app import running_monitor
    from monitor.config.models import ConfiguredCheck, MonitorConfig

    with tempfile.TemporaryDirectory() as folder:
        config = MonitorConfig.model_validate(
            _config(checks=checks, interval=interval, port=port, database=f"{folder}/b.db")
        )
        async with running_monitor(config, serve=False) as running:
            monitor = running.monitor
            counted = {"probes": 0, "failures": 0}
            errors: list[float] = []
            original = monitor.process

            async def record(check: ConfiguredCheck, result: ProbeResult) -> None:
                counted["probes"] += 1
                if not result.ok:
                    counted["failures"] += 1
                if check.spec.url.endswith(f"/delay/{KNOWN_DELAY_MS}") and result.latency:
                    errors.append(result.latency - KNOWN_DELAY_MS / 1000)
                await original(check, result)

            monitor.process = record  # type: ignore[method-assign]
            # Warm-up: every check has run twice; its first result writes its state (one
            # transaction each), and that backlog must be gone before measuring.
            await asyncio.sleep(2 * interval)
            counted["probes"] = counted["failures"] = 0
            errors.clear()
            monitor.recent_lags.clear()
            cpu0, wall0 = time.process_time(), time.monotonic()
            await asyncio.sleep(duration)
            cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
            lags = sorted(monitor.recent_lags)
            errors.sort()
    probes = counted["probes"]
    return {
        "checks": checks,
        "probes_per_s": probes / wall,
        "cpu_ms_per_probe": cpu / probes * 1000 if probes else float("nan"),
        "cpu_percent": cpu / wall * 100,
        "lag_p50_ms": _pct(lags, 0.50) * 1000,
        "lag_p99_ms": _pct(lags, 0.99) * 1000,
        "latency_err_p50_ms": _pct(errors, 0.50) * 1000,
        "latency_err_p99_ms": _pct(errors, 0.99) * 1000,
        "failures": counted["failures"],
        "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def _pct(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * q))]


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
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.one:
        import uvloop

        result = uvloop.run(
            _one(
                checks=args.checks[0],
                interval=args.interval,
                duration=args.duration,
                port=args.port,
            )
        )
        print(json.dumps(result))
        return

    port = _free_port()
    root = Path(__file__).resolve().parent.parent
    target = subprocess.Popen(
        [sys.executable, "-m", "bench.target", str(port)],
        cwd=root,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert target.stdout is not None and target.stdout.readline().strip() == "ready"
        print(
            f"interval {args.interval:g}s, {args.duration:g}s measured per run, {args.runs} runs, "
            f"median shown; {os.cpu_count()} cores; "
            f"one check in 10 hits a {KNOWN_DELAY_MS} ms page",
            flush=True,
        )
        rows = []
        for checks in args.checks:
            runs = []
            for _ in range(args.runs):
                out = subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "bench.probe_throughput",
                        "--one",
                        "--checks",
                        str(checks),
                        "--interval",
                        str(args.interval),
                        "--duration",
                        str(args.duration),
                        "--port",
                        str(port),
                    ],
                    cwd=root,
                    capture_output=True,
                    text=True,
                    check=True,
                )
                runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
            rows.append({key: statistics.median(r[key] for r in runs) for key, _, _ in COLUMNS})
        _print_table(rows)
    finally:
        target.terminate()
        target.wait()


def _print_table(rows: list[dict[str, float]]) -> None:
    header = [title for _, title, _ in COLUMNS]
    body = [[fmt.format(row[key]) for key, _, fmt in COLUMNS] for row in rows]
    widths = [max(len(cell) for cell in column) for column in zip(header, *body, strict=True)]
    for line in [header, *body]:
        print("| " + " | ".join(cell.rjust(w) for cell, w in zip(line, widths, strict=True)) + " |")


if __name__ == "__main__":
    main()

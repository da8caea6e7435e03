"""Benchmark: how the monitor's CPU, memory, lag and accuracy grow from 1,000 to 50,000 checks.

    .venv/bin/python -m bench.scale                          # 1,000 / 10,000 / 50,000 at 60 s
    .venv/bin/python -m bench.scale --checks 50000 --runs 1 --duration 600   # the 10-minute run

Every run is a fresh monitor process (bench.probe_throughput) with N http checks every
`--interval` seconds: the plain page is served by our own nginx (cheap, so the 2 cores go to
the monitor), and one check in ten asks bench/target.py for a page that answers after exactly
50 ms. Measuring starts once every check has recorded its first result (that result writes the
check's state row, one transaction each) and at least one interval has passed. After the run,
the incidents in the monitor's store are counted: against healthy targets there must be none.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from typing import Any

from bench.probe_throughput import KNOWN_DELAY_MS, print_table, run_one
from bench.servers import SetupError, ensure_installed, nginx, target

# Issue 6's targets, checked per row.
LAG_P99_MS = 100.0
LATENCY_ERR_P99_MS = 10.0
RSS_MB = 500.0

COLUMNS = (
    ("checks", "checks", "{:.0f}"),
    ("startup_s", "startup s", "{:.1f}"),
    ("probes_per_s", "probes/s", "{:.1f}"),
    ("cpu_ms_per_probe", "CPU ms/probe", "{:.3f}"),
    ("cpu_percent", "CPU %", "{:.1f}"),
    ("lag_p50_ms", "lag p50 ms", "{:.2f}"),
    ("lag_p99_ms", "lag p99 ms", "{:.2f}"),
    ("latency_err_p50_ms", "lat err p50 ms", "{:.2f}"),
    ("latency_err_p99_ms", "lat err p99 ms", "{:.2f}"),
    ("failures", "failures", "{:.0f}"),
    ("incidents", "incidents", "{:.0f}"),
    ("state_writes", "state writes", "{:.0f}"),
    ("discarded", "discarded", "{:.0f}"),
    ("max_rss_mb", "max RSS MB", "{:.0f}"),
)


def _misses(row: dict[str, float]) -> list[str]:
    misses = []
    if not row["lag_p99_ms"] < LAG_P99_MS:
        misses.append(f"lag p99 {row['lag_p99_ms']:.0f} ms >= {LAG_P99_MS:.0f}")
    if not row["latency_err_p99_ms"] <= LATENCY_ERR_P99_MS:
        misses.append(f"lat err p99 {row['latency_err_p99_ms']:.1f} ms > {LATENCY_ERR_P99_MS:.0f}")
    if row["incidents"]:
        misses.append(f"{row['incidents']:.0f} incidents opened")
    if not row["max_rss_mb"] < RSS_MB:
        misses.append(f"max RSS {row['max_rss_mb']:.0f} MB >= {RSS_MB:.0f}")
    return misses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--checks", type=int, nargs="+", default=[1000, 10000, 50000])
    parser.add_argument("--interval", type=float, default=60.0, help="seconds between probes")
    parser.add_argument("--duration", type=float, default=30.0, help="measured seconds per run")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    try:
        ensure_installed(("nginx",))
        with nginx() as web, target() as slow:
            print(
                f"interval {args.interval:g}s, {args.duration:g}s measured per run after a "
                f"warm-up of one interval, {args.runs} runs, median shown; {os.cpu_count()} "
                f"cores; plain page nginx {web.url}; one check in 10 asks bench/target.py for "
                f"a {KNOWN_DELAY_MS} ms page",
                flush=True,
            )
            rows: list[dict[str, float]] = []
            for checks in args.checks:
                runs: list[dict[str, Any]] = []
                for run in range(1, args.runs + 1):
                    one = run_one(
                        checks=checks,
                        interval=args.interval,
                        duration=args.duration,
                        plain_url=web.url,
                        delay_url=f"{slow.url}delay/{KNOWN_DELAY_MS}",
                        delay_every=10,
                        warmup=1.0,
                    )
                    one["startup_s"] = one["config_s"] + one["start_s"]
                    runs.append(one)
                    print(
                        f"{checks} checks, run {run}: startup {one['startup_s']:.1f} s "
                        f"(config {one['config_s']:.1f} s, store and state "
                        f"{one['start_s']:.1f} s), every check's first result after "
                        f"{one['warmup_s']:.0f} s"
                        + ("" if one["first_round_complete"] else " (INCOMPLETE: measured anyway)")
                        + f", {one['probes_per_s']:.1f} probes/s, "
                        f"{one['cpu_ms_per_probe']:.3f} ms/probe, lag p99 "
                        f"{one['lag_p99_ms']:.1f} ms, lat err p99 "
                        f"{one['latency_err_p99_ms']:.1f} ms ({one['latency_samples']} "
                        f"samples), longest GC pause {one['gc_max_ms']:.0f} ms "
                        f"({one['gc_full_collections']} full), {one['incidents']} incidents, "
                        f"max RSS {one['max_rss_mb']:.0f} MB (at the end {one['end_rss_mb']:.0f})",
                        flush=True,
                    )
                rows.append({key: statistics.median(r[key] for r in runs) for key, _, _ in COLUMNS})
    except SetupError as exc:
        sys.exit(f"setup failed: {exc}")

    print()
    print_table(rows, COLUMNS)
    print()
    base = rows[0]
    for row in rows:
        misses = _misses(row)
        growth = (
            f"CPU % x{row['cpu_percent'] / base['cpu_percent']:.1f}, "
            f"max RSS x{row['max_rss_mb'] / base['max_rss_mb']:.1f} "
            f"for x{row['checks'] / base['checks']:g} checks; "
            if row is not base
            else ""
        )
        verdict = "targets met" if not misses else "MISSED: " + "; ".join(misses)
        print(f"{row['checks']:.0f} checks: {growth}{verdict}")


if __name__ == "__main__":
    main()

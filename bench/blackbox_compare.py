"""Benchmark: CPU per completed probe, our monitor against Debian's blackbox_exporter, side by side.

    .venv/bin/python -m bench.blackbox_compare --rate 200 --runs 3 --duration 20

Both probe the same loopback nginx (our own process, `/` answers 200 with 300 bytes) at the same
rate, with a fresh connection per probe:

- blackbox_exporter (our own process, module `http_2xx`) is driven by an open-loop load
  generator in this process: `GET /probe?module=http_2xx&target=...` started at exactly `--rate`
  per second over a keep-alive connection, as Prometheus scrapes it; each answer must say
  `probe_success 1`. Its CPU is utime+stime of its process (/proc/<pid>/stat) over the measured
  window, after a warm-up; the load generator's own CPU is not counted.
- the monitor: a fresh process (bench.probe_throughput) with `rate * interval` http checks of
  the same page, the whole pipeline (scheduler, probe, classification, metrics, state, incident
  engine, SQLite store); its CPU is its process time over the measured window, after a warm-up.

Runs alternate (blackbox, monitor, blackbox, ...) so drifts in the machine's load hit both;
the table shows medians. Missing packages are installed with apt-get.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import sys
from typing import Any

from bench.probe_throughput import print_table, run_one
from bench.servers import (
    Server,
    SetupError,
    blackbox_exporter,
    cpu_seconds,
    ensure_installed,
    nginx,
    rss_mb,
)

PROBE_SUCCESS = re.compile(rb"^probe_success 1$", re.MULTILINE)


async def _drive(
    *, blackbox: Server, target_url: str, rate: float, warmup: float, duration: float
) -> dict[str, Any]:
    """Open-loop load on blackbox_exporter; its CPU and the probes completed in the window."""
    import aiohttp

    url = f"{blackbox.url}probe"
    params = {"module": "http_2xx", "target": target_url}
    window = {"open": False, "done": 0, "failed": 0}
    late: list[float] = []
    loop = asyncio.get_running_loop()

    async def probe(session: aiohttp.ClientSession) -> None:
        try:
            async with session.get(url, params=params) as response:
                body = await response.read()
            ok = response.status == 200 and PROBE_SUCCESS.search(body) is not None
        except (aiohttp.ClientError, TimeoutError):
            ok = False
        if window["open"]:
            window["done"] += 1
            window["failed"] += not ok

    # Keep-alive to the exporter (as Prometheus); blackbox itself opens a fresh connection to
    # the target for every probe.
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    timeout = aiohttp.ClientTimeout(total=10)
    tasks: set[asyncio.Task[None]] = set()
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        t0 = loop.time()
        opens, closes = t0 + warmup, t0 + warmup + duration
        cpu0 = wall0 = 0.0
        i = 0
        while True:
            due = t0 + i / rate
            if due >= closes:
                break
            now = loop.time()
            if due > now:
                await asyncio.sleep(due - now)
                now = loop.time()
            if not window["open"] and now >= opens:
                cpu0, wall0 = cpu_seconds(blackbox.pid), now
                window["open"] = True
            if window["open"]:
                late.append(now - due)
            task = asyncio.create_task(probe(session))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            i += 1
        await asyncio.sleep(max(0.0, closes - loop.time()))
        cpu, wall = cpu_seconds(blackbox.pid) - cpu0, loop.time() - wall0
        window["open"] = False
        done, failed = window["done"], window["failed"]
        if tasks:
            await asyncio.gather(*tasks)
    late.sort()
    return {
        "probes": done,
        "failures": failed,
        "cpu_s": cpu,
        "wall_s": wall,
        "probes_per_s": done / wall,
        "cpu_ms_per_probe": cpu / done * 1000 if done else float("nan"),
        "start_late_p99_ms": late[int(len(late) * 0.99)] * 1000 if late else float("nan"),
        "max_rss_mb": rss_mb(blackbox.pid, field="VmHWM"),
    }


def _blackbox_run(
    *, target_url: str, rate: float, warmup: float, duration: float
) -> dict[str, Any]:
    with blackbox_exporter() as blackbox:
        try:
            import uvloop

            runner: Any = uvloop.run
        except ImportError:
            runner = asyncio.run
        result: dict[str, Any] = runner(
            _drive(
                blackbox=blackbox,
                target_url=target_url,
                rate=rate,
                warmup=warmup,
                duration=duration,
            )
        )
        return result


COLUMNS = (
    ("rate", "rate/s", "{:.0f}"),
    ("bb_ms", "blackbox ms/probe", "{:.3f}"),
    ("mon_ms", "monitor ms/probe", "{:.3f}"),
    ("ratio", "ratio", "{:.2f}"),
    ("bb_probes", "blackbox probes", "{:.0f}"),
    ("mon_probes", "monitor probes", "{:.0f}"),
    ("bb_failures", "blackbox failures", "{:.0f}"),
    ("mon_failures", "monitor failures", "{:.0f}"),
    ("bb_rss", "blackbox max RSS MB", "{:.0f}"),
    ("mon_rss", "monitor max RSS MB", "{:.0f}"),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--rate", type=float, default=200.0, help="probes per second, both")
    parser.add_argument("--runs", type=int, default=3, help="runs of each, alternating")
    parser.add_argument("--duration", type=float, default=20.0, help="measured seconds per run")
    parser.add_argument(
        "--interval",
        type=float,
        default=10.0,
        help="the monitor's check interval: it runs rate * interval checks",
    )
    parser.add_argument(
        "--blackbox-warmup", type=float, default=5.0, help="seconds of load before measuring"
    )
    args = parser.parse_args()
    checks = round(args.rate * args.interval)
    try:
        ensure_installed()
        with nginx() as web:
            print(
                f"rate {args.rate:g}/s each, {args.duration:g}s measured per run, {args.runs} runs "
                f"alternating, median shown; {os.cpu_count()} cores; target nginx {web.url}; "
                f"monitor: {checks} checks every {args.interval:g}s",
                flush=True,
            )
            bb_runs: list[dict[str, Any]] = []
            mon_runs: list[dict[str, Any]] = []
            for run in range(1, args.runs + 1):
                bb = _blackbox_run(
                    target_url=web.url,
                    rate=args.rate,
                    warmup=args.blackbox_warmup,
                    duration=args.duration,
                )
                bb_runs.append(bb)
                print(
                    f"run {run} blackbox: {bb['cpu_ms_per_probe']:.3f} ms/probe, "
                    f"{bb['probes']} probes ({bb['probes_per_s']:.1f}/s), "
                    f"{bb['failures']} failures, start lateness p99 "
                    f"{bb['start_late_p99_ms']:.1f} ms",
                    flush=True,
                )
                mon = run_one(
                    checks=checks,
                    interval=args.interval,
                    duration=args.duration,
                    plain_url=web.url,
                    delay_every=0,
                    warmup=1.0,
                )
                mon_runs.append(mon)
                print(
                    f"run {run} monitor:  {mon['cpu_ms_per_probe']:.3f} ms/probe, "
                    f"{mon['probes']} probes ({mon['probes_per_s']:.1f}/s), "
                    f"{mon['failures']} failures, lag p99 {mon['lag_p99_ms']:.1f} ms",
                    flush=True,
                )
    except SetupError as exc:
        sys.exit(f"setup failed: {exc}")

    def median(runs: list[dict[str, Any]], key: str) -> float:
        return float(statistics.median(r[key] for r in runs))

    bb_ms, mon_ms = median(bb_runs, "cpu_ms_per_probe"), median(mon_runs, "cpu_ms_per_probe")
    row = {
        "rate": args.rate,
        "bb_ms": bb_ms,
        "mon_ms": mon_ms,
        "ratio": mon_ms / bb_ms,
        "bb_probes": median(bb_runs, "probes"),
        "mon_probes": median(mon_runs, "probes"),
        "bb_failures": median(bb_runs, "failures"),
        "mon_failures": median(mon_runs, "failures"),
        "bb_rss": median(bb_runs, "max_rss_mb"),
        "mon_rss": median(mon_runs, "max_rss_mb"),
    }
    print()
    print_table([row], COLUMNS)


if __name__ == "__main__":
    main()

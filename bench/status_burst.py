"""Benchmark: a burst of status-page readers while the monitor probes N checks.

    .venv/bin/python -m bench.status_burst                       # 10,000 checks, 500 req/s, 60 s
    .venv/bin/python -m bench.status_burst --checks 2000 --rate 200 --duration 20   # smaller

A monitor process runs N http checks every `--interval` seconds against our own nginx, and a
client with a public status page (3 sites, one of them down with an open incident and a public
update). A load process (another process: its CPU is not the monitor's) then asks for the
status page at `--rate` requests per second, open loop (a request leaves on schedule whether
or not the earlier ones have been answered), for `--duration` seconds. Measured in the monitor
during the burst: scheduler lag p99 and probes shed (skipped or discarded). Then the same burst
against the same bytes as a static file served by nginx: the limit; the table gives the page's
figures beside nginx's, and as a ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from array import array
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.probe_throughput import _config as checks_config
from bench.servers import (
    ROOT,
    Server,
    SetupError,
    ensure_installed,
    free_port,
    nginx,
    nginx_in,
    stop,
)

LAG_P99_MS = 100.0


# --- the monitor process -----------------------------------------------------------------


async def _monitor(*, checks: int, interval: float, plain_url: str, down_url: str) -> None:
    from monitor.app import running_monitor
    from monitor.config.models import MonitorConfig

    with tempfile.TemporaryDirectory() as folder:
        document = checks_config(
            checks=checks,
            interval=interval,
            plain_url=plain_url,
            delay_url=None,
            delay_every=0,
            database=f"{folder}/b.db",
        )
        document["api"] = {"token": "bench-token"}
        document["clients"].append(
            {
                "id": "acme",
                "name": "Acme Ltd",
                "status_page": {"public": True, "title": "Acme status"},
                "sites": [
                    {
                        "id": "shop",
                        "name": "Acme Shop",
                        "url": down_url,
                        "checks": [{"id": "home", "url": "/"}],
                    },
                    {
                        "id": "blog",
                        "name": "Acme Blog",
                        "url": plain_url,
                        "checks": [{"id": "h", "url": "/"}],
                    },
                    {
                        "id": "docs",
                        "name": "Acme Docs",
                        "url": plain_url,
                        "checks": [{"id": "h", "url": "/"}],
                    },
                ],
            }
        )
        config = MonitorConfig.model_validate(document)
        async with running_monitor(config) as running:
            monitor, store = running.monitor, running.store
            while not await store.list_incidents(open_only=True):
                await asyncio.sleep(0.2)
            incident = (await store.list_incidents(open_only=True))[0]
            assert incident.id is not None
            await monitor.desk.post_update(
                incident.id, by="bench", text="We are restoring the shop.", stage=None
            )
            await asyncio.sleep(2 * interval)  # every check has run
            print(json.dumps({"url": f"{running.url}/status/acme"}), flush=True)
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, sys.stdin.readline)  # "start"
            lags = array("d")
            monitor.recent_lags = lags  # type: ignore[assignment]
            registry = running.registry

            def shed() -> float:
                return sum(
                    registry.get_sample_value(name, {"reason": reason}) or 0.0
                    for name, reason in (
                        ("monitor_probe_results_discarded_total", "event_loop_lag"),
                        ("monitor_probes_skipped_total", "overlap"),
                    )
                )

            shed0, builds0, cpu0 = shed(), running.status.builds, time.process_time()
            await loop.run_in_executor(None, sys.stdin.readline)  # "stop"
            ordered = sorted(lags)
            print(
                json.dumps(
                    {
                        "lag_p99_ms": _pct(ordered, 0.99) * 1000,
                        "lag_max_ms": (ordered[-1] if ordered else 0.0) * 1000,
                        "lag_samples": len(ordered),
                        "shed": shed() - shed0,
                        "snapshot_builds": running.status.builds - builds0,
                        "monitor_cpu_s": time.process_time() - cpu0,
                    }
                ),
                flush=True,
            )


# --- the load process ----------------------------------------------------------------------


async def _load(*, url: str, rate: float, duration: float) -> dict[str, Any]:
    import aiohttp

    latencies: list[float] = []
    errors = [0]
    connector = aiohttp.TCPConnector(limit=256)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:

        async def one() -> None:
            began = time.perf_counter()
            try:
                async with http.get(url) as response:
                    await response.read()
                    if response.status != 200:
                        errors[0] += 1
                        return
            except (aiohttp.ClientError, TimeoutError):
                errors[0] += 1
                return
            latencies.append(time.perf_counter() - began)

        tasks = []
        start = time.perf_counter()
        total = int(rate * duration)
        for n in range(total):
            delay = start + n / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one()))
        await asyncio.gather(*tasks)
        wall = time.perf_counter() - start
    latencies.sort()
    return {
        "sent": total,
        "ok": len(latencies),
        "errors": errors[0],
        "req_per_s": len(latencies) / wall,
        "p50_ms": _pct(latencies, 0.50) * 1000,
        "p99_ms": _pct(latencies, 0.99) * 1000,
    }


def _pct(values: Any, q: float) -> float:
    if not values:
        return float("nan")
    return float(values[min(len(values) - 1, int(q * len(values)))])


# --- orchestration -------------------------------------------------------------------------


@contextmanager
def static_nginx(body: bytes) -> Iterator[Server]:
    with tempfile.TemporaryDirectory(prefix="bench-static-") as folder:
        # nginx's workers run as another user: the folder must be theirs to read.
        os.chmod(folder, 0o755)
        Path(folder, "www").mkdir(mode=0o755)
        page = Path(folder, "www", "status.html")
        page.write_bytes(body)
        page.chmod(0o644)
        http, server = "types { text/html html; }", f"root {folder}/www;"
        with nginx_in(folder, http=http, server=server) as running:
            yield running


def _burst(url: str, *, rate: float, duration: float) -> dict[str, Any]:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.status_burst",
            "--load",
            url,
            "--rate",
            str(rate),
            "--duration",
            str(duration),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--checks", type=int, default=10_000)
    parser.add_argument("--interval", type=float, default=60.0)
    parser.add_argument("--rate", type=float, default=500.0, help="status requests per second")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of burst")
    parser.add_argument("--load", help=argparse.SUPPRESS)
    parser.add_argument("--monitor", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--plain-url", help=argparse.SUPPRESS)
    parser.add_argument("--down-url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load:
        print(json.dumps(asyncio.run(_load(url=args.load, rate=args.rate, duration=args.duration))))
        return
    if args.monitor:
        import uvloop

        uvloop.run(
            _monitor(
                checks=args.checks,
                interval=args.interval,
                plain_url=args.plain_url,
                down_url=args.down_url,
            )
        )
        return
    try:
        ensure_installed(("nginx",))
        with nginx() as web:
            down = f"http://127.0.0.1:{free_port()}"  # nothing listens: the shop is down
            monitor = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "bench.status_burst",
                    "--monitor",
                    "--checks",
                    str(args.checks),
                    "--interval",
                    str(args.interval),
                    "--plain-url",
                    web.url,
                    "--down-url",
                    down,
                ],
                cwd=ROOT,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                start_new_session=True,
            )
            try:
                assert monitor.stdin is not None and monitor.stdout is not None
                ready = json.loads(monitor.stdout.readline())
                url = ready["url"]
                import urllib.request

                with urllib.request.urlopen(url) as response:
                    body = response.read()
                monitor.stdin.write("start\n")
                monitor.stdin.flush()
                page = _burst(url, rate=args.rate, duration=args.duration)
                monitor.stdin.write("stop\n")
                monitor.stdin.flush()
                inside = json.loads(monitor.stdout.readline())
            finally:
                stop(monitor)
        with static_nginx(body) as static:
            limit = _burst(f"{static.url}status.html", rate=args.rate, duration=args.duration)
    except SetupError as exc:
        sys.exit(f"setup failed: {exc}")
    print(
        f"{args.checks} checks every {args.interval:g}s; burst {args.rate:g} req/s for "
        f"{args.duration:g}s from another process; page {len(body)} bytes; {os.cpu_count()} cores"
    )
    print(f"{'':24}{'status page':>14}{'nginx static':>14}{'ratio':>8}")
    for key, label in (("req_per_s", "answered req/s"), ("p50_ms", "p50 ms"), ("p99_ms", "p99 ms")):
        ratio = page[key] / limit[key] if limit[key] else float("nan")
        print(f"{label:24}{page[key]:>14.1f}{limit[key]:>14.1f}{ratio:>8.2f}")
    print(f"{'errors':24}{page['errors']:>14}{limit['errors']:>14}")
    print(
        f"monitor during the burst: scheduler lag p99 {inside['lag_p99_ms']:.1f} ms (max "
        f"{inside['lag_max_ms']:.1f}, {inside['lag_samples']} samples), probes shed "
        f"{inside['shed']:.0f}, snapshot builds {inside['snapshot_builds']}, CPU "
        f"{inside['monitor_cpu_s']:.1f} s"
    )
    met = inside["lag_p99_ms"] < LAG_P99_MS and inside["shed"] == 0
    print("targets met" if met else "MISSED: lag p99 >= 100 ms or probes shed")


if __name__ == "__main__":
    main()

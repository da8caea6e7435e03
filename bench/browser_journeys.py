"""Benchmark: browser checks (issue 15) on this machine, beside a bare Playwright script.

    .venv/bin/python -m bench.browser_journeys                   # 3 runs of 60 s each
    .venv/bin/python -m bench.browser_journeys --runs 1 --duration 20 --soak 200   # quicker

A 5-step journey (open the express checkout, type an e-mail, choose shipping, place the order,
wait for the confirmation) against the demo shop on loopback (its own process):

1. Sustained journeys per minute at max_pages 1, 2 and 4: a process runs the journey through
   the monitor's BrowserPool and probe (fresh context per journey, Web Vitals, heap watch),
   with that many journeys in flight, for `--duration` seconds after a warm-up. CPU seconds
   per journey and peak memory are of that process plus its Chromium (and Playwright's
   driver): utime+stime, reaped children included, and the peak of RSS (and PSS, each shared
   page counted once) summed over the process tree.
2. The floor: the same journey as a bare Playwright script (same Chromium, a new context per
   journey, same concurrency), and the ratio of ours to it.
3. The http checks' scheduler lag p99 while journeys run: a monitor with `--checks` http
   checks every `--interval` s (on the shop's /healthz) and browser checks at max_pages 2.
4. `--soak N`: N journeys in a row at max_pages 2, memory sampled after each tenth: flat after
   the warm-up or not.

Medians over `--runs`; each measurement is a fresh process.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from array import array
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
STEPS: list[dict[str, Any]] = [
    {"name": "open", "goto": "/express"},
    {"name": "email", "fill": "#email", "value": "monitor@agency.example"},
    {"name": "shipping", "select": "#shipping", "value": "express"},
    {"name": "place-order", "click": "#place-order"},
    {"name": "confirmed", "wait_for": {"selector": "#confirmation"}},
]
GOAL_PER_MIN = 60.0
GOAL_RSS_MB = 1500.0
LAG_P99_MS = 100.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# --- measuring a process tree ----------------------------------------------------------------


def tree_cpu_seconds(pid: int) -> float:
    """utime + stime (+ those of reaped children) over `pid` and its descendants now."""
    from monitor.proc_tree import descendants

    total = 0.0
    for member in descendants(pid):
        try:
            stat = Path(f"/proc/{member}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        total += sum(int(value) for value in fields[11:15]) / CLOCK_TICKS
    return total


class MemoryPeak:
    """Samples the tree's RSS and PSS every `every` seconds; keeps the peaks."""

    def __init__(self, pid: int, *, every: float = 0.5) -> None:
        self._pid = pid
        self._every = every
        self.rss = 0
        self.pss = 0
        self._task: asyncio.Task[None] | None = None

    def sample(self) -> tuple[int, int]:
        from monitor.proc_tree import descendants, pss_bytes, rss_bytes

        family = descendants(self._pid)
        rss, pss = rss_bytes(family), pss_bytes(family)
        self.rss, self.pss = max(self.rss, rss), max(self.pss, pss)
        return rss, pss

    async def _run(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(self._every)

    def __enter__(self) -> MemoryPeak:
        self._task = asyncio.ensure_future(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()


async def _sustained(run_one: Any, *, pages: int, duration: float) -> dict[str, float]:
    """Run journeys `pages` at a time for `duration` s; journeys/min, CPU s each, peaks."""
    for _ in range(pages):  # warm-up: the browser launched, caches and JIT warm
        await run_one()
    me = os.getpid()
    done = failed = 0
    deadline = time.monotonic() + duration
    cpu0 = tree_cpu_seconds(me)
    started = time.monotonic()

    async def worker() -> None:
        nonlocal done, failed
        while time.monotonic() < deadline:
            ok = await run_one()
            done += 1
            failed += 0 if ok else 1

    with MemoryPeak(me) as peak:
        await asyncio.gather(*(worker() for _ in range(pages)))
        peak.sample()
    elapsed = time.monotonic() - started
    cpu = tree_cpu_seconds(me) - cpu0
    return {
        "per_min": done / elapsed * 60,
        "cpu_s": cpu / max(done, 1),
        "peak_rss_mb": peak.rss / 2**20,
        "peak_pss_mb": peak.pss / 2**20,
        "failed": failed,
    }


# --- child processes -------------------------------------------------------------------------


async def _ours(url: str, pages: int, duration: float) -> dict[str, float]:
    from checks.browser import probe_browser
    from checks.browser_spec import BrowserCheckSpec
    from monitor.browser_pool import BrowserPool, find_chromium

    chromium = find_chromium()
    assert chromium is not None, "apt-get install chromium"
    pool = BrowserPool(executable=chromium, max_pages=pages)
    spec = BrowserCheckSpec.model_validate({"url": url, "steps": STEPS})

    async def run_one() -> bool:
        result = await pool.run(
            lambda open_context: probe_browser(
                spec,
                open_context=open_context,
                now=lambda: datetime.now(UTC),
                max_heap_bytes=256 * 2**20,
            )
        )
        return result.ok

    try:
        return await _sustained(run_one, pages=pages, duration=duration)
    finally:
        await pool.close()


async def _floor(url: str, pages: int, duration: float) -> dict[str, float]:
    from playwright.async_api import async_playwright

    from monitor.browser_pool import find_chromium

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=find_chromium(), headless=True, args=["--no-sandbox"]
        )

        async def run_one() -> bool:
            context = await browser.new_context()
            try:
                page = await context.new_page()
                await page.goto(url + "/express")
                await page.fill("#email", "monitor@agency.example")
                await page.select_option("#shipping", "express")
                await page.click("#place-order")
                await page.wait_for_selector("#confirmation", timeout=10_000)
                return True
            finally:
                await context.close()

        try:
            return await _sustained(run_one, pages=pages, duration=duration)
        finally:
            await browser.close()


async def _soak(url: str, count: int) -> dict[str, Any]:
    from checks.browser import probe_browser
    from checks.browser_spec import BrowserCheckSpec
    from monitor.browser_pool import BrowserPool, find_chromium

    pool = BrowserPool(executable=find_chromium() or "chromium", max_pages=2)
    spec = BrowserCheckSpec.model_validate({"url": url, "steps": STEPS})
    peak = MemoryPeak(os.getpid())
    samples: list[float] = []
    try:
        for index in range(0, count, 2):
            results = await asyncio.gather(
                *(
                    pool.run(
                        lambda open_context: probe_browser(
                            spec, open_context=open_context, now=lambda: datetime.now(UTC)
                        )
                    )
                    for _ in range(2)
                )
            )
            assert all(result.ok for result in results), results
            if (index + 2) % 20 == 0:
                samples.append(peak.sample()[1] / 2**20)
    finally:
        await pool.close()
    return {"pss_mb_every_20": [round(value) for value in samples]}


async def _lag(
    url: str, checks: int, interval: float, duration: float, *, journeys: int = 4
) -> dict[str, float]:
    from bench.probe_throughput import _config as checks_config
    from monitor.app import running_monitor
    from monitor.config.models import MonitorConfig
    from monitor.demo.run import EXPRESS_JOURNEY

    with tempfile.TemporaryDirectory() as folder:
        document = checks_config(
            checks=checks,
            interval=interval,
            plain_url=url + "/healthz",
            delay_url=None,
            delay_every=0,
            database=f"{folder}/b.db",
        )
        if journeys:  # lag-alone: the same http checks without any browser check
            document["clients"].append(
                {
                    "id": "shop",
                    "sites": [
                        {
                            "id": "s",
                            "url": url,
                            "checks": [
                                {**EXPRESS_JOURNEY, "id": f"journey{n}", "interval": "2s"}
                                for n in range(journeys)
                            ],
                        }
                    ],
                }
            )
        document["browser"] = {"max_pages": 2, "screenshots_dir": f"{folder}/shots"}
        config = MonitorConfig.model_validate(document)
        async with running_monitor(config) as running:
            await asyncio.sleep(2 * interval)  # every check has run once
            lags = array("d")
            running.monitor.recent_lags = lags  # type: ignore[assignment]
            registry = running.registry

            def journeys_done() -> float:
                return sum(
                    sample.value
                    for family in registry.collect()
                    if family.name == "monitor_probe_results"
                    for sample in family.samples
                    if sample.name.endswith("_total")
                    and sample.labels.get("check", "").startswith("journey")
                )

            before = journeys_done()
            await asyncio.sleep(duration)
            ordered = sorted(lags)
            return {
                "lag_p99_ms": ordered[int(0.99 * (len(ordered) - 1))] * 1000 if ordered else 0.0,
                "lag_samples": len(ordered),
                "journeys": journeys_done() - before,
            }


def _child(args: list[str]) -> dict[str, Any]:
    output = subprocess.run(
        [sys.executable, "-m", "bench.browser_journeys", *args],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    result: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
    return result


def _serve_shop() -> None:
    from monitor.demo.shop import ShopFaults, start_shop

    async def serve() -> None:
        runner, url = await start_shop(ShopFaults())
        print(url, flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        await runner.cleanup()

    asyncio.run(serve())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--pages", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--checks", type=int, default=10_000)
    parser.add_argument("--interval", type=float, default=60.0)
    parser.add_argument("--soak", type=int, default=0, help="journeys in a row (e.g. 200)")
    parser.add_argument("--mode", choices=["ours", "floor", "lag", "lag-alone", "soak", "shop"])
    parser.add_argument("--url")
    args = parser.parse_args()
    if args.mode == "shop":
        _serve_shop()
        return
    if args.mode is not None:
        runners = {
            "ours": lambda: _ours(args.url, args.pages[0], args.duration),
            "floor": lambda: _floor(args.url, args.pages[0], args.duration),
            "lag": lambda: _lag(args.url, args.checks, args.interval, args.duration),
            "lag-alone": lambda: _lag(
                args.url, args.checks, args.interval, args.duration, journeys=0
            ),
            "soak": lambda: _soak(args.url, args.soak),
        }
        print(json.dumps(asyncio.run(runners[args.mode]())), flush=True)
        return
    shop = subprocess.Popen(
        [sys.executable, "-m", "bench.browser_journeys", "--mode", "shop"],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert shop.stdout is not None
        url = shop.stdout.readline().strip()
        common = ["--url", url, "--duration", str(args.duration)]
        print(f"shop {url}; {args.runs} run(s) of {args.duration:g} s each; medians")
        print(
            f"{'pages':>5} {'ours/min':>9} {'floor/min':>9} {'ratio':>6} {'CPU s/j':>8} "
            f"{'floor CPU':>9} {'peak RSS MB':>11} {'peak PSS MB':>11}"
        )
        for pages in args.pages:
            ours, floor = [], []
            for _ in range(args.runs):  # interleaved, so that load from elsewhere hits both
                ours.append(_child(["--mode", "ours", "--pages", str(pages), *common]))
                floor.append(_child(["--mode", "floor", "--pages", str(pages), *common]))
            med = {key: statistics.median(r[key] for r in ours) for key in ours[0]}
            fmed = {key: statistics.median(r[key] for r in floor) for key in floor[0]}
            print(
                f"{pages:>5} {med['per_min']:>9.1f} {fmed['per_min']:>9.1f} "
                f"{med['per_min'] / fmed['per_min']:>6.2f} {med['cpu_s']:>8.3f} "
                f"{fmed['cpu_s']:>9.3f} {med['peak_rss_mb']:>11.0f} {med['peak_pss_mb']:>11.0f}"
                + (f"  ({med['failed']:.0f} failed)" if med["failed"] else "")
            )
        lag_args = ["--checks", str(args.checks), "--interval", str(args.interval), *common]
        lag, alone = [], []
        for _ in range(args.runs):  # interleaved: with journeys, then the same without
            lag.append(_child(["--mode", "lag", *lag_args]))
            alone.append(_child(["--mode", "lag-alone", *lag_args]))
        p99 = statistics.median(r["lag_p99_ms"] for r in lag)
        p99_alone = statistics.median(r["lag_p99_ms"] for r in alone)
        done = statistics.median(r["journeys"] for r in lag)
        print(
            f"http scheduler lag p99 with {args.checks} http checks and browser journeys "
            f"running: {p99:.1f} ms (goal < {LAG_P99_MS:.0f} ms; {done:.0f} journeys "
            f"meanwhile); without journeys: {p99_alone:.1f} ms"
        )
        if args.soak:
            soak = _child(["--mode", "soak", "--soak", str(args.soak), "--url", url])
            print(f"soak {args.soak} journeys, PSS MB every 20: {soak['pss_mb_every_20']}")
    finally:
        if shop.stdin is not None:
            shop.stdin.close()
        shop.wait(timeout=10)


if __name__ == "__main__":
    main()

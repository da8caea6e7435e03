"""Micro-benchmark: CPU per `http` probe through aiohttp and through the lean transport.

    .venv/bin/python -m bench.lean_http_micro                       # 5000 probes, 50 at a time
    .venv/bin/python -m bench.lean_http_micro --probes 20000 --runs 5

Runs `probe_http` (the whole probe: request on a fresh connection, body read, judging,
evidence) in a loop on uvloop against bench/target.py in its own process, so only the
prober's CPU is counted (time.process_time). Each run measures every variant in turn, after
a warm-up, and the table shows the median of the runs:

- `aiohttp`: probe_http through the monitor's session (monitor.runtime.new_session);
- `lean`: probe_http through the monitor's lean transport (monitor.runtime.new_http_transport);
- `lean exchange`: the lean transport's exchange alone, without the probe around it.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

VARIANTS = ("aiohttp", "lean", "lean exchange")


async def _measure(
    one: Callable[[], Awaitable[object]], *, probes: int, concurrency: int
) -> tuple[float, float]:
    """(CPU ms per probe, probes per second) for `probes` calls of `one`."""
    gate = asyncio.Semaphore(concurrency)

    async def limited() -> None:
        async with gate:
            await one()

    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(limited() for _ in range(probes)))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return cpu / probes * 1000, probes / wall


async def _run(url: str, *, probes: int, concurrency: int) -> dict[str, tuple[float, float]]:
    from checks.http import HttpCheckSpec, Seen, probe_http
    from checks.result import Outcome
    from monitor.runtime import new_http_transport, new_session

    spec = HttpCheckSpec(url=url)
    session = new_session(max_connections=1024)
    lean = new_http_transport()

    def now() -> datetime:
        return datetime.now(UTC)

    async def through_aiohttp() -> None:
        result = await probe_http(spec, session=session, now=now)
        assert result.outcome is Outcome.OK, result

    async def through_lean() -> None:
        result = await probe_http(spec, transport=lean, now=now)
        assert result.outcome is Outcome.OK, result

    async def exchange_only() -> None:
        seen = Seen(url=spec.url)
        status = await lean.exchange(spec, seen=seen, since=0.0, clock=time.perf_counter)
        assert status == 200

    calls = {"aiohttp": through_aiohttp, "lean": through_lean, "lean exchange": exchange_only}
    figures = {}
    try:
        for name in VARIANTS:
            await _measure(calls[name], probes=min(500, probes), concurrency=concurrency)
            figures[name] = await _measure(calls[name], probes=probes, concurrency=concurrency)
    finally:
        await session.close()
        await lean.close()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--probes", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    import uvloop

    from bench.servers import target

    runs: list[dict[str, tuple[float, float]]] = []
    with target() as server:
        for number in range(1, args.runs + 1):
            figures = uvloop.run(_run(server.url, probes=args.probes, concurrency=args.concurrency))
            runs.append(figures)
            shown = ", ".join(f"{name} {cpu:.3f}" for name, (cpu, _) in figures.items())
            print(f"run {number}: CPU ms/probe: {shown}", flush=True)
    print(
        f"\nmedians of {args.runs} runs, {args.probes} probes at concurrency "
        f"{args.concurrency}, fresh connection each:\n"
    )
    print("| variant | CPU ms/probe | probes/s |")
    print("|---|---:|---:|")
    for name in VARIANTS:
        cpu = statistics.median(run[name][0] for run in runs)
        rate = statistics.median(run[name][1] for run in runs)
        print(f"| {name} | {cpu:.3f} | {rate:,.0f} |")


if __name__ == "__main__":
    main()

"""A loopback target for benchmarks, run as its own process so its CPU is not counted as ours.

`/` answers 200 at once; `/delay/<ms>` answers after that many milliseconds (a known delay
against which the monitor's measured latency is compared).
Usage: python -m bench.target PORT   (prints "ready" when listening)
"""

from __future__ import annotations

import asyncio
import sys

from aiohttp import web


async def _home(request: web.Request) -> web.Response:
    return web.Response(text="ok " * 100)


async def _delay(request: web.Request) -> web.Response:
    await asyncio.sleep(int(request.match_info["ms"]) / 1000)
    return web.Response(text="ok " * 100)


def main() -> None:
    port = int(sys.argv[1])
    app = web.Application()
    app.router.add_get("/", _home)
    app.router.add_get("/delay/{ms:\\d+}", _delay)

    async def serve() -> None:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port, backlog=4096).start()
        print("ready", flush=True)
        await asyncio.Event().wait()

    try:
        import uvloop

        uvloop.run(serve())
    except ImportError:
        asyncio.run(serve())


if __name__ == "__main__":
    main()

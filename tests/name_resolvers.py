"""Resolvers that answer test names (`internal.test` -> an address the test chose), for
aiohttp's connector and for `checks.lean_http.LeanTransport`: the outside world's DNS, faked."""

from __future__ import annotations

import socket
from collections.abc import Sequence
from typing import Any

from aiohttp.abc import AbstractResolver, ResolveResult


class StaticResolver(AbstractResolver):
    """aiohttp's resolver for test names: `internal.test` -> an address the test chose."""

    def __init__(self, names: dict[str, str]) -> None:
        self.names = names
        self.asked: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.asked.append(host)
        if host not in self.names:
            raise OSError(f"{host} is not a test name")
        address = self.names[host]
        return [
            ResolveResult(
                hostname=host, host=address, port=port, family=socket.AF_INET, proto=0, flags=0
            )
        ]

    async def close(self) -> None:
        pass


def lean_resolver(names: dict[str, str]) -> Any:
    async def resolve(host: str, port: int, family: int) -> Sequence[tuple[int, str]]:
        if host not in names:
            raise socket.gaierror(socket.EAI_NONAME, "not a test name")
        return [(socket.AF_INET, names[host])]

    return resolve

"""A small authoritative DNS server on loopback UDP for tests: answers from a table the test
changes while it runs, or SERVFAIL, or nothing at all."""

from __future__ import annotations

import asyncio
import enum
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import dns.flags
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset


class Mode(enum.Enum):
    ANSWER = "answer"  # from `records`; NXDOMAIN for a name not in it
    SERVFAIL = "servfail"
    SILENT = "silent"  # reads the question and never answers


@dataclass
class DnsServer:
    """`records[(name, type)] = [values in zone-file text]`, e.g. `[("10 mail.acme.example.")]`."""

    port: int = 0
    records: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    mode: Mode = Mode.ANSWER
    delay: float = 0.0  # seconds before each answer
    questions: int = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def answer(self, wire: bytes) -> bytes | None:
        query = dns.message.from_wire(wire)
        self.questions += 1
        if self.mode is Mode.SILENT:
            return None
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        if self.mode is Mode.SERVFAIL:
            response.set_rcode(dns.rcode.SERVFAIL)
            return response.to_wire()
        question = query.question[0]
        name = question.name.to_text().rstrip(".").lower()
        rdtype = dns.rdatatype.to_text(question.rdtype)
        if not any(known == name for known, _ in self.records):
            response.set_rcode(dns.rcode.NXDOMAIN)
            return response.to_wire()
        values = self.records.get((name, rdtype), [])
        if values:
            response.answer.append(
                dns.rrset.from_text_list(question.name, 60, dns.rdataclass.IN, rdtype, values)
            )
        return response.to_wire()


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, server: DnsServer) -> None:
        self.server = server
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a datagram endpoint's

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        reply = self.server.answer(data)
        if reply is None or self.transport is None:
            return
        if self.server.delay:
            asyncio.get_running_loop().call_later(
                self.server.delay, self.transport.sendto, reply, addr
            )
        else:
            self.transport.sendto(reply, addr)


@asynccontextmanager
async def dns_server(records: dict[tuple[str, str], list[str]]) -> AsyncIterator[DnsServer]:
    """A running `DnsServer` on 127.0.0.1 (a free UDP port) until the block ends."""
    server = DnsServer(records=records)
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(
        lambda: _Protocol(server), local_addr=("127.0.0.1", 0)
    )
    server.port = transport.get_extra_info("sockname")[1]
    try:
        yield server
    finally:
        transport.close()

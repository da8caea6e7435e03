"""Certificates: when the target's TLS certificate runs out, and whether that is soon.

The probe reads the certificate of the very connection it used. aiohttp hands the connection
back (and, with `force_close`, closes it) as soon as a short body has arrived, which is often
before `session.request()` even returns the response, so the certificate is taken earlier:
sessions that should report expiry are created with `response_class=PeerCertResponse`, which
keeps the peer's certificate (DER) as the response starts. With any other response class
`Evidence.tls_not_after` stays None and no expiry is ever reported.

The DER is read here rather than through `ssl.SSLObject.getpeercert()`'s dictionary, which is
empty when verification is off; a certificate's validity sits at a fixed place in its DER
(RFC 5280 4.1), so a few lines of the standard library find it without a crypto dependency.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import aiohttp
from aiohttp.connector import Connection

_SEQUENCE = 0x30
_INTEGER = 0x02
_VERSION = 0xA0  # [0] EXPLICIT, absent from version-1 certificates
_UTC_TIME = 0x17
_GENERALIZED_TIME = 0x18
_DAY = 86400.0


class PeerCertResponse(aiohttp.ClientResponse):
    """An aiohttp response that keeps the peer's certificate (DER) of its connection.

    Pass as `aiohttp.ClientSession(response_class=PeerCertResponse)`.
    """

    peer_cert: bytes | None = None

    async def start(self, connection: Connection) -> aiohttp.ClientResponse:
        # Before super().start(): reading the answer may release and close the connection.
        self.peer_cert = _peer_cert(connection)
        return await super().start(connection)


def _peer_cert(connection: Connection) -> bytes | None:
    transport = connection.transport
    if transport is None:
        return None
    ssl_object = transport.get_extra_info("ssl_object")
    if ssl_object is None:  # plain http
        return None
    # binary_form: the DER even when the certificate was not verified (verify_tls: false).
    der: bytes | None = ssl_object.getpeercert(binary_form=True)
    return der


def response_not_after(response: aiohttp.ClientResponse) -> float | None:
    """The notAfter (Unix time) of the certificate `response` arrived over, if known."""
    der = getattr(response, "peer_cert", None)
    return not_after_from_der(der) if isinstance(der, bytes) else None


def not_after_from_der(der: bytes) -> float | None:
    """A DER X.509 certificate's notAfter as Unix time; None if it cannot be read."""
    try:
        _, start, _ = _element(der, 0, expect=_SEQUENCE)  # Certificate
        _, pos, _ = _element(der, start, expect=_SEQUENCE)  # TBSCertificate
        tag, _, end = _element(der, pos)
        if tag == _VERSION:
            pos = end
        pos = _element(der, pos, expect=_INTEGER)[2]  # serialNumber
        pos = _element(der, pos, expect=_SEQUENCE)[2]  # signature algorithm
        pos = _element(der, pos, expect=_SEQUENCE)[2]  # issuer
        _, pos, _ = _element(der, pos, expect=_SEQUENCE)  # validity
        pos = _element(der, pos)[2]  # notBefore
        tag, start, end = _element(der, pos)  # notAfter
        return _parse_time(tag, der[start:end].decode("ascii")).timestamp()
    except (IndexError, ValueError):
        return None


def _element(data: bytes, pos: int, *, expect: int | None = None) -> tuple[int, int, int]:
    """The DER element at `pos`: (tag, start of its content, end of its content)."""
    tag, length = data[pos], data[pos + 1]
    pos += 2
    if length & 0x80:
        size = length & 0x7F
        if not 0 < size <= 4:
            raise ValueError("unsupported DER length")
        length = int.from_bytes(data[pos : pos + size], "big")
        pos += size
    end = pos + length
    if end > len(data) or (expect is not None and tag != expect):
        raise ValueError("not the certificate structure expected")
    return tag, pos, end


def _parse_time(tag: int, text: str) -> datetime:
    # RFC 5280 4.1.2.5: UTCTime YYMMDDHHMMSSZ up to 2049 (YY >= 50 means 19YY),
    # GeneralizedTime YYYYMMDDHHMMSSZ from 2050, both in UTC and with seconds.
    if tag == _UTC_TIME and len(text) == 13:
        year = int(text[:2])
        text = f"{1900 + year if year >= 50 else 2000 + year}{text[2:]}"
    elif tag != _GENERALIZED_TIME or len(text) != 15:
        raise ValueError(f"not a certificate time: {text!r}")
    return datetime.strptime(text, "%Y%m%d%H%M%SZ").replace(tzinfo=UTC)


def days_left(not_after: float, now: datetime) -> float:
    """Days from `now` until `not_after` (Unix time); negative once the certificate expired."""
    return (not_after - now.timestamp()) / _DAY


def expiry_warning(*, not_after: float | None, now: datetime, window: timedelta) -> str | None:
    """The `cert_expiring` error when the certificate runs out within `window` (0: never)."""
    if not_after is None or window <= timedelta(0):
        return None
    left = days_left(not_after, now)
    if left * _DAY > window.total_seconds():
        return None
    date = datetime.fromtimestamp(not_after, UTC).strftime("%Y-%m-%d")
    if left < 0:
        return f"certificate expired {day_span(-left)} ago ({date})"
    return f"certificate expires in {day_span(left)} ({date})"


def day_span(days: float) -> str:
    """`3 days`, `1 day`, `5 hours` or `less than an hour`: a span of `days` in words."""
    if days >= 1:
        whole = math.floor(days)
        return f"{whole} day" if whole == 1 else f"{whole} days"
    hours = math.floor(days * 24)
    return "less than an hour" if hours == 0 else f"{hours} hour{'' if hours == 1 else 's'}"

"""Where the time of one HTTP probe went, phase by phase, as blackbox_exporter splits it.

    resolve     the DNS lookup (0 for an IP literal or a cached name)
    connect     the TCP handshake
    tls         the TLS handshake (0 for plain http)
    processing  from the request sent to the first byte of the answer
    transfer    from the first byte to the end of the body

The transport notes the instant each phase begins (plain floats on what the attempt has seen,
`checks.http.Seen`; nothing computed on the way); `split` turns them into seconds per phase
once, when the attempt ends. The time between two instants belongs to the phase that was
running, and a phase whose end was never reached runs to the end of the attempt. So the
phases of a probe add up to its duration, and a probe cut short by its timeout charges the
wait to the phase it was in. Redirect hops add to the same phases (`earlier`).

Why instants and one function rather than a clock object moved at every boundary: the lean
transport's whole probe costs about 240,000 instructions, and an object per probe moved by
method calls cost 18,000 of them (bench/lean_http_instructions.py); this costs a few thousand.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

Phase = Literal["resolve", "connect", "tls", "processing", "transfer"]
PHASES: tuple[Phase, ...] = ("resolve", "connect", "tls", "processing", "transfer")

# How an on-call reader names each phase in an evidence line ("TLS handshake took 4.1 s").
PHASE_WORDS: dict[str, str] = {
    "resolve": "DNS lookup",
    "connect": "TCP connect",
    "tls": "TLS handshake",
    "processing": "waiting for the first byte",
    "transfer": "reading the body",
}


def split(
    *,
    start: float,
    resolved: float | None,
    connected: float | None,
    secured: float | None,
    first_byte: float | None,
    end: float,
    earlier: Mapping[str, float] | None = None,
) -> dict[str, float]:
    """Seconds per phase of one hop that began at `start` (resolve) and ended at `end`.

    `resolved`, `connected`, `secured` and `first_byte` are the instants connect, tls,
    processing and transfer began, None when the hop did not get that far (`secured` is
    `connected` on plain http: no TLS handshake). `earlier` (the phases of the redirect hops
    before this one) is added in.
    """
    # Straight-line on purpose: this runs once per probe (see the module docstring).
    resolve = connect = tls = processing = transfer = 0.0
    if resolved is None:
        resolve = end - start
    else:
        resolve = resolved - start
        if connected is None:
            connect = end - resolved
        else:
            connect = connected - resolved
            if secured is None:
                tls = end - connected
            else:
                tls = secured - connected
                if first_byte is None:
                    processing = end - secured
                else:
                    processing = first_byte - secured
                    transfer = end - first_byte
    if earlier is not None:
        resolve += earlier["resolve"]
        connect += earlier["connect"]
        tls += earlier["tls"]
        processing += earlier["processing"]
        transfer += earlier["transfer"]
    return {
        "resolve": resolve,
        "connect": connect,
        "tls": tls,
        "processing": processing,
        "transfer": transfer,
    }


def where_time_went(phases: Mapping[str, float]) -> str | None:
    """The phase that took longest, in words: "TLS handshake took 4.1 s"; None without phases."""
    known = [(phases[name], name) for name in PHASES if name in phases]
    if not known:
        return None
    seconds, name = max(known)
    shown = f"{round(seconds * 1000)} ms" if seconds < 1 else f"{seconds:.1f} s"
    return f"{PHASE_WORDS[name]} took {shown}"

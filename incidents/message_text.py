"""Text hygiene and time wording for notifications: pure functions of plain values.

Everything a site or an operator wrote (titles, probe errors, response bodies, update text)
passes through here before it reaches a message: one-line fields lose every control and
line-separator character, so nothing from outside can end a header or fake a new one.
"""

from __future__ import annotations

import unicodedata
from datetime import datetime, timedelta
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel.dates import format_date

ELLIPSIS = "…"

# Bidi embeddings, overrides and isolates (category Cf) can make a subject display in an
# order other than its bytes; nothing a site or an operator writes needs them in a mail.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
# Cc: C0/C1 controls (CR, LF, NEL U+0085, ESC, ...); Zl/Zp: U+2028/U+2029, which some
# readers treat as line breaks; Cs: lone surrogates, which no mail encoding can carry.
_DROPPED_CATEGORIES = frozenset({"Cc", "Cs", "Zl", "Zp"})

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _unsafe(char: str) -> bool:
    return char in _BIDI_CONTROLS or unicodedata.category(char) in _DROPPED_CATEGORIES


def cap(text: str, max_len: int) -> str:
    """`text` cut to at most `max_len` characters, the cut marked with an ellipsis."""
    if max_len < 1:
        raise ValueError(f"max_len must be at least 1 (got {max_len})")
    if len(text) <= max_len:
        return text
    return text[: max_len - 1].rstrip() + ELLIPSIS


def sanitize_header_text(text: str, *, max_len: int = 200) -> str:
    """One safe line for a header such as Subject.

    Control characters (CR, LF, NEL, ...), Unicode line and paragraph separators and bidi
    overrides become spaces, runs of whitespace collapse to one space, and the result is
    capped at `max_len` characters with an ellipsis.
    """
    spaced = "".join(" " if _unsafe(char) else char for char in text)
    return cap(" ".join(spaced.split()), max_len)


def clean_multiline(text: str, *, max_len: int) -> str:
    """Text that may keep its lines (a response excerpt, an operator's update) made safe.

    Line breaks of every kind become `\\n`; tabs stay; every other control character goes.
    """
    unified = text.replace("\r\n", "\n").replace("\r", "\n")
    kept: list[str] = []
    for char in unified:
        if char in "\n\t":
            kept.append(char)
        elif char in "\u0085\u2028\u2029":
            kept.append("\n")
        elif not _unsafe(char):
            kept.append(char)
    return cap("".join(kept).strip("\n"), max_len)


def zone(name: str, *, owner: str | None = None) -> ZoneInfo:
    """The IANA zone `name`; a clear error, naming `owner` when given, when it does not exist.
    Config validators pass no owner: pydantic's error already names the field."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        if owner is None:
            # Worded like the config's other errors, whose "(got ...)" the loader keeps.
            message = f"unknown time zone, use an IANA name such as Europe/Berlin (got {name!r})"
        else:
            message = (
                f"{owner}: unknown time zone {name!r} (use an IANA name such as Europe/Berlin)"
            )
        raise ValueError(message) from exc


def _aware(at: datetime) -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"naive datetime {at.isoformat()}: pass an aware datetime")
    return at


def zone_abbreviation(local: datetime) -> str:
    """`CET`, `EDT`; zones without a letter abbreviation get `UTC+05:30` instead of `+0530`."""
    name = local.tzname() or ""
    if name.isalpha():
        return name
    offset = local.utcoffset() or timedelta(0)
    sign = "-" if offset < timedelta(0) else "+"
    minutes = abs(int(offset.total_seconds())) // 60
    return f"UTC{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def local_time(at: datetime, tz: ZoneInfo, *, locale: str = "en") -> str:
    """`Mon 4 Mar 2024 14:00 CET` in English whatever the process locale; other languages
    name day and month in their own words (`Mo. 4. März 2024 14:00 CET`)."""
    local = _aware(at).astimezone(tz)
    if locale == "en":
        day = f"{_DAYS[local.weekday()]} {local.day} {_MONTHS[local.month - 1]} {local.year}"
    else:
        day = format_date(local.date(), "EEE d. MMMM y", locale=locale)
    return f"{day} {local:%H:%M} {zone_abbreviation(local)}"


def short_local_time(at: datetime, tz: ZoneInfo, *, now: datetime) -> str:
    """`14:00 CET` when `at` falls on the same local day as `now`, else the full form."""
    local = _aware(at).astimezone(tz)
    if local.date() == _aware(now).astimezone(tz).date():
        return f"{local:%H:%M} {zone_abbreviation(local)}"
    return local_time(at, tz)


def utc_iso(at: datetime | None) -> str | None:
    """`2024-03-04T09:00:00Z`, the form the API and `monitor sla` print."""
    if at is None:
        return None
    return _aware(at).astimezone(ZoneInfo("UTC")).strftime("%Y-%m-%dT%H:%M:%SZ")


def span(delta: timedelta) -> str:
    """A rough length for people: `45 min`, `2 h 5 min`, `3 d 4 h` (sign ignored)."""
    minutes = abs(int(delta.total_seconds())) // 60
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h" if hours else f"{days} d"
    if hours:
        return f"{hours} h {mins} min" if mins else f"{hours} h"
    return f"{mins} min"


def latency(seconds: float) -> str:
    if seconds < 1:
        return f"{round(seconds * 1000)} ms"
    return f"{seconds:.1f} s"


def display_url(url: str) -> str:
    """A check's URL as a mail may show it: without user:password and without the query.

    Health endpoints sometimes carry a token in the query or the userinfo; the mail says
    which page failed, not how to call it.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return sanitize_header_text(url, max_len=200)
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 literal lost its brackets in `hostname`
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = f"{host}:{port}" if port is not None else host
    query = ELLIPSIS if parts.query else ""
    shown = urlunsplit((parts.scheme, netloc, parts.path, "", ""))
    return sanitize_header_text(shown + ("?" + query if query else ""), max_len=200)

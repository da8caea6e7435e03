"""What evidence may keep of what a probe sent and saw.

Evidence goes to the incident timeline (the database), the API, logs and mails. So:

- response headers that carry sessions or credentials (`Set-Cookie`, `Cookie`,
  `Authorization`, `Proxy-Authorization`) are never kept (`SENSITIVE_HEADERS`);
- the values a check sends that may be secret (its headers' values, the user, password and
  query values of its URL, its request body, a flow's form and JSON values and the values it
  saved from answers) are masked wherever they show up in what came back (`Secrets`): a
  login page that echoes the password, a server that reflects the API key;
- control characters are stripped from every text (`clean_line`, `clean_text`), so that nothing
  a target sent can end a log line, fake a mail header or drive a terminal.

A body excerpt is kept for failures only (`checks.http`, `checks.flow`): a healthy answer
needs no excerpt, and it is where a session's personal data would be.
"""

from __future__ import annotations

import base64
import functools
import html
import json
import re
from collections.abc import Iterable, Mapping
from urllib.parse import parse_qsl, quote, quote_plus, urlsplit

__all__ = [
    "MASK",
    "MIN_MASKED_CHARS",
    "NO_SECRETS",
    "SENSITIVE_HEADERS",
    "Secrets",
    "header_secrets",
    "json_strings",
    "clean_text",
    "clean_line",
    "request_secrets",
    "strings_in",
    "url_secrets",
]

MASK = "•••"
# A value this short (a quantity, "yes") is too common to hide without hiding the text around
# it; a field marked `secret: true` is masked whatever its length.
MIN_MASKED_CHARS = 4

SENSITIVE_HEADERS = frozenset(
    {"set-cookie", "set-cookie2", "cookie", "authorization", "proxy-authorization"}
)

# Request headers whose values say how to talk, not who is talking.
_PLAIN_HEADERS = frozenset(
    {
        "accept",
        "accept-encoding",
        "accept-language",
        "cache-control",
        "content-type",
        "pragma",
        "user-agent",
        "x-requested-with",
    }
)

# C0 and C1 controls, DEL, Unicode line/paragraph separators and bidi overrides/isolates.
_LINE_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
# What a multi-line text keeps as line breaks, and what it drops besides tabs and line feeds.
_LINE_BREAKS = str.maketrans({"\r": "\n", "\x85": "\n", "\u2028": "\n", "\u2029": "\n"})
_TEXT_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def clean_line(text: str) -> str:
    """`text` on one line: every control character (line breaks included) becomes a space."""
    return _LINE_CONTROLS.sub(" ", text)


def clean_text(text: str) -> str:
    """`text` that keeps its lines: every kind of line break becomes `\\n`, tabs stay, and
    every other control character goes."""
    unified = text.replace("\r\n", "\n").translate(_LINE_BREAKS)
    return _TEXT_CONTROLS.sub("", unified)


class Secrets:
    """Values to mask in what a probe reports, and the ways a server may echo them
    (URL-encoded, HTML-escaped, JSON-escaped)."""

    __slots__ = ("_pattern",)

    def __init__(self, values: Iterable[str] = (), *, strict: Iterable[str] = ()) -> None:
        wanted = {value for value in values if len(value) >= MIN_MASKED_CHARS}
        wanted.update(value for value in strict if value)
        variants: set[str] = set()
        for value in wanted:
            variants.update((value, quote_plus(value), quote(value, safe=""), html.escape(value)))
            variants.add(json.dumps(value, ensure_ascii=False)[1:-1])
        variants.discard("")
        # Longest first, so that a secret that contains another is masked whole.
        ordered = sorted(variants, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    def __bool__(self) -> bool:
        return self._pattern is not None

    def mask(self, text: str) -> str:
        """`text` with every secret replaced by `MASK`."""
        if self._pattern is None or not text:
            return text
        return self._pattern.sub(MASK, text)


NO_SECRETS = Secrets()


def request_secrets(url: str, headers: Mapping[str, str], body: str | None) -> Secrets:
    """The values of one configured request that may be secret (see the module docstring)."""
    if not headers and body is None and "@" not in url and "?" not in url:
        return NO_SECRETS  # the usual check: nothing to hide, nothing to build
    return _request_secrets(url, tuple(headers.items()), body)


# One Secrets per configured request: compiled once, not per probe.
@functools.lru_cache(maxsize=4096)
def _request_secrets(url: str, headers: tuple[tuple[str, str], ...], body: str | None) -> Secrets:
    values = header_secrets(dict(headers))
    values += url_secrets(url)
    if body is not None:
        values.append(body)
        values += [value for _, value in parse_qsl(body)]
        values += json_strings(body)
    return Secrets(values)


def header_secrets(headers: Mapping[str, str]) -> list[str]:
    """The values of `headers` that may identify or authorise the sender; of a value such
    as `Bearer <token>`, the token alone as well (a server may echo just that)."""
    found = []
    for name, value in headers.items():
        if name.lower() in _PLAIN_HEADERS:
            continue
        found.append(value)
        scheme, _, credential = value.partition(" ")
        if credential.strip() and scheme.isalpha():
            found.append(credential.strip())
    return found


def url_secrets(url: str) -> list[str]:
    """The user, password and query values of `url`."""
    try:
        parts = urlsplit(url)
        found = [parts.username or "", parts.password or ""]
    except ValueError:
        return []
    if parts.username is not None or parts.password is not None:
        # What `Authorization: Basic` carries of them.
        found.append(base64.b64encode(f"{found[0]}:{found[1]}".encode()).decode("ascii"))
    found += [value for _, value in parse_qsl(parts.query)]
    return [value for value in found if value]


def json_strings(text: str) -> list[str]:
    """Every string in `text` if it is a JSON document (keys left out), else none."""
    try:
        document = json.loads(text)
    except ValueError:
        return []
    return list(strings_in(document))


def strings_in(value: object) -> Iterable[str]:
    """The string leaves of a JSON-like value."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from strings_in(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from strings_in(item)

"""URLs as a check's evidence and errors may show them: no user:password, no query.

A check's URL can carry a secret (`https://user:pw@host/health?token=...`). Evidence goes
to the incident timeline, the open incident API, logs and mails, so everything a probe
reports passes through here; the probe itself keeps using the real URL.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

__all__ = ["ELLIPSIS", "redact_text", "redact_url"]

ELLIPSIS = "…"

# Anything that looks like an absolute URL inside free text (an exception's message, a
# repr such as URL('http://...')): a scheme, "://", then up to a blank or a quote; a
# sentence's punctuation right after it is not part of it.
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>`]*[^\s'\"<>`.,;:!)\]]")

# A URL that redacting leaves as it is: lower-case scheme and host, a port without leading
# zeros, no userinfo, query or fragment, nothing urlsplit would strip. Most check URLs are
# like this, and a probe reports its URL with every result: it is returned without parsing.
_ALREADY_SHOWN = re.compile(
    r"[a-z][a-z0-9+.-]*://[a-z0-9.-]+(?::[1-9][0-9]{0,4})?(?:/[^?#@\s\x00-\x1f\x7f]*)?"
)


def redact_url(url: str) -> str:
    """`url` without its userinfo and fragment, its query (if any) shown as `?…`.

    `https://u:pw@shop.example:8443/health?token=s3cret` -> `https://shop.example:8443/health?…`.
    Idempotent, and never raises: a URL that does not parse is cut down by hand.
    """
    if _ALREADY_SHOWN.fullmatch(url):
        return url
    return _redact_parsed(url)


def _redact_parsed(url: str) -> str:
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return _cut(url)
    if ":" in host:  # an IPv6 literal lost its brackets in `hostname`
        host = f"[{host}]"
    netloc = f"{host}:{port}" if port is not None else host
    shown = urlunsplit((parts.scheme, netloc, parts.path, "", ""))
    return shown + (f"?{ELLIPSIS}" if parts.query else "")


def redact_text(text: str) -> str:
    """`text` with every absolute URL in it passed through `redact_url`."""
    return _URL_IN_TEXT.sub(lambda match: redact_url(match.group(0)), text)


def _cut(url: str) -> str:
    # No parse to trust: drop everything from the query or fragment on, and whatever sits
    # before the last "@" of the authority.
    cut = re.split(r"[?#]", url, maxsplit=1)
    head = cut[0]
    scheme, sep, rest = head.partition("://")
    if not sep:
        scheme, rest = "", head
    authority, slash, path = rest.partition("/")
    authority = authority.rpartition("@")[2]
    shown = f"{scheme}{sep}{authority}{slash}{path}"
    return shown + (f"?{ELLIPSIS}" if "?" in url.partition("#")[0] else "")

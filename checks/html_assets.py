"""Which same-origin assets a browser's first load of an HTML page would fetch.

`find_assets` reads `<img src>`, `<link rel=stylesheet href>` and `<script src>` with the
standard library's lenient `html.parser`, resolves them against the page's final URL (or its
first `<base href>`, as browsers do) and keeps, in document order and once each, those on the
page's own origin (scheme, host and port). Other origins (CDNs, analytics) are somebody
else's uptime; `data:` and other non-http URLs cost no request.
"""

from __future__ import annotations

from html.parser import HTMLParser
from urllib.parse import urljoin

from yarl import URL

# A stylesheet link only a user's choice would load; not part of a first load.
_ALTERNATE = "alternate"


def find_assets(html: str, *, page_url: str, limit: int) -> list[str]:
    """At most `limit` absolute same-origin asset URLs of `html`, fragments removed."""
    collector = _AssetCollector()
    collector.feed(html)
    collector.close()
    base = urljoin(page_url, collector.base) if collector.base is not None else page_url
    origin = _origin(page_url)
    found: list[str] = []
    seen: set[str] = set()
    for ref in collector.refs:
        if len(found) >= limit:
            break
        url = _resolve(ref, base=base)
        if url is None or _origin(url) != origin or url in seen:
            continue
        seen.add(url)
        found.append(url)
    return found


class _AssetCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.base: str | None = None
        self.refs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value for name, value in reversed(attrs) if value is not None}
        if tag == "base":
            # Only the first <base href> counts (HTML's "frozen base URL").
            if self.base is None and "href" in values:
                self.base = values["href"].strip()
        elif tag in ("img", "script"):
            if "src" in values:
                self.refs.append(values["src"])
        elif tag == "link" and "href" in values:
            rel = values.get("rel", "").lower().split()
            if "stylesheet" in rel and _ALTERNATE not in rel:
                self.refs.append(values["href"])

    # <img/> and friends arrive here; they carry the same attributes.
    handle_startendtag = handle_starttag


def _resolve(ref: str, *, base: str) -> str | None:
    ref = ref.strip()  # browsers ignore surrounding whitespace in URL attributes
    if not ref:
        return None
    try:
        url = URL(urljoin(base, ref))
    except ValueError:  # not a URL a browser could fetch either
        return None
    if url.scheme not in ("http", "https") or not url.host:
        return None
    return str(url.with_fragment(None))


def _origin(url: str) -> tuple[str, str, int | None] | None:
    try:
        parsed = URL(url)
    except ValueError:
        return None
    # .port is the effective port, so http://shop:80/ and http://shop/ are one origin.
    return (parsed.scheme, (parsed.host or "").lower(), parsed.port)

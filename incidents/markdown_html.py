"""Markdown an operator wrote (a post-mortem) as HTML safe to put on a public page."""

from __future__ import annotations

import nh3
from markdown_it import MarkdownIt

# Raw HTML in the Markdown is shown as text, and what the renderer makes is cleaned again to
# an allow-list: a post-mortem pasted from elsewhere cannot carry a script or a tracking pixel.
_RENDERER = MarkdownIt("commonmark", {"html": False, "linkify": False})
_TAGS = {
    "p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "li", "strong", "em",
    "code", "pre", "blockquote", "a",
}  # fmt: skip


def render(markdown: str, *, heading_below: int = 2) -> str:
    """`heading_below`: the level of the page's heading it sits under; the Markdown's own
    headings are moved below it (# becomes h3 under an h2), keeping the page's outline."""
    tokens = _RENDERER.parse(markdown)
    for token in tokens:
        if token.type in ("heading_open", "heading_close"):
            token.tag = f"h{min(6, int(token.tag[1]) + heading_below)}"
    html = _RENDERER.renderer.render(tokens, _RENDERER.options, {})
    return nh3.clean(
        html,
        tags=_TAGS,
        attributes={"a": {"href"}},
        url_schemes={"http", "https", "mailto"},
        link_rel="nofollow noopener noreferrer",
    )

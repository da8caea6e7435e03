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


def render(markdown: str) -> str:
    html = _RENDERER.render(markdown)
    return nh3.clean(
        html,
        tags=_TAGS,
        attributes={"a": {"href"}},
        url_schemes={"http", "https", "mailto"},
        link_rel="nofollow noopener noreferrer",
    )

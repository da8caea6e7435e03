"""Incident titles from their parts: a table of what failed and what the title says."""

from __future__ import annotations

import pytest

from checks.result import Outcome
from incidents.i18n import translations
from incidents.model import Headline
from incidents.wording import part_name, title

SITE = "Trail Outfitters"


def part(outcome: Outcome, **changes: object) -> Headline:
    values: dict[str, object] = {
        "site_label": SITE,
        "check": "trail/shop/x",
        "part": "Checkout",
        "availability": False,
        "outcome": outcome,
    }
    values.update(changes)
    return Headline(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("headline", "expected"),
    [
        (part(Outcome.HTTP_5XX, availability=True, status=500), "Trail Outfitters is down"),
        (part(Outcome.TIMEOUT, availability=True), "Trail Outfitters is down"),
        (part(Outcome.CONNECTION_ERROR, availability=True), "Trail Outfitters is down"),
        (
            part(Outcome.HTTP_5XX, part="Admin panel", status=500),
            "Trail Outfitters: Admin panel unreachable (HTTP 500)",
        ),
        (
            part(Outcome.UNEXPECTED_STATUS, status=403, step="add-to-cart"),
            "Trail Outfitters: Checkout is failing "
            "(the add to cart step answers with an error, HTTP 403)",
        ),
        (
            part(Outcome.CONTENT_MISMATCH, step="pay"),
            "Trail Outfitters: Checkout is failing (the pay step does not show what it should)",
        ),
        (
            part(Outcome.SLOW, availability=True, latency=7.24, slow_after=5.0),
            "Trail Outfitters: pages load slowly (7.2 s, target 5 s)",
        ),
        (
            part(Outcome.SLOW, part="Search", latency=0.8, slow_after=0.5),
            "Trail Outfitters: Search loads slowly (800 ms, target 500 ms)",
        ),
        (
            part(Outcome.BROKEN_ASSET, part="Product page"),
            "Trail Outfitters: Product page shows a broken image or file",
        ),
        (
            part(Outcome.CONTENT_MISMATCH, availability=True, part="Home"),
            "Trail Outfitters: Home does not show what it should",
        ),
        (
            part(Outcome.TLS_ERROR, part="Shop API"),
            "Trail Outfitters: Shop API unreachable (the secure connection fails)",
        ),
    ],
)
def test_title(headline: Headline, expected: str) -> None:
    assert title(headline) == expected


def test_german_title_with_a_decimal_comma() -> None:
    slow = part(Outcome.SLOW, part="Suche", latency=7.24, slow_after=5.0)
    german = translations("de").gettext
    assert title(slow, gettext=german, locale="de") == (
        "Trail Outfitters: Suche lädt langsam (7,2 s, Ziel 5 s)"
    )
    down = part(Outcome.HTTP_5XX, availability=True, status=500)
    assert title(down, gettext=german, locale="de") == "Trail Outfitters ist ausgefallen"


@pytest.mark.parametrize(
    ("name", "key", "shown"),
    [
        ("Admin panel", "a/b/admin", "Admin panel"),
        ("", "a/b/admin-panel", "Admin panel"),
        ("  Check   out ", "a/b/c", "Check out"),
        ("", "a/b/contact_form", "Contact form"),
    ],
)
def test_part_name_never_shows_a_key(name: str, key: str, shown: str) -> None:
    assert part_name(name=name, check_key=key) == shown


@pytest.mark.parametrize("outcome", [o for o in Outcome if o.is_failure])
def test_every_failure_has_a_german_title(outcome: Outcome) -> None:
    # A tcp check's reply that does not match is unexpected_status without an HTTP status:
    # no outcome may fall through to an English phrase in a German mail.
    headline = part(outcome, part="Mailserver", latency=7.0, slow_after=5.0)
    german = title(headline, gettext=translations("de").gettext, locale="de")
    english = title(headline)
    assert german.startswith("Trail Outfitters: Mailserver ")
    assert german.removeprefix("Trail Outfitters: Mailserver ") not in english


def test_a_tcp_reply_that_does_not_match_is_said_plainly() -> None:
    headline = part(Outcome.UNEXPECTED_STATUS, part="Mail server")
    assert title(headline) == "Trail Outfitters: Mail server answers unexpectedly"

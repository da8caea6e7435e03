"""The demo shop over real loopback HTTP, and its fault timeline on a fake clock."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from pytest_aiohttp import AiohttpClient
from yarl import URL

from monitor.cli import main as cli_main
from monitor.demo import (
    DEMO_DURATION,
    DEMO_PHASES,
    Fault,
    Phase,
    ShopFaults,
    create_shop_app,
    phase_at,
    run_timeline,
    start_shop,
)
from monitor.demo.shop import PAGES, ShopJournal, ShopMode

CARD = "4242 4242 4242 4242"


@pytest.fixture
def faults() -> ShopFaults:
    return ShopFaults(slow_seconds=0.2)


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    # unsafe=True: the default cookie jar refuses cookies from IP addresses such as 127.0.0.1.
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        yield session


PAGE_URLS = {
    "home": "/",
    "product": "/product/1",
    "cart": "/cart",
    "checkout": "/checkout",
    "contact": "/contact",
    "admin": "/admin",
}


async def get(client: aiohttp.ClientSession, url: str) -> tuple[int, str]:
    async with client.get(url) as response:
        return response.status, await response.text()


async def post(
    client: aiohttp.ClientSession, url: str, form: dict[str, str]
) -> tuple[int, str, str | None]:
    """Status, body and Location of a POST (redirects not followed)."""
    async with client.post(url, data=form, allow_redirects=False) as response:
        return response.status, await response.text(), response.headers.get("Location")


async def csrf_token(client: aiohttp.ClientSession, shop: str) -> str:
    """Open the product page (which starts a session) and read its CSRF token."""
    status, product = await get(client, shop + "/product/1")
    assert status == 200
    match = re.search(r'name="csrf_token" value="([^"]+)"', product)
    assert match is not None, "the product page has no csrf_token"
    return match.group(1)


async def add_mug(client: aiohttp.ClientSession, shop: str, *, quantity: int = 1) -> str:
    """Put mugs in this client's cart; returns the session's CSRF token."""
    token = await csrf_token(client, shop)
    form = {"csrf_token": token, "product_id": "1", "quantity": str(quantity)}
    status, _, location = await post(client, shop + "/cart", form)
    assert (status, location) == (303, "/cart")
    return token


async def pay(client: aiohttp.ClientSession, shop: str, token: str) -> tuple[int, str]:
    status, body, _ = await post(
        client, shop + "/checkout", {"csrf_token": token, "card_number": CARD}
    )
    return status, body


# -- healthy pages ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/", "/product/1"),
        ("/product/1", 'name="csrf_token"'),
        ("/product/1", '<img src="/static/mug.png"'),
        ("/cart", "Your cart is empty"),
        ("/checkout", 'name="card_number"'),
        ("/contact", 'name="message"'),
        ("/admin", "Admin login"),
    ],
)
async def test_healthy_pages_answer_200_with_their_content(
    shop: str, client: aiohttp.ClientSession, path: str, expected: str
) -> None:
    status, body = await get(client, shop + path)
    assert status == 200
    assert "<title>" in body and "Demo Shop</title>" in body
    assert expected in body


async def test_static_image_is_a_png_and_healthz_answers(
    shop: str, client: aiohttp.ClientSession
) -> None:
    async with client.get(shop + "/static/mug.png") as response:
        assert response.status == 200
        assert response.content_type == "image/png"
        png = await response.read()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert png[12:16] == b"IHDR" and png.endswith(b"IEND\xaeB`\x82")
    assert await get(client, shop + "/healthz") == (200, "ok")


async def test_unknown_product_is_404(shop: str, client: aiohttp.ClientSession) -> None:
    status, _ = await get(client, shop + "/product/999")
    assert status == 404


async def test_contact_form_thanks_and_rejects_empty(
    shop: str, client: aiohttp.ClientSession
) -> None:
    form = {"name": "Ann", "email": "ann@example.com", "message": "Hello"}
    async with client.post(shop + "/contact", data=form) as response:
        assert response.status == 200
        assert "Thank you" in await response.text()
    async with client.post(shop + "/contact", data={"name": "Ann"}) as response:
        assert response.status == 400


async def test_happy_path_from_product_to_order_confirmed(
    shop: str, client: aiohttp.ClientSession, journal: ShopJournal
) -> None:
    status, product = await get(client, shop + "/product/1")
    assert status == 200
    match = re.search(r'name="csrf_token" value="([^"]+)"', product)
    assert match is not None
    assert client.cookie_jar.filter_cookies(URL(shop)).get("shop_session") is not None

    form = {"csrf_token": match.group(1), "product_id": "1", "quantity": "2"}
    async with client.post(shop + "/cart", data=form, allow_redirects=False) as response:
        assert response.status == 303
        assert response.headers["Location"] == "/cart"

    status, cart = await get(client, shop + "/cart")
    assert "Agency Coffee Mug x 2" in cart
    # The cart carries the checkout form, with the same session's token.
    assert 'action="/checkout"' in cart and f'value="{match.group(1)}"' in cart

    status, checkout = await get(client, shop + "/checkout")
    assert "EUR 25.00" in checkout

    card = {"csrf_token": match.group(1), "card_number": CARD}
    async with client.post(shop + "/checkout", data=card) as response:
        assert response.status == 200
        confirmed = await response.text()
    assert "Order confirmed" in confirmed
    assert "Order number: DS-001001" in confirmed

    status, cart = await get(client, shop + "/cart")
    assert "Your cart is empty" in cart

    await add_mug(client, shop)
    status, second = await pay(client, shop, match.group(1))
    assert "Order number: DS-001002" in second
    # The client sent no synthetic-check header, so these are customers' orders.
    assert [r.synthetic for r in journal.requests] == [None] * len(journal.requests)


async def test_checkout_with_an_empty_cart_places_no_order(
    shop: str, client: aiohttp.ClientSession
) -> None:
    token = await csrf_token(client, shop)
    status, body = await pay(client, shop, token)
    assert status == 200
    assert "Your cart is empty" in body and "Order confirmed" not in body
    # The next real order still gets the first number.
    await add_mug(client, shop)
    assert "Order number: DS-001001" in (await pay(client, shop, token))[1]


async def test_checkout_without_card_number_is_refused(
    shop: str, client: aiohttp.ClientSession
) -> None:
    token = await add_mug(client, shop)
    status, body, _ = await post(
        client, shop + "/checkout", {"csrf_token": token, "card_number": ""}
    )
    assert status == 400
    assert "Order confirmed" not in body


@pytest.mark.parametrize("path", ["/cart", "/checkout", "/cart/clear", "/orders/DS-001001/cancel"])
async def test_posts_need_the_sessions_csrf_token(
    shop: str, client: aiohttp.ClientSession, path: str
) -> None:
    form = {"product_id": "1", "quantity": "1", "card_number": CARD}
    # No session at all.
    status, body, _ = await post(client, shop + path, {**form, "csrf_token": "guess"})
    assert (status, body) == (403, "invalid CSRF token")
    token = await csrf_token(client, shop)
    # A session, but no token or another one.
    assert (await post(client, shop + path, form))[:2] == (403, "invalid CSRF token")
    wrong = {**form, "csrf_token": token[::-1]}
    assert (await post(client, shop + path, wrong))[:2] == (403, "invalid CSRF token")
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as other:
        # Somebody else's session cannot use this session's token.
        await csrf_token(other, shop)
        status, _, _ = await post(other, shop + path, {**form, "csrf_token": token})
        assert status == 403


async def test_cancel_order_and_clear_cart_are_recorded(
    shop: str, client: aiohttp.ClientSession, journal: ShopJournal
) -> None:
    token = await add_mug(client, shop)
    _, confirmed = await pay(client, shop, token)
    assert "Order number: DS-001001" in confirmed

    url = shop + "/orders/DS-001001/cancel"
    for _ in range(2):  # a re-run cleanup answers the same and is recorded once
        status, body, _ = await post(client, url, {"csrf_token": token})
        assert status == 200 and "Order DS-001001 cancelled" in body
    assert journal.cancelled == ["DS-001001"]
    status, _, _ = await post(client, shop + "/orders/DS-009999/cancel", {"csrf_token": token})
    assert status == 404

    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as other:
        other_token = await csrf_token(other, shop)
        # Another session's order is not this one's to cancel.
        status, _, _ = await post(other, url, {"csrf_token": other_token})
        assert status == 404

    await add_mug(client, shop, quantity=3)
    status, _, location = await post(client, shop + "/cart/clear", {"csrf_token": token})
    assert (status, location) == (303, "/cart")
    assert "Your cart is empty" in (await get(client, shop + "/cart"))[1]
    assert len(journal.cart_clears) == 1


async def test_contact_message_gets_a_reference_and_is_kept(
    shop: str, client: aiohttp.ClientSession, journal: ShopJournal
) -> None:
    form = {"email": "ann@example.com", "message": "Hello"}
    status, body, _ = await post(client, shop + "/contact", form)
    assert status == 200
    assert "Thank you" in body and "Message reference: CM-000001" in body
    assert [(m.reference, m.email, m.message) for m in journal.messages] == [
        ("CM-000001", "ann@example.com", "Hello")
    ]


async def test_journal_records_the_synthetic_header_and_session(
    shop: str, journal: ShopJournal
) -> None:
    headers = {"X-Synthetic-Check": "agency-monitor"}
    async with aiohttp.ClientSession(
        cookie_jar=aiohttp.CookieJar(unsafe=True), headers=headers
    ) as synthetic:
        token = await add_mug(synthetic, shop)
        _, confirmed = await pay(synthetic, shop, token)
    assert "Order confirmed" in confirmed
    seen = list(journal.requests)
    assert [(r.method, r.path) for r in seen] == [
        ("GET", "/product/1"),
        ("POST", "/cart"),
        ("POST", "/checkout"),
    ]
    assert {r.synthetic for r in seen} == {"agency-monitor"}
    assert seen[0].session_id is None and seen[1].session_id == seen[2].session_id is not None


# -- faults -------------------------------------------------------------------------------------


@pytest.mark.parametrize("page", PAGES)
async def test_error_500_fault_answers_500_with_html(
    shop: str, client: aiohttp.ClientSession, faults: ShopFaults, page: str
) -> None:
    faults.set(page, Fault.ERROR_500)
    status, body = await get(client, shop + PAGE_URLS[page])
    assert status == 500
    assert "Internal Server Error" in body
    # Other pages stay healthy.
    other = "admin" if page != "admin" else "home"
    assert (await get(client, shop + PAGE_URLS[other]))[0] == 200


async def test_error_500_fault_applies_to_posts_too(
    shop: str, client: aiohttp.ClientSession, faults: ShopFaults
) -> None:
    faults.set("checkout", Fault.ERROR_500)
    async with client.post(shop + "/checkout", data={"card_number": "4242"}) as response:
        assert response.status == 500


async def test_slow_fault_delays_the_normal_page(
    shop: str, client: aiohttp.ClientSession, faults: ShopFaults
) -> None:
    faults.set("product", Fault.SLOW)
    started = time.monotonic()
    status, body = await get(client, shop + "/product/1")
    elapsed = time.monotonic() - started
    assert status == 200 and "Add to cart" in body
    assert elapsed >= faults.slow_seconds

    started = time.monotonic()
    assert (await get(client, shop + "/"))[0] == 200
    assert time.monotonic() - started < faults.slow_seconds


async def test_slow_fault_waits_with_the_injected_sleep(client: aiohttp.ClientSession) -> None:
    slept: list[float] = []

    async def record(seconds: float) -> None:
        slept.append(seconds)

    faults = ShopFaults(slow_seconds=42.0)
    faults.set("home", Fault.SLOW)
    runner, base_url = await start_shop(faults, sleep=record)
    try:
        assert (await get(client, base_url + "/"))[0] == 200
    finally:
        await runner.cleanup()
    assert slept == [42.0]


@pytest.mark.parametrize("page", ["home", "checkout"])
async def test_down_fault_drops_the_connection(
    shop: str, client: aiohttp.ClientSession, faults: ShopFaults, page: str
) -> None:
    faults.set(page, Fault.DOWN)
    with pytest.raises((aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)):
        await get(client, shop + PAGE_URLS[page])
    # The shop itself keeps serving the other pages.
    assert (await get(client, shop + "/admin"))[0] == 200


async def test_clear_restores_every_page(
    shop: str, client: aiohttp.ClientSession, faults: ShopFaults
) -> None:
    faults.set_all(Fault.ERROR_500)
    assert (await get(client, shop + "/contact"))[0] == 500
    faults.clear()
    for path in PAGE_URLS.values():
        assert (await get(client, shop + path))[0] == 200


def test_unknown_page_is_refused_with_the_known_ones() -> None:
    with pytest.raises(ValueError, match="unknown page 'basket'.*checkout"):
        ShopFaults().set("basket", Fault.DOWN)
    with pytest.raises(ValueError, match="unknown page"):
        ShopFaults().replace({"basket": Fault.DOWN})


# -- modes: the business behind a page breaks, the page still answers ---------------------------


async def test_payment_500_answers_500_and_places_no_order(
    shop: str, client: aiohttp.ClientSession, faults: ShopFaults
) -> None:
    token = await add_mug(client, shop)
    faults.switch(ShopMode.PAYMENT_500)
    status, body = await pay(client, shop, token)
    assert status == 500 and "Order confirmed" not in body
    # The rest of the shop is up, and the cart is still there to pay for later.
    assert "Agency Coffee Mug x 1" in (await get(client, shop + "/cart"))[1]
    faults.switch(ShopMode.PAYMENT_500, on=False)
    assert "Order number: DS-001001" in (await pay(client, shop, token))[1]


async def test_payment_error_answers_200_with_a_failure_message(
    shop: str, client: aiohttp.ClientSession, faults: ShopFaults
) -> None:
    faults.switch("payment_error")
    token = await add_mug(client, shop)
    status, body = await pay(client, shop, token)
    assert status == 200
    assert "Payment failed: card declined" in body and "Order confirmed" not in body
    faults.clear()
    assert "Order number: DS-001001" in (await pay(client, shop, token))[1]


async def test_csrf_missing_drops_the_token_so_add_to_cart_is_refused(
    shop: str, client: aiohttp.ClientSession, faults: ShopFaults
) -> None:
    faults.switch(ShopMode.CSRF_MISSING)
    status, product = await get(client, shop + "/product/1")
    assert status == 200 and "Add to cart" in product
    assert "csrf_token" not in product
    assert client.cookie_jar.filter_cookies(URL(shop)).get("shop_session") is not None
    form = {"product_id": "1", "quantity": "1"}
    assert (await post(client, shop + "/cart", form))[:2] == (403, "invalid CSRF token")


async def test_cart_emptied_loses_the_cart_before_checkout(
    shop: str, client: aiohttp.ClientSession, faults: ShopFaults
) -> None:
    faults.switch(ShopMode.CART_EMPTIED)
    token = await add_mug(client, shop)
    assert "Agency Coffee Mug x 1" in (await get(client, shop + "/cart"))[1]
    status, body = await pay(client, shop, token)
    assert status == 200
    assert "Your cart is empty" in body and "Order confirmed" not in body


async def test_slow_payment_waits_with_the_injected_sleep(client: aiohttp.ClientSession) -> None:
    slept: list[float] = []

    async def record(seconds: float) -> None:
        slept.append(seconds)

    faults = ShopFaults(slow_seconds=7.5)
    runner, shop = await start_shop(faults, sleep=record)
    try:
        token = await add_mug(client, shop)
        faults.switch(ShopMode.SLOW_PAYMENT)
        assert (await get(client, shop + "/cart"))[0] == 200
        assert slept == []  # only the payment is slow
        status, body = await pay(client, shop, token)
    finally:
        await runner.cleanup()
    assert status == 200 and "Order confirmed" in body
    assert slept == [7.5]


async def test_missing_image_is_404_while_the_page_still_links_it(
    shop: str, client: aiohttp.ClientSession, faults: ShopFaults
) -> None:
    faults.switch(ShopMode.MISSING_IMAGE)
    status, product = await get(client, shop + "/product/1")
    assert status == 200 and '<img src="/static/mug.png"' in product
    async with client.get(shop + "/static/mug.png") as response:
        assert response.status == 404


async def test_contact_drops_thanks_without_a_reference_and_keeps_nothing(
    shop: str, client: aiohttp.ClientSession, faults: ShopFaults, journal: ShopJournal
) -> None:
    faults.switch(ShopMode.CONTACT_DROPS)
    form = {"email": "ann@example.com", "message": "Hello"}
    status, body, _ = await post(client, shop + "/contact", form)
    assert status == 200 and "Thank you" in body
    assert "Message reference" not in body
    assert list(journal.messages) == []


def test_modes_are_replaced_and_cleared_with_the_pages() -> None:
    faults = ShopFaults()
    faults.switch(ShopMode.PAYMENT_500)
    faults.replace({"home": Fault.SLOW}, modes=[ShopMode.MISSING_IMAGE])
    assert faults.modes == {ShopMode.MISSING_IMAGE} and faults.pages["home"] is Fault.SLOW
    # A timeline phase that names no mode turns them all off.
    faults.replace({})
    assert faults.modes == set()
    faults.switch("contact_drops")
    faults.clear()
    assert faults.modes == set()
    with pytest.raises(ValueError, match="unknown mode 'payment_404': modes are payment_500"):
        faults.switch("payment_404")


# -- control endpoint ---------------------------------------------------------------------------


async def test_control_endpoint_flips_faults(
    shop: str, client: aiohttp.ClientSession, faults: ShopFaults
) -> None:
    async with client.get(shop + "/_demo/faults") as response:
        state = await response.json()
    assert state == {
        "pages": dict.fromkeys(PAGES, "none"),
        "modes": dict.fromkeys((mode.value for mode in ShopMode), False),
        "slow_seconds": 0.2,
    }

    async with client.post(shop + "/_demo/faults", json={"page": "home", "fault": "500"}) as r:
        assert r.status == 200
        assert (await r.json())["pages"]["home"] == "500"
    assert (await get(client, shop + "/"))[0] == 500

    async with client.post(shop + "/_demo/faults", json={"all": "down"}) as r:
        assert r.status == 200
    assert set(faults.pages.values()) == {Fault.DOWN}

    async with client.post(shop + "/_demo/faults", json={"all": "none"}) as r:
        assert (await r.json())["pages"] == dict.fromkeys(PAGES, "none")
    assert (await get(client, shop + "/"))[0] == 200


async def test_control_endpoint_switches_modes(
    shop: str, client: aiohttp.ClientSession, faults: ShopFaults
) -> None:
    async with client.post(shop + "/_demo/faults", json={"mode": "payment_500", "on": True}) as r:
        assert r.status == 200
        assert (await r.json())["modes"]["payment_500"] is True
    token = await add_mug(client, shop)
    assert (await pay(client, shop, token))[0] == 500

    async with client.post(shop + "/_demo/faults", json={"mode": "payment_500", "on": False}) as r:
        assert (await r.json())["modes"]["payment_500"] is False
    assert (await pay(client, shop, token))[0] == 200

    # "on" defaults to true; {"all": "none"} turns every mode off with the pages.
    async with client.post(shop + "/_demo/faults", json={"mode": "missing_image"}) as r:
        assert r.status == 200
    assert faults.modes == {ShopMode.MISSING_IMAGE}
    async with client.post(shop + "/_demo/faults", json={"all": "none"}) as r:
        assert set((await r.json())["modes"].values()) == {False}
    assert faults.modes == set()


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        ({"mode": "payment_404"}, "unknown mode 'payment_404': modes are payment_500, "),
        ({"mode": "payment_500", "on": "yes"}, '"on" must be true or false'),
        ({"page": "home"}, '{"mode": "payment_500", "on": true}'),
        ({"page": "home", "fault": "broken"}, "faults are none, 500, slow, down"),
        ({"page": "basket", "fault": "500"}, "unknown page 'basket'"),
        ({"fault": "500"}, '{"all": "none"}'),
        (["home"], "JSON object"),
    ],
)
async def test_control_endpoint_explains_bad_requests(
    shop: str, client: aiohttp.ClientSession, payload: object, error: str
) -> None:
    async with client.post(shop + "/_demo/faults", json=payload) as response:
        assert response.status == 400
        assert error in (await response.json())["error"]


async def test_control_endpoint_refuses_non_json(shop: str, client: aiohttp.ClientSession) -> None:
    async with client.post(shop + "/_demo/faults", data=b"home=500") as response:
        assert response.status == 400
        assert "JSON" in (await response.json())["error"]


async def test_start_shop_url_names_the_real_port(faults: ShopFaults) -> None:
    runner, base_url = await start_shop(faults)
    try:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", base_url)
        assert not base_url.endswith(":0")
    finally:
        await runner.cleanup()


async def test_shop_app_serves_through_aiohttp_test_server(
    aiohttp_client: AiohttpClient, faults: ShopFaults
) -> None:
    test_client = await aiohttp_client(create_shop_app(faults))
    response = await test_client.get("/admin")
    assert response.status == 200
    assert "Admin login" in await response.text()


# -- timeline -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("elapsed", "name"),
    [
        (0.0, "healthy"),
        (7.99, "healthy"),
        (8.0, "outage"),
        (19.99, "outage"),
        (20.0, "recovery"),
        (27.99, "recovery"),
        (28.0, "slow"),
        (41.99, "slow"),
        (42.0, "down while slow"),
        (55.99, "down while slow"),
        (56.0, "recovery"),
        (64.0, "broken checkout"),
        (76.0, "recovery"),
        (84.0, "broken image"),
        (93.99, "broken image"),
        (94.0, "recovery"),
        (101.99, "recovery"),
        (102.0, "admin panel"),
        (112.0, "recovery"),
        (500.0, "recovery"),
    ],
)
def test_phase_at_boundaries(elapsed: float, name: str) -> None:
    assert phase_at(elapsed).name == name


def test_phase_at_refuses_time_before_start_and_bad_phases() -> None:
    with pytest.raises(ValueError, match="at least 0.0"):
        phase_at(-1.0)
    with pytest.raises(ValueError, match="empty"):
        phase_at(1.0, ())
    with pytest.raises(ValueError, match="in order"):
        phase_at(1.0, (Phase("b", 10.0), Phase("a", 0.0)))


def test_demo_phases_shape() -> None:
    assert DEMO_DURATION == 170.0
    assert [(p.name, p.starts_at) for p in DEMO_PHASES] == [
        ("healthy", 0.0),
        ("outage", 8.0),
        ("recovery", 20.0),
        ("slow", 28.0),
        ("down while slow", 42.0),
        ("recovery", 56.0),
        ("broken checkout", 64.0),
        ("recovery", 76.0),
        ("broken image", 84.0),
        ("recovery", 94.0),
        ("admin panel", 102.0),
        ("recovery", 112.0),
        ("script error", 120.0),
        ("recovery", 146.0),
    ]
    outage = phase_at(10.0)
    assert dict(outage.faults) == {
        page: Fault.ERROR_500 for page in ("home", "product", "cart", "checkout")
    }
    assert "Severity 1" in outage.description
    assert dict(phase_at(30.0).faults) == {"home": Fault.SLOW, "product": Fault.SLOW}
    assert dict(phase_at(44.0).faults) == {"product": Fault.SLOW, "checkout": Fault.ERROR_500}
    assert phase_at(66.0).modes == {ShopMode.PAYMENT_ERROR} and not phase_at(66.0).faults
    assert phase_at(86.0).modes == {ShopMode.MISSING_IMAGE}
    assert dict(phase_at(104.0).faults) == {"admin": Fault.ERROR_500}
    # Only the browser check sees it: every URL answers 200.
    assert phase_at(124.0).modes == {ShopMode.SCRIPT_ERROR} and not phase_at(124.0).faults
    assert all(p.description for p in DEMO_PHASES)


class FakeClock:
    """Monotonic time that moves only when something sleeps on it."""

    def __init__(self, start: float = 1000.0, *, overshoot: float = 0.0) -> None:
        self.now = start
        self.overshoot = overshoot
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds + self.overshoot


@pytest.mark.parametrize("speed", [1.0, 3.0])
async def test_run_timeline_applies_phases_in_order(speed: float) -> None:
    clock = FakeClock()
    faults = ShopFaults()
    seen: list[tuple[float, str, dict[str, Fault]]] = []

    def on_phase(phase: Phase) -> None:
        seen.append((clock.now - 1000.0, phase.name, dict(faults.pages)))

    await run_timeline(
        faults,
        speed=speed,
        clock_monotonic=clock.monotonic,
        sleep=clock.sleep,
        on_phase=on_phase,
    )

    assert [name for _, name, _ in seen] == [p.name for p in DEMO_PHASES]
    assert [at for at, _, _ in seen] == pytest.approx([p.starts_at / speed for p in DEMO_PHASES])
    outage_pages = seen[1][2]
    assert outage_pages["home"] is Fault.ERROR_500 and outage_pages["admin"] is Fault.NONE
    assert set(seen[2][2].values()) == {Fault.NONE}
    assert seen[3][2]["product"] is Fault.SLOW and seen[3][2]["cart"] is Fault.NONE
    assert clock.now - 1000.0 == pytest.approx(DEMO_DURATION / speed)
    assert set(faults.pages.values()) == {Fault.NONE}


async def test_run_timeline_does_not_drift_when_sleeps_overrun() -> None:
    clock = FakeClock(overshoot=0.5)
    starts: list[float] = []
    await run_timeline(
        ShopFaults(),
        clock_monotonic=clock.monotonic,
        sleep=clock.sleep,
        on_phase=lambda phase: starts.append(clock.now - 1000.0),
    )
    # Each phase starts at most one overshoot late, never the sum of all earlier ones.
    assert starts == [
        0.0, 8.5, 20.5, 28.5, 42.5, 56.5, 64.5, 76.5, 84.5, 94.5, 102.5, 112.5, 120.5, 146.5
    ]  # fmt: skip
    assert clock.sleeps[1:] == [
        11.5, 7.5, 13.5, 13.5, 7.5, 11.5, 7.5, 9.5, 7.5, 9.5, 7.5, 25.5, 23.5
    ]  # fmt: skip


async def test_run_timeline_with_custom_phases_and_bad_speed() -> None:
    clock = FakeClock()
    faults = ShopFaults()
    phases = (Phase("up", 0.0), Phase("down", 2.0, {"admin": Fault.DOWN}))
    await run_timeline(
        faults,
        clock_monotonic=clock.monotonic,
        sleep=clock.sleep,
        phases=phases,
        duration=5.0,
    )
    assert faults.pages["admin"] is Fault.DOWN
    assert clock.now - 1000.0 == 5.0

    with pytest.raises(ValueError, match="speed must be above 0"):
        await run_timeline(faults, speed=0, clock_monotonic=clock.monotonic, sleep=clock.sleep)


def test_demo_help_and_readme_state_the_scripts_real_length(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        cli_main(["demo", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    seconds = f"{DEMO_DURATION:g} s"
    assert f"runs the {seconds} script" in help_text
    assert f"in {DEMO_DURATION / 2:g} s" in help_text
    readme = " ".join((Path(__file__).parent.parent / "README.md").read_text().split())
    assert f"({seconds} at the default speed)" in readme
    assert f"({seconds} of script, about 3 min)" in readme

"""A small web shop that the demo monitors, with faults that can be switched on per page.

Each page answers normally unless its fault says otherwise:

- `Fault.ERROR_500`: a 500 with an HTML error page;
- `Fault.SLOW`: the normal page, after `ShopFaults.slow_seconds`;
- `Fault.DOWN`: the connection is dropped without any answer, as a crashed backend would.

`POST /_demo/faults` flips faults on a running shop (`{"page": "home", "fault": "500"}` or
`{"all": "none"}`); `GET /_demo/faults` shows them.
"""

from __future__ import annotations

import asyncio
import enum
import html
import secrets
import struct
import zlib
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

PAGES: tuple[str, ...] = ("home", "product", "cart", "checkout", "contact", "admin")
SESSION_COOKIE = "shop_session"
# Every probe that arrives without a cookie gets a session: cap them so a shop left running
# under a monitor does not grow without bound.
MAX_SESSIONS = 10_000

Sleep = Callable[[float], Awaitable[None]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Fault(enum.StrEnum):
    NONE = "none"  # the page answers normally
    ERROR_500 = "500"  # the page answers 500 with an HTML error body
    SLOW = "slow"  # the page answers normally after ShopFaults.slow_seconds
    DOWN = "down"  # the connection is dropped without a response


@dataclass
class ShopFaults:
    """The fault of each page, shared by the shop and whoever drives it (timeline, control API)."""

    slow_seconds: float = 6.0
    pages: dict[str, Fault] = field(default_factory=lambda: dict.fromkeys(PAGES, Fault.NONE))

    def set(self, page: str, fault: Fault) -> None:
        if page not in self.pages:
            raise ValueError(f"unknown page {page!r}: must be one of {', '.join(PAGES)}")
        self.pages[page] = fault

    def set_all(self, fault: Fault) -> None:
        for page in self.pages:
            self.pages[page] = fault

    def clear(self) -> None:
        self.set_all(Fault.NONE)

    def replace(self, faults: Mapping[str, Fault]) -> None:
        """Set exactly these faults; pages not named become healthy."""
        for page in faults:
            if page not in self.pages:
                raise ValueError(f"unknown page {page!r}: must be one of {', '.join(PAGES)}")
        for page in self.pages:
            self.pages[page] = faults.get(page, Fault.NONE)

    def snapshot(self) -> dict[str, Any]:
        return {
            "pages": {page: str(fault) for page, fault in self.pages.items()},
            "slow_seconds": self.slow_seconds,
        }


@dataclass(frozen=True, slots=True)
class Product:
    id: int
    name: str
    price_cents: int


PRODUCTS: Mapping[int, Product] = {1: Product(id=1, name="Agency Coffee Mug", price_cents=1250)}


@dataclass
class Session:
    id: str
    csrf_token: str
    cart: dict[int, int] = field(default_factory=dict)  # product id -> quantity


class SessionStore:
    """In-memory sessions keyed by cookie, oldest dropped first beyond `max_sessions`."""

    def __init__(self, *, max_sessions: int = MAX_SESSIONS) -> None:
        self._sessions: OrderedDict[str, Session] = OrderedDict()
        self._max = max_sessions

    def for_request(self, request: web.Request) -> Session:
        session_id = request.cookies.get(SESSION_COOKIE)
        if session_id is not None and session_id in self._sessions:
            self._sessions.move_to_end(session_id)
            return self._sessions[session_id]
        session = Session(id=secrets.token_urlsafe(16), csrf_token=secrets.token_urlsafe(16))
        self._sessions[session.id] = session
        while len(self._sessions) > self._max:
            self._sessions.popitem(last=False)
        return session


class OrderBook:
    """Hands out order numbers, in order, starting from `first`."""

    def __init__(self, *, first: int = 1001) -> None:
        self._next = first

    def new_number(self) -> str:
        number, self._next = self._next, self._next + 1
        return f"DS-{number:06d}"


FAULTS_KEY = web.AppKey("faults", ShopFaults)
SLEEP_KEY = web.AppKey[Sleep]("sleep")
SESSIONS_KEY = web.AppKey("sessions", SessionStore)
ORDERS_KEY = web.AppKey("orders", OrderBook)


# -- HTML ---------------------------------------------------------------------------------------


def _page(title: str | None, body: str) -> str:
    full_title = "Demo Shop" if title is None else f"{html.escape(title)} | Demo Shop"
    return f"""<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>{full_title}</title></head>
<body>
<header><a href="/">Demo Shop</a>
<nav><a href="/product/1">Mug</a> <a href="/cart">Cart</a> <a href="/contact">Contact</a></nav>
</header>
<main>
{body}
</main>
<footer>Demo Shop, a site the agency monitor watches.</footer>
</body>
</html>
"""


def _html(text: str, *, status: int = 200) -> web.Response:
    return web.Response(text=text, status=status, content_type="text/html")


def _price(cents: int) -> str:
    return f"EUR {cents // 100}.{cents % 100:02d}"


def _with_session(response: web.StreamResponse, session: Session) -> web.StreamResponse:
    response.set_cookie(SESSION_COOKIE, session.id, path="/", httponly=True, samesite="Lax")
    return response


def _tiny_png() -> bytes:
    """A valid 8x8 PNG in one brown colour: enough for a broken-image check to find."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    width = height = 8
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    rows = b"".join(b"\x00" + b"\x8b\x5a\x2b" * width for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


MUG_PNG = _tiny_png()


# -- faults -------------------------------------------------------------------------------------


def faulted(page: str) -> Callable[[Handler], Handler]:
    """Wrap a page's handler so that the page's current fault applies before it runs."""
    if page not in PAGES:
        raise ValueError(f"unknown page {page!r}: must be one of {', '.join(PAGES)}")

    def decorate(handler: Handler) -> Handler:
        async def wrapper(request: web.Request) -> web.StreamResponse:
            faults = request.app[FAULTS_KEY]
            fault = faults.pages[page]
            if fault is Fault.ERROR_500:
                body = "<h1>Internal Server Error</h1><p>Something went wrong on our side.</p>"
                return _html(_page("Error", body), status=500)
            if fault is Fault.DOWN:
                return _drop_connection(request)
            if fault is Fault.SLOW:
                await request.app[SLEEP_KEY](faults.slow_seconds)
            return await handler(request)

        return wrapper

    return decorate


def _drop_connection(request: web.Request) -> web.StreamResponse:
    # Aborting the transport and then handing aiohttp a response makes it fail to write, which
    # it treats as a client that went away: no 500 is sent and nothing is logged as an error.
    # The probe sees the connection close with no answer at all.
    transport = request.transport
    if transport is not None:
        transport.abort()
    # 444 is nginx's "closed without response": what the access log shows for this request.
    return web.Response(status=444, reason="Connection dropped (demo fault)")


# -- pages --------------------------------------------------------------------------------------


@faulted("home")
async def home(request: web.Request) -> web.StreamResponse:
    product = PRODUCTS[1]
    body = f"""<h1>Welcome to the Demo Shop</h1>
<ul class="products">
<li><a href="/product/{product.id}">{html.escape(product.name)}</a>
{_price(product.price_cents)}</li>
</ul>
<p><a href="/cart">Your cart</a> | <a href="/contact">Contact us</a></p>"""
    return _html(_page(None, body))


@faulted("product")
async def product_page(request: web.Request) -> web.StreamResponse:
    product = PRODUCTS.get(int(request.match_info["product_id"]))
    if product is None:
        raise web.HTTPNotFound(text="No such product")
    session = request.app[SESSIONS_KEY].for_request(request)
    body = f"""<h1>{html.escape(product.name)}</h1>
<img src="/static/mug.png" alt="{html.escape(product.name)}" width="8" height="8">
<p class="price">{_price(product.price_cents)}</p>
<form method="post" action="/cart">
<input type="hidden" name="csrf_token" value="{html.escape(session.csrf_token)}">
<input type="hidden" name="product_id" value="{product.id}">
<label>Quantity <input type="number" name="quantity" value="1" min="1"></label>
<button type="submit">Add to cart</button>
</form>"""
    return _with_session(_html(_page(product.name, body)), session)


@faulted("cart")
async def add_to_cart(request: web.Request) -> web.StreamResponse:
    session = request.app[SESSIONS_KEY].for_request(request)
    form = await request.post()
    try:
        product_id = int(str(form.get("product_id", "")))
        quantity = int(str(form.get("quantity", "1")))
    except ValueError:
        raise web.HTTPBadRequest(text="product_id and quantity must be numbers") from None
    if product_id not in PRODUCTS or quantity < 1:
        raise web.HTTPBadRequest(text="Unknown product or quantity below 1")
    # Issue 4 makes this strict (CSRF token must match the session's); for now any form is taken.
    session.cart[product_id] = session.cart.get(product_id, 0) + quantity
    redirect = web.HTTPSeeOther("/cart")
    _with_session(redirect, session)
    raise redirect


@faulted("cart")
async def view_cart(request: web.Request) -> web.StreamResponse:
    session = request.app[SESSIONS_KEY].for_request(request)
    if session.cart:
        items = "\n".join(
            f"<li>{html.escape(PRODUCTS[pid].name)} x {qty}</li>"
            for pid, qty in session.cart.items()
        )
        body = (
            f'<h1>Your cart</h1>\n<ul class="cart">\n{items}\n</ul>\n'
            '<a href="/checkout">Checkout</a>'
        )
    else:
        body = "<h1>Your cart</h1>\n<p>Your cart is empty.</p>"
    return _with_session(_html(_page("Cart", body)), session)


def _cart_total(session: Session) -> int:
    return sum(PRODUCTS[pid].price_cents * qty for pid, qty in session.cart.items())


@faulted("checkout")
async def checkout_form(request: web.Request) -> web.StreamResponse:
    session = request.app[SESSIONS_KEY].for_request(request)
    body = f"""<h1>Checkout</h1>
<p>Total: {_price(_cart_total(session))}</p>
<form method="post" action="/checkout">
<input type="hidden" name="csrf_token" value="{html.escape(session.csrf_token)}">
<label>Card number <input type="text" name="card_number" autocomplete="cc-number"></label>
<button type="submit">Pay</button>
</form>"""
    return _with_session(_html(_page("Checkout", body)), session)


@faulted("checkout")
async def place_order(request: web.Request) -> web.StreamResponse:
    session = request.app[SESSIONS_KEY].for_request(request)
    form = await request.post()
    card_number = str(form.get("card_number", "")).replace(" ", "")
    if not card_number.isdigit():
        body = "<h1>Checkout</h1>\n<p>Please enter a card number.</p>"
        return _with_session(_html(_page("Checkout", body), status=400), session)
    # Issue 4 adds CSRF and cart-state checks and payment faults here.
    order_number = request.app[ORDERS_KEY].new_number()
    session.cart.clear()
    body = f"""<h1>Order confirmed</h1>
<p>Thank you for your order.
Your order number is <strong class="order-number">{order_number}</strong>.</p>"""
    return _with_session(_html(_page("Order confirmed", body)), session)


@faulted("contact")
async def contact_form(request: web.Request) -> web.StreamResponse:
    body = """<h1>Contact us</h1>
<form method="post" action="/contact">
<label>Name <input type="text" name="name"></label>
<label>Email <input type="email" name="email"></label>
<label>Message <textarea name="message"></textarea></label>
<button type="submit">Send</button>
</form>"""
    return _html(_page("Contact", body))


@faulted("contact")
async def send_contact(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    if not str(form.get("email", "")).strip() or not str(form.get("message", "")).strip():
        body = "<h1>Contact us</h1>\n<p>Please fill in your email and a message.</p>"
        return _html(_page("Contact", body), status=400)
    body = "<h1>Thank you</h1>\n<p>Thank you for your message. We will get back to you soon.</p>"
    return _html(_page("Contact", body))


@faulted("admin")
async def admin(request: web.Request) -> web.StreamResponse:
    body = """<h1>Admin login</h1>
<form method="post" action="/admin">
<label>Username <input type="text" name="username"></label>
<label>Password <input type="password" name="password"></label>
<button type="submit">Log in</button>
</form>"""
    return _html(_page("Admin login", body))


async def mug_png(request: web.Request) -> web.StreamResponse:
    return web.Response(body=MUG_PNG, content_type="image/png")


async def healthz(request: web.Request) -> web.StreamResponse:
    # The shop process itself; page faults are what the monitor is meant to find, not this.
    return web.Response(text="ok")


# -- control ------------------------------------------------------------------------------------


async def get_faults(request: web.Request) -> web.StreamResponse:
    return web.json_response(request.app[FAULTS_KEY].snapshot())


async def post_faults(request: web.Request) -> web.StreamResponse:
    faults = request.app[FAULTS_KEY]
    try:
        payload = await request.json()
    except ValueError:
        return _bad_control("the body must be JSON")
    if not isinstance(payload, dict):
        return _bad_control("the body must be a JSON object")
    try:
        if "all" in payload:
            faults.set_all(Fault(payload["all"]))
        elif "page" in payload and "fault" in payload:
            faults.set(str(payload["page"]), Fault(payload["fault"]))
        else:
            return _bad_control('send {"page": "home", "fault": "500"} or {"all": "none"}')
    except ValueError as exc:
        return _bad_control(f"{exc}; faults are {', '.join(f.value for f in Fault)}")
    return web.json_response(faults.snapshot())


def _bad_control(message: str) -> web.Response:
    return web.json_response({"error": message}, status=400)


# -- app ----------------------------------------------------------------------------------------


def create_shop_app(faults: ShopFaults, *, sleep: Sleep = asyncio.sleep) -> web.Application:
    """The shop's application; `sleep` is what the SLOW fault waits with."""
    app = web.Application()
    app[FAULTS_KEY] = faults
    app[SLEEP_KEY] = sleep
    app[SESSIONS_KEY] = SessionStore()
    app[ORDERS_KEY] = OrderBook()
    app.router.add_get("/", home)
    app.router.add_get("/product/{product_id:\\d+}", product_page)
    app.router.add_get("/cart", view_cart)
    app.router.add_post("/cart", add_to_cart)
    app.router.add_get("/checkout", checkout_form)
    app.router.add_post("/checkout", place_order)
    app.router.add_get("/contact", contact_form)
    app.router.add_post("/contact", send_contact)
    app.router.add_get("/admin", admin)
    app.router.add_get("/static/mug.png", mug_png)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/_demo/faults", get_faults)
    app.router.add_post("/_demo/faults", post_faults)
    return app


async def start_shop(
    faults: ShopFaults,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    sleep: Sleep = asyncio.sleep,
) -> tuple[web.AppRunner, str]:
    """Serve the shop; returns the runner (call `cleanup()` to stop) and the base URL.

    With `port=0` the system picks a free port, and the URL carries the real one.
    """
    runner = web.AppRunner(create_shop_app(faults, sleep=sleep), shutdown_timeout=1.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound_port = runner.addresses[0][1]
    except BaseException:
        await runner.cleanup()
        raise
    url_host = f"[{host}]" if ":" in host else host
    return runner, f"http://{url_host}:{bound_port}"

"""A small web shop that the demo monitors, with faults that can be switched on while it runs.

The checkout works as a real one does, so that a flow check has something to walk through:

    GET  /product/1            sets the `shop_session` cookie; a form with a hidden csrf_token
    POST /cart                 csrf_token, product_id, quantity -> 303 to /cart
    GET  /cart                 the items, and a checkout form carrying the csrf_token
    POST /checkout             csrf_token, card_number -> "Order confirmed", "Order number: DS-..."
    POST /orders/{n}/cancel    csrf_token -> "Order DS-... cancelled" (cleanup of test orders)
    POST /cart/clear           csrf_token -> 303 to /cart
    POST /contact              email, message -> "Thank you", "Message reference: CM-..."
    GET  /express              a JavaScript checkout (see `monitor.demo.express`)

Every POST of a session needs that session's cookie and CSRF token (else 403 "invalid CSRF
token"). A checkout with an empty cart answers 200 "Your cart is empty" and places no order.

Each page answers normally unless its `Fault` says otherwise (`Fault.ERROR_500`: a 500 page;
`Fault.SLOW`: after `ShopFaults.slow_seconds`; `Fault.DOWN`: the connection is dropped). The
`ShopMode`s break the business behind a page instead (see `monitor.demo.shop_state`).

`POST /_demo/faults` flips them on a running shop: `{"page": "home", "fault": "500"}`,
`{"mode": "payment_500", "on": true}`, or `{"all": "none"}` (every page healthy, every mode
off); `GET /_demo/faults` shows them. The `ShopJournal` records every request (with its
synthetic-check header), cancelled orders, cart clears and contact messages.
"""

from __future__ import annotations

import asyncio
import html
import struct
import zlib
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from monitor.demo.express import add_express_checkout
from monitor.demo.shop_state import (
    MAX_SESSIONS,
    PAGES,
    PRODUCTS,
    SYNTHETIC_HEADER,
    ContactMessage,
    Fault,
    Order,
    OrderBook,
    Product,
    SeenRequest,
    Session,
    SessionStore,
    ShopFaults,
    ShopJournal,
    ShopMode,
    parse_mode,
)

__all__ = [
    "MAX_SESSIONS",
    "MUG_PNG",
    "PAGES",
    "PRODUCTS",
    "SESSION_COOKIE",
    "ContactMessage",
    "Fault",
    "Order",
    "OrderBook",
    "Product",
    "SeenRequest",
    "Session",
    "SessionStore",
    "ShopFaults",
    "ShopJournal",
    "ShopMode",
    "create_shop_app",
    "faulted",
    "start_shop",
]

SESSION_COOKIE = "shop_session"

Sleep = Callable[[float], Awaitable[None]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

FAULTS_KEY = web.AppKey("faults", ShopFaults)
SLEEP_KEY = web.AppKey[Sleep]("sleep")
SESSIONS_KEY = web.AppKey("sessions", SessionStore)
ORDERS_KEY = web.AppKey("orders", OrderBook)
JOURNAL_KEY = web.AppKey("journal", ShopJournal)


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


def _csrf_input(session: Session) -> str:
    return f'<input type="hidden" name="csrf_token" value="{html.escape(session.csrf_token)}">'


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


# -- faults and sessions ------------------------------------------------------------------------


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


def _session(request: web.Request) -> Session:
    """The visitor's session, a new one if the cookie is missing or forgotten."""
    return request.app[SESSIONS_KEY].get_or_create(request.cookies.get(SESSION_COOKIE))


async def _verified_post(request: web.Request) -> tuple[Session, Any]:
    """The session and form of a POST that carries its session's CSRF token; 403 otherwise.

    A request without a known session cookie cannot carry the right token either, so both
    answer the same, as most shops do.
    """
    session = request.app[SESSIONS_KEY].existing(request.cookies.get(SESSION_COOKIE))
    form = await request.post()
    token = form.get("csrf_token")
    if session is None or not isinstance(token, str) or not session.accepts(token):
        raise web.HTTPForbidden(text="invalid CSRF token")
    return session, form


@web.middleware
async def journal_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
    request.app[JOURNAL_KEY].requests.append(
        SeenRequest(
            method=request.method,
            path=request.path,
            synthetic=request.headers.get(SYNTHETIC_HEADER),
            session_id=request.cookies.get(SESSION_COOKIE),
        )
    )
    return await handler(request)


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
    session = _session(request)
    csrf_missing = request.app[FAULTS_KEY].is_on(ShopMode.CSRF_MISSING)
    # The csrf_missing mode: a template change that dropped the token, as happens in real
    # shops; adding to the cart then fails with 403.
    csrf = "" if csrf_missing else _csrf_input(session) + "\n"
    body = f"""<h1>{html.escape(product.name)}</h1>
<img src="/static/mug.png" alt="{html.escape(product.name)}" width="8" height="8">
<p class="price">{_price(product.price_cents)}</p>
<form method="post" action="/cart">
{csrf}<input type="hidden" name="product_id" value="{product.id}">
<label>Quantity <input type="number" name="quantity" value="1" min="1"></label>
<button type="submit">Add to cart</button>
</form>"""
    return _with_session(_html(_page(product.name, body)), session)


@faulted("cart")
async def add_to_cart(request: web.Request) -> web.StreamResponse:
    session, form = await _verified_post(request)
    try:
        product_id = int(str(form.get("product_id", "")))
        quantity = int(str(form.get("quantity", "1")))
    except ValueError:
        raise web.HTTPBadRequest(text="product_id and quantity must be numbers") from None
    if product_id not in PRODUCTS or quantity < 1:
        raise web.HTTPBadRequest(text="Unknown product or quantity below 1")
    session.cart[product_id] = session.cart.get(product_id, 0) + quantity
    raise web.HTTPSeeOther("/cart")


@faulted("cart")
async def view_cart(request: web.Request) -> web.StreamResponse:
    session = _session(request)
    if not session.cart:
        body = "<h1>Your cart</h1>\n<p>Your cart is empty.</p>"
        return _with_session(_html(_page("Cart", body)), session)
    items = "\n".join(
        f"<li>{html.escape(PRODUCTS[pid].name)} x {qty}</li>" for pid, qty in session.cart.items()
    )
    body = f"""<h1>Your cart</h1>
<ul class="cart">
{items}
</ul>
<p>Total: {_price(_cart_total(session))}</p>
<form method="post" action="/checkout">
{_csrf_input(session)}
<label>Card number <input type="text" name="card_number" autocomplete="cc-number"></label>
<button type="submit">Pay</button>
</form>
<form method="post" action="/cart/clear">
{_csrf_input(session)}
<button type="submit">Empty the cart</button>
</form>
<a href="/checkout">Checkout</a>"""
    return _with_session(_html(_page("Cart", body)), session)


@faulted("cart")
async def clear_cart(request: web.Request) -> web.StreamResponse:
    session, _ = await _verified_post(request)
    session.cart.clear()
    request.app[JOURNAL_KEY].note_clear(session.id)
    raise web.HTTPSeeOther("/cart")


def _cart_total(session: Session) -> int:
    return sum(PRODUCTS[pid].price_cents * qty for pid, qty in session.cart.items())


@faulted("checkout")
async def checkout_form(request: web.Request) -> web.StreamResponse:
    session = _session(request)
    body = f"""<h1>Checkout</h1>
<p>Total: {_price(_cart_total(session))}</p>
<form method="post" action="/checkout">
{_csrf_input(session)}
<label>Card number <input type="text" name="card_number" autocomplete="cc-number"></label>
<button type="submit">Pay</button>
</form>"""
    return _with_session(_html(_page("Checkout", body)), session)


@faulted("checkout")
async def place_order(request: web.Request) -> web.StreamResponse:
    session, form = await _verified_post(request)
    card_number = str(form.get("card_number", "")).replace(" ", "")
    if not card_number.isdigit():
        body = "<h1>Checkout</h1>\n<p>Please enter a card number.</p>"
        return _html(_page("Checkout", body), status=400)
    faults = request.app[FAULTS_KEY]
    if faults.is_on(ShopMode.SLOW_PAYMENT):
        await request.app[SLEEP_KEY](faults.slow_seconds)
    if faults.is_on(ShopMode.PAYMENT_500):
        body = "<h1>Internal Server Error</h1><p>The payment service did not answer.</p>"
        return _html(_page("Error", body), status=500)
    if faults.is_on(ShopMode.CART_EMPTIED):
        # As a session store that lost the cart between two requests would.
        session.cart.clear()
    if not session.cart:
        body = "<h1>Checkout</h1>\n<p>Your cart is empty. Nothing was charged.</p>"
        return _html(_page("Checkout", body))
    if faults.is_on(ShopMode.PAYMENT_ERROR):
        # The classic broken checkout: a 200 page that says the payment failed.
        body = "<h1>Checkout</h1>\n<p>Payment failed: card declined. Please try again.</p>"
        return _html(_page("Checkout", body))
    synthetic = SYNTHETIC_HEADER in request.headers
    order = request.app[ORDERS_KEY].place(session, synthetic=synthetic)
    session.cart.clear()
    body = f"""<h1>Order confirmed</h1>
<p>Thank you for your order.</p>
<p class="order-number">Order number: {order.number}</p>
<p>Total: {_price(order.total_cents)}</p>"""
    return _html(_page("Order confirmed", body))


@faulted("checkout")
async def cancel_order(request: web.Request) -> web.StreamResponse:
    session, _ = await _verified_post(request)
    number = request.match_info["number"]
    order = request.app[ORDERS_KEY].of_session(number, session)
    if order is None:
        raise web.HTTPNotFound(text="No such order")
    # Cancelling twice answers the same: a cleanup step that is re-run must not fail.
    if not order.cancelled:
        order.cancelled = True
        request.app[JOURNAL_KEY].note_cancel(order.number)
    body = f"<h1>Order cancelled</h1>\n<p>Order {html.escape(order.number)} cancelled.</p>"
    return _html(_page("Order cancelled", body))


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
    email = str(form.get("email", "")).strip()
    message = str(form.get("message", "")).strip()
    if not email or not message:
        body = "<h1>Contact us</h1>\n<p>Please fill in your email and a message.</p>"
        return _html(_page("Contact", body), status=400)
    thanks = "<h1>Thank you</h1>\n<p>Thank you for your message. We will get back to you soon.</p>"
    if request.app[FAULTS_KEY].is_on(ShopMode.CONTACT_DROPS):
        # The silent failure: the visitor is thanked, and the message goes nowhere.
        return _html(_page("Contact", thanks))
    journal = request.app[JOURNAL_KEY]
    reference = journal.new_reference()
    journal.messages.append(ContactMessage(reference=reference, email=email, message=message))
    body = f'{thanks}\n<p class="reference">Message reference: {reference}</p>'
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
    if request.app[FAULTS_KEY].is_on(ShopMode.MISSING_IMAGE):
        raise web.HTTPNotFound(text="Not Found")
    return web.Response(body=MUG_PNG, content_type="image/png")


async def healthz(request: web.Request) -> web.StreamResponse:
    # The shop process itself; page faults are what the monitor is meant to find, not this.
    return web.Response(text="ok")


# -- control ------------------------------------------------------------------------------------

_CONTROL_USAGE = (
    'send {"page": "home", "fault": "500"}, {"mode": "payment_500", "on": true} or {"all": "none"}'
)


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
    problem = _apply_control(faults, payload)
    if problem is not None:
        return _bad_control(problem)
    return web.json_response(faults.snapshot())


def _apply_control(faults: ShopFaults, payload: dict[str, Any]) -> str | None:
    """Apply one control request; what was wrong with it, if anything."""
    if "mode" in payload:
        on = payload.get("on", True)
        if not isinstance(on, bool):
            return f'"on" must be true or false (got {on!r})'
        try:
            faults.switch(parse_mode(payload["mode"]), on)
        except ValueError as exc:
            return str(exc)
        return None
    try:
        if "all" in payload:
            fault = Fault(payload["all"])
            # "all: none" means a healthy shop: the modes go off too.
            if fault is Fault.NONE:
                faults.clear()
            else:
                faults.set_all(fault)
        elif "page" in payload and "fault" in payload:
            faults.set(str(payload["page"]), Fault(payload["fault"]))
        else:
            return _CONTROL_USAGE
    except ValueError as exc:
        return f"{exc}; faults are {', '.join(f.value for f in Fault)}"
    return None


def _bad_control(message: str) -> web.Response:
    return web.json_response({"error": message}, status=400)


# -- app ----------------------------------------------------------------------------------------


def create_shop_app(
    faults: ShopFaults,
    *,
    sleep: Sleep = asyncio.sleep,
    journal: ShopJournal | None = None,
) -> web.Application:
    """The shop's application; `sleep` is what the SLOW fault and slow_payment wait with, and
    `journal` (a new one if not given) records what the shop saw."""
    app = web.Application(middlewares=[journal_requests])
    app[FAULTS_KEY] = faults
    app[SLEEP_KEY] = sleep
    app[SESSIONS_KEY] = SessionStore()
    app[ORDERS_KEY] = OrderBook()
    app[JOURNAL_KEY] = journal if journal is not None else ShopJournal()
    app.router.add_get("/", home)
    app.router.add_get("/product/{product_id:\\d+}", product_page)
    app.router.add_get("/cart", view_cart)
    app.router.add_post("/cart", add_to_cart)
    app.router.add_post("/cart/clear", clear_cart)
    app.router.add_get("/checkout", checkout_form)
    app.router.add_post("/checkout", place_order)
    app.router.add_post("/orders/{number}/cancel", cancel_order)
    app.router.add_get("/contact", contact_form)
    app.router.add_post("/contact", send_contact)
    app.router.add_get("/admin", admin)
    app.router.add_get("/static/mug.png", mug_png)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/_demo/faults", get_faults)
    app.router.add_post("/_demo/faults", post_faults)
    add_express_checkout(app, faults)
    return app


async def start_shop(
    faults: ShopFaults,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    sleep: Sleep = asyncio.sleep,
    journal: ShopJournal | None = None,
) -> tuple[web.AppRunner, str]:
    """Serve the shop; returns the runner (call `cleanup()` to stop) and the base URL.

    With `port=0` the system picks a free port, and the URL carries the real one.
    """
    app = create_shop_app(faults, sleep=sleep, journal=journal)
    runner = web.AppRunner(app, shutdown_timeout=1.0)
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

"""The demo shop's express checkout: a JavaScript one, as most shops' checkouts now are.

    GET  /express                 the cart, an e-mail field, a shipping choice and "Place order"
    GET  /static/express.js       wires the button: it calls the payment API through fetch and
                                  shows "Order EX-... placed" (#confirmation)
    POST /api/pay                 {"email", "shipping"} -> {"order": "EX-1001"}
    GET  /express/cancel?order=   cancels a test order (a journey's cleanup step)

With `ShopMode.SCRIPT_ERROR` on, the script throws before it wires the button: every URL still
answers 200 (an http check or flow stays green) while no customer can pay. The page greets a
returning visitor ("Welcome back"), from a cookie it sets, so that a check can tell whether
cookies leaked from an earlier run.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from monitor.demo.shop_state import ShopFaults, ShopMode


@dataclass
class ExpressOrders:
    """Orders the express checkout placed and test orders a journey cancelled."""

    next_number: int = 1001
    cancelled: list[str] = field(default_factory=list)


FAULTS = web.AppKey("express_faults", ShopFaults)
ORDERS = web.AppKey("express_orders", ExpressOrders)
VISITOR_COOKIE = "express_visitor"

_PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Express checkout | Demo Shop</title></head>
<body>
<h1>Express checkout</h1>
<p id="greeting">{greeting}</p>
<p>1 &times; Demo Mug, 12.00 EUR</p>
<label>E-mail <input id="email" type="email" autocomplete="email"></label>
<label>Shipping <select id="shipping">
  <option value="standard">Standard</option><option value="express">Express</option>
</select></label>
<button id="place-order" type="button">Place order</button>
<div id="result" aria-live="polite"></div>
<script src="/static/express.js"></script>
</body>
</html>
"""

_SCRIPT = """(function () {
  var button = document.getElementById('place-order');
  %(broken)s
  button.addEventListener('click', async function () {
    button.disabled = true;
    var response = await fetch('/api/pay', {
      method: 'POST',
      headers: {'Content-Type': 'application/json'},
      body: JSON.stringify({
        email: document.getElementById('email').value,
        shipping: document.getElementById('shipping').value
      })
    });
    var result = document.getElementById('result');
    if (!response.ok) { result.textContent = 'Payment failed, please try again.'; return; }
    var answer = await response.json();
    var done = document.createElement('p');
    done.id = 'confirmation';
    done.dataset.order = answer.order;
    done.textContent = 'Order ' + answer.order + ' placed';
    result.appendChild(done);
  });
})();
"""
# What a bad deploy looks like: a bundle that reads a config object the page no longer has.
_BROKEN = "var currency = window.checkoutConfig.currency.toUpperCase();"


async def express_page(request: web.Request) -> web.StreamResponse:
    returning = VISITOR_COOKIE in request.cookies
    greeting = "Welcome back" if returning else "Welcome"
    response = web.Response(text=_PAGE.format(greeting=greeting), content_type="text/html")
    response.set_cookie(VISITOR_COOKIE, "1", max_age=3600, httponly=True, samesite="Lax")
    return response


async def express_script(request: web.Request) -> web.StreamResponse:
    broken = request.app[FAULTS].is_on(ShopMode.SCRIPT_ERROR)
    script = _SCRIPT % {"broken": _BROKEN if broken else ""}
    return web.Response(text=script, content_type="application/javascript")


async def pay(request: web.Request) -> web.StreamResponse:
    payload: Any = await request.json()
    if not isinstance(payload, dict) or "@" not in str(payload.get("email", "")):
        return web.json_response({"error": "an e-mail address is needed"}, status=400)
    orders = request.app[ORDERS]
    number = f"EX-{orders.next_number}"
    orders.next_number += 1
    return web.json_response({"order": number})


async def cancel(request: web.Request) -> web.StreamResponse:
    order = request.query.get("order", "")
    request.app[ORDERS].cancelled.append(order)
    text = f"<!doctype html><title>Cancelled</title><p>Order {html.escape(order)} cancelled</p>"
    return web.Response(text=text, content_type="text/html")


def add_express_checkout(app: web.Application, faults: ShopFaults) -> None:
    app[FAULTS] = faults
    app[ORDERS] = ExpressOrders()
    app.router.add_get("/express", express_page)
    app.router.add_get("/static/express.js", express_script)
    app.router.add_post("/api/pay", pay)
    app.router.add_get("/express/cancel", cancel)

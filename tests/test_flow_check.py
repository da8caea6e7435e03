"""The `flow` check over real loopback HTTP: the demo shop's checkout and contact form with each
fault mode, a small JSON API, targets that hang or refuse, and config validation."""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from pydantic import ValidationError
from pytest_aiohttp import AiohttpServer

from checks.extract import Extractor
from checks.flow import SYNTHETIC_VALUE, FlowCheckSpec, FlowStep, probe_flow
from checks.result import Outcome, ProbeResult
from checks.scrub import MASK
from checks.template import render_json
from monitor.demo.shop import Fault, ShopFaults, ShopJournal, ShopMode
from monitor.runtime import new_session

NOW = datetime(2024, 3, 4, 10, 0, tzinfo=UTC)
CARD = "4000 0000 0000 0077"  # in a real config: card_number: ${TEST_CARD}


# -- fixtures -------------------------------------------------------------------------------------


@pytest.fixture
def faults() -> ShopFaults:
    return ShopFaults(slow_seconds=0.5)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """The monitor's own probe session: no cookie jar, a fresh connection per request."""
    probe_session = new_session(max_connections=10)
    try:
        yield probe_session
    finally:
        await probe_session.close()


async def run(spec: FlowCheckSpec, session: aiohttp.ClientSession) -> ProbeResult:
    return await probe_flow(spec, session=session, now=lambda: NOW)


def checkout_flow(
    shop: str, *, step_changes: dict[str, dict[str, Any]] | None = None, **changes: Any
) -> FlowCheckSpec:
    """Product page -> add to cart -> pay -> cancel the test order and empty the cart.

    `step_changes` maps a step's name to fields to replace in it."""
    csrf = {"csrf_token": "{{csrf_token}}"}
    data: dict[str, Any] = {
        "kind": "flow",
        "url": shop,
        "timeout": "5s",
        "slow_after": "3s",
        "steps": [
            {
                "name": "product",
                "url": "/product/1",
                "expect": {"body_contains": ["Add to cart"]},
                "save": {"csrf_token": {"form_field": "csrf_token"}},
            },
            {
                "name": "add-to-cart",
                "method": "POST",
                "url": "/cart",
                "form": {**csrf, "product_id": "1", "quantity": "1"},
                "expect": {"body_contains": ["Agency Coffee Mug x 1"]},
            },
            {
                "name": "pay",
                "method": "POST",
                "url": "/checkout",
                "form": {"csrf_token": "{{ csrf_token }}", "card_number": CARD},
                "expect": {
                    "status": [200],
                    "body_contains": ["Order confirmed"],
                    "body_not_contains": ["Payment failed"],
                },
                "save": {"order": {"regex": r"Order number: (DS-\d+)"}},
            },
            {
                "name": "cancel-order",
                "method": "POST",
                "url": "/orders/{{order}}/cancel",
                "form": csrf,
                "expect": {"body_contains": ["Order {{order}} cancelled"]},
                "always": True,
            },
            {
                "name": "clear-cart",
                "method": "POST",
                "url": "/cart/clear",
                "form": csrf,
                "expect": {"body_contains": ["Your cart is empty"]},
                "always": True,
            },
        ],
    }
    data.update(changes)
    for step in data["steps"]:
        step.update((step_changes or {}).get(step["name"], {}))
    return FlowCheckSpec.model_validate(data)


def contact_flow(shop: str) -> FlowCheckSpec:
    return FlowCheckSpec.model_validate(
        {
            "kind": "flow",
            "url": shop + "/",
            "steps": [
                {"name": "form", "url": "contact", "expect": {"body_contains": ['name="message"']}},
                {
                    "name": "send",
                    "method": "POST",
                    "url": "contact",
                    "form": {"email": "monitor@agency.example", "message": "Synthetic check"},
                    "expect": {"body_contains": ["Thank you"]},
                    "save": {"reference": {"regex": r"Message reference: (CM-\d{6})"}},
                },
            ],
        }
    )


def paths(journal: ShopJournal) -> list[str]:
    return [f"{seen.method} {seen.path}" for seen in journal.requests]


# -- the checkout against the demo shop -----------------------------------------------------------


async def test_healthy_checkout_passes_and_cleans_up(
    shop: str, session: aiohttp.ClientSession, journal: ShopJournal
) -> None:
    result = await run(checkout_flow(shop), session)

    assert result.outcome is Outcome.OK, result.evidence.error
    assert result.started_at == NOW
    assert result.evidence.step is None and result.evidence.error is None
    # Its page is the last real step (pay), not the cleanups that ran after it.
    assert result.evidence.url == f"{shop.rstrip('/')}/checkout"
    assert result.latency is not None and result.latency > 0
    timings = result.evidence.timings
    assert set(timings) >= {"total", "flow_total", "step:product", "step:pay", "step:clear-cart"}
    assert timings["total"] == result.latency
    assert sum(v for k, v in timings.items() if k.startswith("step:")) <= result.latency

    assert paths(journal) == [
        "GET /product/1",
        "POST /cart",
        "GET /cart",  # the 303 after adding to the cart, followed
        "POST /checkout",
        "POST /orders/DS-001001/cancel",
        "POST /cart/clear",
        "GET /cart",
    ]
    # Every request, redirects included, said it was a synthetic check.
    assert {seen.synthetic for seen in journal.requests} == {SYNTHETIC_VALUE}
    # Cookies carried: every request after the first one came with the same session.
    sessions = [seen.session_id for seen in journal.requests]
    assert sessions[0] is None and sessions[1] is not None
    assert set(sessions[1:]) == {sessions[1]}
    assert journal.cancelled == ["DS-001001"]
    assert len(journal.cart_clears) == 1


async def test_each_run_starts_a_new_session(
    shop: str, session: aiohttp.ClientSession, journal: ShopJournal
) -> None:
    spec = checkout_flow(shop)
    for _ in range(2):
        assert (await run(spec, session)).outcome is Outcome.OK
    product_visits = [seen for seen in journal.requests if seen.path == "/product/1"]
    # Neither run's first request carried a cookie: no jar is shared between runs.
    assert [seen.session_id for seen in product_visits] == [None, None]
    assert journal.cancelled == ["DS-001001", "DS-001002"]


async def test_payment_500_fails_at_pay_and_still_cleans_up(
    shop: str, session: aiohttp.ClientSession, faults: ShopFaults, journal: ShopJournal
) -> None:
    faults.switch(ShopMode.PAYMENT_500)
    result = await run(checkout_flow(shop), session)

    assert result.outcome is Outcome.HTTP_5XX
    evidence = result.evidence
    assert evidence.step == "pay"
    assert evidence.status == 500
    assert evidence.url == shop + "/checkout"
    assert "payment service did not answer" in evidence.body_excerpt
    assert evidence.headers["content-type"].startswith("text/html")
    assert evidence.error is not None
    assert evidence.error.startswith("step pay: HTTP 500 Internal Server Error")
    # The cancel step needs the order number, which the failed payment never gave; emptying
    # the cart needs nothing more, and ran.
    assert "cleanup cancel-order skipped ({{order}} was not saved)" in evidence.error
    assert "cleanup clear-cart ok" in evidence.error
    assert paths(journal)[-2:] == ["POST /cart/clear", "GET /cart"]
    assert len(journal.cart_clears) == 1 and journal.cancelled == []
    assert set(evidence.timings) >= {"total", "ttfb", "flow_total", "step:pay"}
    assert "step:cancel-order" not in evidence.timings


async def test_payment_error_is_content_mismatch_at_pay(
    shop: str, session: aiohttp.ClientSession, faults: ShopFaults
) -> None:
    faults.switch(ShopMode.PAYMENT_ERROR)
    result = await run(checkout_flow(shop), session)

    assert result.outcome is Outcome.CONTENT_MISMATCH
    assert result.evidence.step == "pay"
    assert result.evidence.status == 200
    assert result.evidence.error is not None
    assert result.evidence.error.startswith(
        'step pay: body lacks "Order confirmed"; body contains forbidden "Payment failed"'
    )
    assert "Payment failed: card declined" in result.evidence.body_excerpt


async def test_csrf_missing_fails_the_step_that_saves_the_token(
    shop: str, session: aiohttp.ClientSession, faults: ShopFaults, journal: ShopJournal
) -> None:
    faults.switch(ShopMode.CSRF_MISSING)
    result = await run(checkout_flow(shop), session)

    assert result.outcome is Outcome.CONTENT_MISMATCH
    assert result.evidence.step == "product"
    assert result.evidence.error == (
        "step product: could not save csrf_token: the body has no <input name='csrf_token'>"
        "; not run: add-to-cart, pay"
        "; cleanup cancel-order skipped ({{order}} was not saved)"
        "; cleanup clear-cart skipped ({{csrf_token}} was not saved)"
    )
    assert paths(journal) == ["GET /product/1"]


async def test_cart_emptied_fails_at_pay_showing_the_empty_cart(
    shop: str, session: aiohttp.ClientSession, faults: ShopFaults, journal: ShopJournal
) -> None:
    faults.switch(ShopMode.CART_EMPTIED)
    result = await run(checkout_flow(shop), session)

    assert result.outcome is Outcome.CONTENT_MISMATCH
    assert result.evidence.step == "pay"
    assert result.evidence.error is not None
    assert result.evidence.error.startswith('step pay: body lacks "Order confirmed"')
    assert "Your cart is empty" in result.evidence.body_excerpt
    assert len(journal.cart_clears) == 1


async def test_slow_payment_makes_the_flow_slow_naming_the_slowest_step(
    shop: str, session: aiohttp.ClientSession, faults: ShopFaults
) -> None:
    faults.switch(ShopMode.SLOW_PAYMENT)  # 0.5 s
    result = await run(checkout_flow(shop, slow_after="300ms"), session)

    assert result.outcome is Outcome.SLOW
    assert result.latency is not None and result.latency >= faults.slow_seconds
    assert result.evidence.step == "pay"
    assert result.evidence.timings["step:pay"] >= faults.slow_seconds
    assert result.evidence.timings["total"] == result.latency
    assert result.evidence.error is not None
    assert re.fullmatch(
        r"the flow took \d+\.\d{3}s, more than slow_after 0\.3s; slowest step pay took \S+s",
        result.evidence.error,
    )
    assert "Order confirmed" in result.evidence.body_excerpt


async def test_slow_payment_beyond_the_steps_timeout_is_a_timeout_at_pay(
    shop: str, session: aiohttp.ClientSession, faults: ShopFaults, journal: ShopJournal
) -> None:
    faults.switch(ShopMode.SLOW_PAYMENT)
    spec = checkout_flow(shop, step_changes={"pay": {"timeout": "100ms"}})

    started = time.monotonic()
    result = await run(spec, session)

    assert result.outcome is Outcome.TIMEOUT
    assert result.evidence.step == "pay"
    assert result.latency is None
    assert result.evidence.error is not None
    assert result.evidence.error.startswith(
        "step pay: no complete answer within the step's timeout 0.1s (no response headers arrived)"
    )
    assert time.monotonic() - started < faults.slow_seconds + 0.4
    assert "POST /cart/clear" in paths(journal)


async def test_contact_form_that_drops_messages_fails_the_contact_flow(
    shop: str, session: aiohttp.ClientSession, faults: ShopFaults, journal: ShopJournal
) -> None:
    spec = contact_flow(shop)
    healthy = await run(spec, session)
    assert healthy.outcome is Outcome.OK, healthy.evidence.error
    assert [message.reference for message in journal.messages] == ["CM-000001"]

    faults.switch(ShopMode.CONTACT_DROPS)
    result = await run(spec, session)

    assert result.outcome is Outcome.CONTENT_MISMATCH
    assert result.evidence.step == "send"
    assert result.evidence.status == 200
    assert result.evidence.error == (
        r"step send: could not save reference: regex 'Message reference: (CM-\\d{6})' "
        "does not match the body"
    )
    assert "Thank you" in result.evidence.body_excerpt
    assert len(journal.messages) == 1


@pytest.mark.parametrize(
    ("page", "fault", "outcome", "step"),
    [
        ("product", Fault.ERROR_500, Outcome.HTTP_5XX, "product"),
        ("checkout", Fault.DOWN, Outcome.CONNECTION_ERROR, "pay"),
    ],
)
async def test_page_faults_fail_the_step_on_that_page(
    shop: str,
    session: aiohttp.ClientSession,
    faults: ShopFaults,
    page: str,
    fault: Fault,
    outcome: Outcome,
    step: str,
) -> None:
    faults.set(page, fault)
    result = await run(checkout_flow(shop), session)
    assert result.outcome is outcome
    assert result.evidence.step == step


async def test_a_failing_cleanup_does_not_change_a_failed_flows_outcome(
    shop: str, session: aiohttp.ClientSession, faults: ShopFaults
) -> None:
    faults.switch(ShopMode.PAYMENT_ERROR)
    spec = checkout_flow(
        shop, step_changes={"clear-cart": {"expect": {"body_contains": ["Goodbye"]}}}
    )
    result = await run(spec, session)

    assert result.outcome is Outcome.CONTENT_MISMATCH
    assert result.evidence.step == "pay"
    assert result.evidence.error is not None
    assert 'cleanup clear-cart failed: body lacks "Goodbye"' in result.evidence.error


async def test_a_failing_cleanup_fails_a_flow_that_had_passed(
    shop: str, session: aiohttp.ClientSession, faults: ShopFaults
) -> None:
    # Cancelling answers 500: the test order would stay in the shop, so the flow fails there.
    faults.set("checkout", Fault.ERROR_500)
    spec = FlowCheckSpec.model_validate(
        {
            "url": shop,
            "steps": [
                {"name": "home", "url": "/"},
                {"name": "cancel", "method": "POST", "url": "/orders/x/cancel", "always": True},
            ],
        }
    )
    result = await run(spec, session)
    assert result.outcome is Outcome.HTTP_5XX
    assert result.evidence.step == "cancel"
    assert result.evidence.error == "step cancel: HTTP 500 Internal Server Error"


async def test_no_secret_or_request_body_reaches_evidence_or_logs(
    shop: str,
    session: aiohttp.ClientSession,
    faults: ShopFaults,
    caplog: pytest.LogCaptureFixture,
) -> None:
    faults.switch(ShopMode.PAYMENT_500)
    with caplog.at_level(logging.DEBUG):
        result = await run(checkout_flow(shop), session)
    assert result.outcome is Outcome.HTTP_5XX
    assert CARD not in str(result.evidence.to_dict())
    assert CARD not in caplog.text
    assert "flow step pay: http_5xx" in caplog.text


# -- a JSON API -----------------------------------------------------------------------------------


class Api:
    """A small JSON API that records the headers of every request it gets."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, str]]] = []

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._record])
        app.router.add_post("/api/login", self._login)
        app.router.add_get("/api/orders/{id}", self._order)
        app.router.add_post("/api/echo", self._echo)
        app.router.add_post("/api/orders", self._created)
        app.router.add_get("/api/text", self._text)
        return app

    @web.middleware
    async def _record(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.seen.append((f"{request.method} {request.path}", dict(request.headers)))
        response: web.StreamResponse = await handler(request)
        return response

    async def _login(self, request: web.Request) -> web.Response:
        payload = await request.json()
        if payload != {"user": "monitor", "password": "s3cret"}:
            return web.json_response({"error": "bad login"}, status=401)
        return web.json_response({"token": "t-123", "user": {"id": 7, "admin": False}}, status=201)

    async def _order(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != "Bearer t-123":
            return web.json_response({"error": "unauthorised"}, status=401)
        order_id = int(request.match_info["id"])
        return web.json_response(
            {"order": {"id": order_id, "status": "paid", "paid": True, "items": [{"sku": "MUG"}]}}
        )

    async def _echo(self, request: web.Request) -> web.Response:
        return web.json_response(await request.json())

    async def _created(self, request: web.Request) -> web.Response:
        raise web.HTTPSeeOther("/api/orders/7")

    async def _text(self, request: web.Request) -> web.Response:
        return web.Response(text="not json at all")


@pytest.fixture
def api() -> Api:
    return Api()


@pytest.fixture
async def api_url(aiohttp_server: AiohttpServer, api: Api) -> str:
    server = await aiohttp_server(api.app())
    return str(server.make_url("/"))


def api_flow(api_url: str, *steps: dict[str, Any], **changes: Any) -> FlowCheckSpec:
    login = {
        "name": "login",
        "method": "POST",
        "url": "/api/login",
        "json": {"user": "monitor", "password": "s3cret"},
        "expect": {"status": [201], "json_equals": {"$.user.admin": False}},
        "save": {"token": {"json": "$.token"}, "user_id": {"json": "$.user.id"}},
    }
    return FlowCheckSpec.model_validate({"url": api_url, "steps": [login, *steps], **changes})


async def test_json_steps_save_values_and_check_fields(
    api_url: str, api: Api, session: aiohttp.ClientSession
) -> None:
    spec = api_flow(
        api_url,
        {
            "name": "order",
            "url": "/api/orders/{{user_id}}",
            "headers": {"Authorization": "Bearer {{token}}"},
            "expect": {
                "json_equals": {
                    "$.order.status": "paid",
                    "$.order.id": "{{user_id}}",  # the saved 7, a number
                    "$.order.paid": True,
                    "$.order.items[0].sku": "MUG",
                }
            },
        },
        {
            "name": "echo",
            "method": "POST",
            "url": "/api/echo",
            "json": {"id": "{{user_id}}", "note": "user {{ user_id }} with {{token}}"},
            "expect": {"json_equals": {"$.id": 7, "$.note": "user 7 with t-123"}},
        },
    )
    result = await run(spec, session)
    assert result.outcome is Outcome.OK, result.evidence.error
    assert [request for request, _ in api.seen] == [
        "POST /api/login",
        "GET /api/orders/7",
        "POST /api/echo",
    ]
    assert all(headers["X-Synthetic-Check"] == SYNTHETIC_VALUE for _, headers in api.seen)
    assert all(headers["User-Agent"].startswith("agency-monitor/") for _, headers in api.seen)


@pytest.mark.parametrize(
    ("json_equals", "error"),
    [
        ({"$.order.status": "refunded"}, '$.order.status is "paid", expected "refunded"'),
        ({"$.order.paid": 1}, "$.order.paid is true, expected 1"),
        ({"$.order.refund": None}, "$.order.refund matches nothing in the body"),
        (
            {"$.order.id": 8, "$.order.status": "paid", "$.order.items[0].sku": "CUP"},
            '$.order.id is 7, expected 8; $.order.items[0].sku is "MUG", expected "CUP"',
        ),
    ],
)
async def test_json_equals_mismatch_is_content_mismatch(
    api_url: str, session: aiohttp.ClientSession, json_equals: dict[str, Any], error: str
) -> None:
    spec = api_flow(
        api_url,
        {
            "name": "order",
            "url": "/api/orders/7",
            "headers": {"Authorization": "Bearer {{token}}"},
            "expect": {"json_equals": json_equals},
        },
    )
    result = await run(spec, session)
    assert result.outcome is Outcome.CONTENT_MISMATCH
    assert result.evidence.step == "order"
    assert result.evidence.error == f"step order: {error}"


async def test_json_expectations_on_a_body_that_is_not_json(
    api_url: str, session: aiohttp.ClientSession
) -> None:
    spec = api_flow(
        api_url,
        {
            "name": "text",
            "url": "/api/text",
            "expect": {"json_equals": {"$.ok": True}},
            "save": {"ok": {"json": "$.ok"}},
        },
    )
    result = await run(spec, session)
    assert result.outcome is Outcome.CONTENT_MISMATCH
    assert result.evidence.error is not None
    assert result.evidence.error.startswith("step text: the body is not JSON (Expecting value")


async def test_a_saved_header_can_be_the_next_url(
    api_url: str, api: Api, session: aiohttp.ClientSession
) -> None:
    spec = api_flow(
        api_url,
        {
            "name": "create",
            "method": "POST",
            "url": "/api/orders",
            "follow_redirects": False,
            "expect": {"status": [303]},
            "save": {"location": {"header": "location"}},
        },
        {
            "name": "follow",
            "url": "{{location}}",
            "headers": {"authorization": "Bearer {{token}}"},
            "expect": {"json_equals": {"$.order.id": 7}},
        },
    )
    result = await run(spec, session)
    assert result.outcome is Outcome.OK, result.evidence.error
    # The location was a saved value: evidence masks it (checks.scrub).
    assert result.evidence.url == api_url.rstrip("/") + MASK
    assert [request for request, _ in api.seen][-2:] == ["POST /api/orders", "GET /api/orders/7"]


async def test_the_synthetic_header_name_is_configurable_and_cannot_be_overridden(
    api_url: str, api: Api, session: aiohttp.ClientSession
) -> None:
    spec = api_flow(
        api_url,
        {
            "name": "echo",
            "method": "POST",
            "url": "/api/echo",
            "json": {"a": 1},
            "headers": {"x-monitor-probe": "customer, honest"},
        },
        synthetic_header="X-Monitor-Probe",
    )
    result = await run(spec, session)
    assert result.outcome is Outcome.OK, result.evidence.error
    for _, headers in api.seen:
        assert headers["X-Monitor-Probe"] == SYNTHETIC_VALUE
        assert "X-Synthetic-Check" not in headers


async def test_a_missing_header_to_save_fails_the_step(
    api_url: str, session: aiohttp.ClientSession
) -> None:
    spec = api_flow(
        api_url,
        {
            "name": "echo",
            "method": "POST",
            "url": "/api/echo",
            "json": {},
            "save": {"next": {"header": "Location"}},
        },
    )
    result = await run(spec, session)
    assert result.outcome is Outcome.CONTENT_MISMATCH
    assert result.evidence.error == (
        "step echo: could not save next: the response has no Location header"
    )


async def test_unexpected_status_names_the_step(
    api_url: str, session: aiohttp.ClientSession
) -> None:
    spec = api_flow(api_url, {"name": "order", "url": "/api/orders/7"})  # no token: 401
    result = await run(spec, session)
    assert result.outcome is Outcome.UNEXPECTED_STATUS
    assert result.evidence.step == "order"
    assert result.evidence.status == 401
    assert result.evidence.error == (
        "step order: HTTP 401 Unauthorized is outside expect.status [200-399]"
    )


async def test_a_body_over_max_body_bytes_is_too_large(
    api_url: str, session: aiohttp.ClientSession
) -> None:
    # The login answer is about 50 bytes; "not json at all" 15.
    assert (await run(api_flow(api_url, max_body_bytes=64), session)).outcome is Outcome.OK
    result = await run(api_flow(api_url, max_body_bytes=20), session)
    assert result.outcome is Outcome.TOO_LARGE
    assert result.evidence.step == "login"
    assert result.evidence.error == (
        "step login: body is larger than max_body_bytes (20 bytes); stopped reading there"
    )
    assert len(result.evidence.body_excerpt) == 20


# -- targets that never answer or refuse ----------------------------------------------------------


@pytest.fixture
async def silent_url() -> AsyncIterator[str]:
    """A server that accepts connections and never says a word."""
    release = asyncio.Event()

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await release.wait()
        writer.close()

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        release.set()
        server.close()
        await server.wait_closed()


async def test_a_target_that_never_answers_times_out_within_the_flows_timeout(
    silent_url: str, session: aiohttp.ClientSession
) -> None:
    spec = FlowCheckSpec.model_validate(
        {
            "url": silent_url,
            "timeout": "300ms",
            "steps": [
                {"name": "start", "url": "/start"},
                {"name": "cleanup", "method": "POST", "url": "/end", "always": True},
            ],
        }
    )
    started = time.monotonic()
    result = await run(spec, session)
    elapsed = time.monotonic() - started

    assert result.outcome is Outcome.TIMEOUT
    assert result.latency is None
    assert result.evidence.step == "start"
    assert result.evidence.error == (
        "step start: no complete answer within the flow's timeout 0.3s "
        "(no response headers arrived); cleanup cleanup skipped (the flow's timeout was spent)"
    )
    assert 0.3 <= elapsed < 1.0


async def test_a_refused_connection_is_a_connection_error(
    session: aiohttp.ClientSession, unused_port: int
) -> None:
    spec = FlowCheckSpec.model_validate(
        {"url": f"http://127.0.0.1:{unused_port}/", "steps": [{"name": "home"}]}
    )
    result = await run(spec, session)
    assert result.outcome is Outcome.CONNECTION_ERROR
    assert result.evidence.step == "home"
    assert result.evidence.error is not None
    assert result.evidence.error.startswith("step home: ClientConnectorError")


@pytest.fixture
def unused_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    yield port


# -- config validation ----------------------------------------------------------------------------


def flow_errors(steps: list[dict[str, Any]]) -> str:
    with pytest.raises(ValidationError) as caught:
        FlowCheckSpec.model_validate({"steps": steps})
    return str(caught.value)


def test_an_unsaved_value_is_a_config_error_naming_the_step() -> None:
    errors = flow_errors(
        [
            {"name": "product", "save": {"csrf_token": {"form_field": "csrf_token"}}},
            {"name": "add", "method": "POST", "form": {"csrf_token": "{{csrf_token}}"}},
            {
                "name": "pay",
                "method": "POST",
                "url": "/orders/{{order}}",
                "headers": {"X-Ref": "{{ref}}"},
                "save": {"order": {"regex": "DS-\\d+"}},
            },
            {"name": "cancel", "url": "/cancel", "expect": {"body_contains": ["{{later}}"]}},
            {"name": "late", "save": {"later": {"header": "X-Later"}}},
        ]
    )
    assert (
        "steps[2] (pay): uses {{order}} which no earlier step saves; "
        "steps[2] (pay) saves it, but only earlier steps' values can be used"
    ) in errors
    assert "steps[2] (pay): uses {{ref}} which no earlier step saves" in errors
    assert (
        "steps[3] (cancel): uses {{later}} which no earlier step saves; steps[4] (late)" in errors
    )
    assert "csrf_token" not in errors.replace("csrf_token}}", "")  # the saved one is fine


def test_a_bad_regex_is_a_config_error_naming_the_step() -> None:
    errors = flow_errors([{"name": "pay", "save": {"order": {"regex": "Order number: (DS-\\d+"}}}])
    assert (
        "steps[0] (pay): save order: regex 'Order number: (DS-\\\\d+' does not compile: "
        "missing ), unterminated subpattern at position 14"
    ) in errors


@pytest.mark.parametrize(
    ("step", "expected"),
    [
        (
            {"name": "api", "save": {"id": {"json": "$.order["}}},
            "steps[0] (api): save id: json '$.order[' is not a JSON path such as $.order.id: "
            "Parse error near the end of string!",
        ),
        (
            {"name": "api", "expect": {"json_equals": {"$.a#b": 1}}},
            "steps[0] (api): expect.json_equals: '$.a#b' is not a JSON path such as $.order.id",
        ),
    ],
)
def test_a_json_path_that_cannot_parse_is_a_config_error(
    step: dict[str, Any], expected: str
) -> None:
    assert expected in flow_errors([step])


def test_duplicate_names_both_bodies_and_bad_placeholders_are_reported_at_once() -> None:
    errors = flow_errors(
        [
            {"name": "pay"},
            {"name": "pay", "method": "POST", "form": {"a": "b"}, "json": {"a": "b"}},
            {"name": "odd", "url": "/x/{{order-id}}"},
        ]
    )
    assert (
        "steps[1] (pay): the name 'pay' is already used by steps[0]; step names must be unique"
    ) in errors
    assert "steps[1] (pay): send a form or json, not both" in errors
    assert "steps[2] (odd): {{order-id}} is not a placeholder" in errors
    assert errors.count("1 validation error") == 1  # all in one error, found together


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"steps": []}, "List should have at least 1 item"),
        ({"steps": [{"name": "Pay Now"}]}, "String should match pattern"),
        ({"steps": [{"name": "a", "save": {"x": {}}}]}, "set exactly one of regex, json"),
        (
            {"steps": [{"name": "a", "save": {"x": {"regex": "a", "header": "b"}}}]},
            "(got regex and header)",
        ),
        ({"steps": [{"name": "a", "save": {"my-value": {"header": "b"}}}]}, "my-value"),
        ({"steps": [{"name": "a", "expect": {"status": ["600"]}}]}, "is not an HTTP status"),
        ({"steps": [{"name": "a"}], "synthetic_header": "X Bad"}, "synthetic_header"),
        ({"steps": [{"name": "a", "metod": "GET"}]}, "metod"),
    ],
)
def test_structural_errors(data: dict[str, Any], expected: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(expected)):
        FlowCheckSpec.model_validate(data)


def test_spec_defaults_and_aliases() -> None:
    spec = FlowCheckSpec.model_validate(
        {"steps": [{"name": "a", "json": {"x": 1}, "save": {"v": {"json": "$.x"}}}]}
    )
    assert spec.kind == "flow" and spec.url == "/"
    assert spec.synthetic_header == "X-Synthetic-Check"
    step = spec.steps[0]
    assert step.json_body == {"x": 1} and step.method == "GET" and not step.always
    assert step.save["v"] == Extractor(json_path="$.x")
    assert step.expect.accepts_status(302) and not step.expect.accepts_status(404)
    assert FlowStep(name="b", json_body=[1]).json_body == [1]
    # The JSON Schema speaks the YAML's words.
    schema = FlowCheckSpec.model_json_schema()
    assert "json" in schema["$defs"]["FlowStep"]["properties"]
    assert "json" in schema["$defs"]["Extractor"]["properties"]


def test_json_placeholders_keep_the_saved_type() -> None:
    values = {"id": 7, "token": "t", "flag": True}
    assert render_json(
        {"id": "{{id}}", "text": "#{{id}} {{flag}}", "list": ["{{ token }}", 1], "{{token}}": None},
        values,
    ) == {"id": 7, "text": "#7 true", "list": ["t", 1], "t": None}

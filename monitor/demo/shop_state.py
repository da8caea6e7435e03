"""The demo shop's state: which faults are on, sessions, orders, contact messages, and a
journal of what it saw (for tests and the demo to read back).

Two kinds of fault, both switchable while the shop runs:

- a `Fault` per page (`ShopFaults.pages`): the whole page answers 500, slowly, or not at all;
- `ShopMode`s (`ShopFaults.modes`): the page answers 200 but the business behind it is broken,
  which only a flow check notices.
"""

from __future__ import annotations

import enum
import secrets
from collections import OrderedDict, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from checks.flow_spec import DEFAULT_SYNTHETIC_HEADER

PAGES: tuple[str, ...] = ("home", "product", "cart", "checkout", "contact", "admin")
# Every probe that arrives without a cookie gets a session: cap them so a shop left running
# under a monitor does not grow without bound. Orders, messages and the journal likewise.
MAX_SESSIONS = 10_000
MAX_ORDERS = 10_000
MAX_MESSAGES = 1_000
MAX_JOURNAL = 1_000
# A client's shop knows our header by its documented name; the journal records it.
SYNTHETIC_HEADER = DEFAULT_SYNTHETIC_HEADER


class Fault(enum.StrEnum):
    NONE = "none"  # the page answers normally
    ERROR_500 = "500"  # the page answers 500 with an HTML error body
    SLOW = "slow"  # the page answers normally after ShopFaults.slow_seconds
    DOWN = "down"  # the connection is dropped without a response


class ShopMode(enum.StrEnum):
    """A broken piece of the shop's business, on or off."""

    PAYMENT_500 = "payment_500"  # POST /checkout answers 500 (the payment provider is down)
    PAYMENT_ERROR = "payment_error"  # POST /checkout answers 200 "Payment failed: card declined"
    CSRF_MISSING = "csrf_missing"  # the product page renders no csrf_token input
    CART_EMPTIED = "cart_emptied"  # the cart is lost between add-to-cart and checkout
    SLOW_PAYMENT = "slow_payment"  # POST /checkout answers after ShopFaults.slow_seconds
    MISSING_IMAGE = "missing_image"  # /static/mug.png answers 404
    CONTACT_DROPS = "contact_drops"  # POST /contact thanks the sender but keeps nothing
    # The express checkout's script throws before it wires the "Place order" button: every
    # URL still answers 200, only a browser sees that nobody can pay (monitor.demo.express).
    SCRIPT_ERROR = "script_error"


def _unknown_page(page: str) -> ValueError:
    return ValueError(f"unknown page {page!r}: must be one of {', '.join(PAGES)}")


def parse_mode(value: object) -> ShopMode:
    """A mode from its name; ValueError naming the known modes otherwise."""
    try:
        return ShopMode(str(value))
    except ValueError:
        known = ", ".join(mode.value for mode in ShopMode)
        raise ValueError(f"unknown mode {value!r}: modes are {known}") from None


@dataclass
class ShopFaults:
    """The faults in force, shared by the shop and whoever drives it (timeline, control API)."""

    slow_seconds: float = 6.0
    pages: dict[str, Fault] = field(default_factory=lambda: dict.fromkeys(PAGES, Fault.NONE))
    modes: set[ShopMode] = field(default_factory=set)

    def set(self, page: str, fault: Fault) -> None:
        if page not in self.pages:
            raise _unknown_page(page)
        self.pages[page] = fault

    def set_all(self, fault: Fault) -> None:
        for page in self.pages:
            self.pages[page] = fault

    def switch(self, mode: ShopMode | str, on: bool = True) -> None:
        """Turn a mode on or off."""
        chosen = parse_mode(mode)
        if on:
            self.modes.add(chosen)
        else:
            self.modes.discard(chosen)

    def is_on(self, mode: ShopMode) -> bool:
        return mode in self.modes

    def clear(self) -> None:
        """Every page healthy and every mode off."""
        self.set_all(Fault.NONE)
        self.modes.clear()

    def replace(self, faults: Mapping[str, Fault], modes: Iterable[ShopMode] = ()) -> None:
        """Set exactly these faults and modes; pages and modes not named become healthy."""
        for page in faults:
            if page not in self.pages:
                raise _unknown_page(page)
        chosen = {parse_mode(mode) for mode in modes}
        for page in self.pages:
            self.pages[page] = faults.get(page, Fault.NONE)
        self.modes = chosen

    def snapshot(self) -> dict[str, Any]:
        return {
            "pages": {page: str(fault) for page, fault in self.pages.items()},
            "modes": {mode.value: mode in self.modes for mode in ShopMode},
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

    def accepts(self, token: str) -> bool:
        """Whether `token` is this session's CSRF token (compared in constant time)."""
        return secrets.compare_digest(token.encode(), self.csrf_token.encode())


class SessionStore:
    """In-memory sessions keyed by cookie, oldest dropped first beyond `max_sessions`."""

    def __init__(self, *, max_sessions: int = MAX_SESSIONS) -> None:
        self._sessions: OrderedDict[str, Session] = OrderedDict()
        self._max = max_sessions

    def existing(self, session_id: str | None) -> Session | None:
        """The session of this cookie value, if the shop still knows it."""
        if session_id is None or session_id not in self._sessions:
            return None
        self._sessions.move_to_end(session_id)
        return self._sessions[session_id]

    def get_or_create(self, session_id: str | None) -> Session:
        session = self.existing(session_id)
        if session is not None:
            return session
        session = Session(id=secrets.token_urlsafe(16), csrf_token=secrets.token_urlsafe(16))
        self._sessions[session.id] = session
        while len(self._sessions) > self._max:
            self._sessions.popitem(last=False)
        return session


@dataclass
class Order:
    number: str
    session_id: str
    items: dict[int, int]
    total_cents: int
    synthetic: bool  # placed by a request that carried the synthetic-check header
    cancelled: bool = False


class OrderBook:
    """Places orders with numbers in sequence from `first` (DS-001001, DS-001002, ...)."""

    def __init__(self, *, first: int = 1001, max_orders: int = MAX_ORDERS) -> None:
        self._next = first
        self._max = max_orders
        self.orders: OrderedDict[str, Order] = OrderedDict()

    def new_number(self) -> str:
        number, self._next = self._next, self._next + 1
        return f"DS-{number:06d}"

    def place(self, session: Session, *, synthetic: bool) -> Order:
        total = sum(PRODUCTS[pid].price_cents * qty for pid, qty in session.cart.items())
        order = Order(
            number=self.new_number(),
            session_id=session.id,
            items=dict(session.cart),
            total_cents=total,
            synthetic=synthetic,
        )
        self.orders[order.number] = order
        while len(self.orders) > self._max:
            self.orders.popitem(last=False)
        return order

    def of_session(self, number: str, session: Session) -> Order | None:
        """The order with this number, if `session` placed it."""
        order = self.orders.get(number)
        return order if order is not None and order.session_id == session.id else None


@dataclass(frozen=True, slots=True)
class ContactMessage:
    reference: str
    email: str
    message: str


@dataclass(frozen=True, slots=True)
class SeenRequest:
    method: str
    path: str
    synthetic: str | None  # the value of the synthetic-check header, if it came with one
    session_id: str | None  # the shop_session cookie it carried, if any


@dataclass
class ShopJournal:
    """What the shop saw and did, newest last, bounded: tests and the demo read it back."""

    requests: deque[SeenRequest] = field(default_factory=lambda: deque(maxlen=MAX_JOURNAL))
    messages: deque[ContactMessage] = field(default_factory=lambda: deque(maxlen=MAX_MESSAGES))
    cart_clears: list[str] = field(default_factory=list)  # session ids, one per clear
    cancelled: list[str] = field(default_factory=list)  # order numbers, one per cancel
    _next_reference: int = 1

    def new_reference(self) -> str:
        reference, self._next_reference = self._next_reference, self._next_reference + 1
        return f"CM-{reference:06d}"

    def note_clear(self, session_id: str) -> None:
        self.cart_clears.append(session_id)
        del self.cart_clears[:-MAX_JOURNAL]

    def note_cancel(self, number: str) -> None:
        self.cancelled.append(number)
        del self.cancelled[:-MAX_JOURNAL]

"""The demo's script: which pages of the shop break when, compressed into 170 s (DEMO_DURATION)."""

from __future__ import annotations

import bisect
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field

from monitor.demo.shop import Fault, ShopFaults
from monitor.demo.shop_state import ShopMode


@dataclass(frozen=True)
class Phase:
    """One stretch of the demo: from `starts_at` (seconds at speed 1) until the next phase."""

    name: str
    starts_at: float
    faults: Mapping[str, Fault] = field(default_factory=dict)  # pages not named are healthy
    description: str = ""  # one line for the person watching
    modes: frozenset[ShopMode] = frozenset()  # broken business logic; others work


_OUTAGE = {page: Fault.ERROR_500 for page in ("home", "product", "cart", "checkout")}
_SLOW = {page: Fault.SLOW for page in ("home", "product")}
_SLOW_THEN_DOWN = {"product": Fault.SLOW, "checkout": Fault.ERROR_500}

DEMO_PHASES: tuple[Phase, ...] = (
    Phase(
        name="healthy",
        starts_at=0.0,
        description="The shop is healthy: every check and flow passes.",
    ),
    Phase(
        name="outage",
        starts_at=8.0,
        faults=_OUTAGE,
        description=(
            "The shop answers 500 on home, product, cart and checkout"
            " (an outage: expect a Severity 1 incident)."
        ),
    ),
    Phase(
        name="recovery",
        starts_at=20.0,
        description="The shop is healthy again (expect the outage incident to resolve).",
    ),
    Phase(
        name="slow",
        starts_at=28.0,
        faults=_SLOW,
        description=(
            "Home and product pages load slowly (a slow load: expect a Severity 2 incident)."
        ),
    ),
    Phase(
        name="down while slow",
        # 14 s of each: a slow answer takes 1.5 s whatever the speed, so at --speed 3 two of
        # them (failures_to_open) take about 3.6 s, and two checkout runs through the still
        # slow product page as long, before the scene ends.
        starts_at=42.0,
        faults=_SLOW_THEN_DOWN,
        description=(
            "The product page is still slow and checkout now answers 500"
            " (expect the same incident to escalate to Severity 1)."
        ),
    ),
    Phase(
        name="recovery",
        starts_at=56.0,
        description="The shop is fast and up again (expect the incident to resolve).",
    ),
    Phase(
        name="broken checkout",
        starts_at=64.0,
        modes=frozenset({ShopMode.PAYMENT_ERROR}),
        description=(
            "Every page answers 200, but paying says 'Payment failed' (the checkout flow"
            " catches it: expect a Severity 1 incident while the home page is up)."
        ),
    ),
    Phase(
        name="recovery",
        starts_at=76.0,
        description="Payments work again (expect the checkout incident to resolve).",
    ),
    Phase(
        name="broken image",
        starts_at=84.0,
        modes=frozenset({ShopMode.MISSING_IMAGE}),
        description=(
            "The product image is missing (a broken image link: expect a Severity 3 incident)."
        ),
    ),
    Phase(
        name="recovery",
        starts_at=94.0,
        description="The image is back (expect the incident to resolve).",
    ),
    Phase(
        name="admin panel",
        starts_at=102.0,
        faults={"admin": Fault.ERROR_500},
        description=(
            "The admin panel answers 500 while the shop works (expect a Severity 2 incident"
            " named after the admin panel: the shop is not down)."
        ),
    ),
    Phase(
        name="recovery",
        starts_at=112.0,
        description="The admin panel is back (expect the incident to resolve).",
    ),
    Phase(
        name="script error",
        starts_at=120.0,
        modes=frozenset({ShopMode.SCRIPT_ERROR}),
        description=(
            "A deploy breaks the express checkout's script: every URL answers 200 and the"
            " http checks stay green; only the browser check sees that nobody can pay"
            " (with Chromium: expect a Severity 1 incident with a screenshot)."
        ),
    ),
    Phase(
        name="recovery",
        starts_at=146.0,
        description="The script is fixed (expect the checkout incident to resolve).",
    ),
)
DEMO_DURATION: float = 170.0


def phase_at(elapsed: float, phases: Sequence[Phase] = DEMO_PHASES) -> Phase:
    """The phase in force `elapsed` seconds (at speed 1) after the start.

    Past the last phase's start, the last phase stays in force.
    """
    _check_phases(phases)
    if elapsed < phases[0].starts_at:
        raise ValueError(f"elapsed must be at least {phases[0].starts_at} (got {elapsed})")
    index = bisect.bisect_right([phase.starts_at for phase in phases], elapsed) - 1
    return phases[index]


async def run_timeline(
    faults: ShopFaults,
    *,
    speed: float = 1.0,
    clock_monotonic: Callable[[], float],
    sleep: Callable[[float], Awaitable[None]],
    on_phase: Callable[[Phase], None] | None = None,
    phases: Sequence[Phase] = DEMO_PHASES,
    duration: float = DEMO_DURATION,
) -> None:
    """Apply each phase's faults at `starts_at / speed`, then return at `duration / speed`.

    Each wait is measured against `clock_monotonic` from one start time, so a sleep that
    overruns does not push every later phase back.
    """
    if speed <= 0:
        raise ValueError(f"speed must be above 0, e.g. 1 or 4 (got {speed})")
    _check_phases(phases)
    if duration < phases[-1].starts_at:
        raise ValueError(
            f"duration ({duration}) must not end before the last phase starts"
            f" ({phases[-1].starts_at})"
        )
    start = clock_monotonic()

    async def wait_until(offset: float) -> None:
        remaining = start + offset / speed - clock_monotonic()
        if remaining > 0:
            await sleep(remaining)

    for phase in phases:
        await wait_until(phase.starts_at)
        faults.replace(phase.faults, phase.modes)
        if on_phase is not None:
            on_phase(phase)
    await wait_until(duration)


def _check_phases(phases: Sequence[Phase]) -> None:
    if not phases:
        raise ValueError("phases must not be empty")
    starts = [phase.starts_at for phase in phases]
    if starts != sorted(starts):
        raise ValueError(f"phases must be in order of starts_at (got {starts})")

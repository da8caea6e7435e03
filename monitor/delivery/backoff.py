"""How long the outbox waits before it tries a failed notification again."""

from __future__ import annotations

import random
from collections.abc import Callable


def retry_delay(
    attempts: int,
    *,
    base: float = 5.0,
    cap: float = 900.0,
    rand: Callable[[], float] = random.random,
) -> float:
    """Seconds to wait after `attempts` failed attempts (1 = the first one failed).

    Exponential, `base * 2 ** (attempts - 1)` capped at `cap` (tenacity's `wait_exponential`),
    then jittered down to between half and all of that, so that the mails held back by one
    SMTP outage do not all come back in the same second. Never below `base / 2`, never above
    `cap`. `rand` returns a number in [0, 1); pass a constant in tests.

    Not tenacity's own wait objects: those read a live RetryCallState and the global random
    module, while the outbox counts attempts in its rows, across restarts.
    """
    if attempts < 1:
        raise ValueError(f"attempts must be 1 or more (got {attempts})")
    if base <= 0 or cap < base:
        raise ValueError(f"need 0 < base <= cap (got base={base}, cap={cap})")
    # min() before the power would overflow a float after ~1000 attempts.
    ceiling = min(cap, base * 2.0 ** min(attempts - 1, 64))
    return ceiling * (0.5 + 0.5 * rand())

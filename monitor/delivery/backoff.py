"""How long the outbox waits before it tries a failed notification again."""

from __future__ import annotations

import random
from collections.abc import Callable

from tenacity import RetryCallState, Retrying, wait_exponential


def retry_delay(
    attempts: int,
    *,
    base: float = 5.0,
    cap: float = 900.0,
    rand: Callable[[], float] = random.random,
) -> float:
    """Seconds to wait after `attempts` failed attempts (1 = the first one failed).

    Exponential, `base * 2 ** (attempts - 1)` capped at `cap` (tenacity's `wait_exponential`,
    asked with the attempt number the outbox keeps in its row, so the backoff survives
    restarts), then jittered down to between half and all of that, so that the mails held
    back by one SMTP outage do not all come back in the same second. Never below `base / 2`,
    never above `cap`. `rand` returns a number in [0, 1); pass a constant in tests (tenacity's
    own jitter reads the global random module).
    """
    if attempts < 1:
        raise ValueError(f"attempts must be 1 or more (got {attempts})")
    if base <= 0 or cap < base:
        raise ValueError(f"need 0 < base <= cap (got base={base}, cap={cap})")
    state = RetryCallState(retry_object=_NO_RETRYING, fn=None, args=(), kwargs={})
    state.attempt_number = attempts
    ceiling = float(wait_exponential(multiplier=base, max=cap)(state))
    return ceiling * (0.5 + 0.5 * rand())


# A wait strategy reads only the attempt number; RetryCallState wants its Retrying anyway.
_NO_RETRYING = Retrying()

"""The `heartbeat` check (push): a job pings the monitor, and silence is the failure.

A cron job, a backup or a queue worker calls its check's secret URL, as healthchecks.io's
clients do:

    /ping/<token>           success (also /ping/<token>/0)
    /ping/<token>/start     the job began: the time to its success is its run time
    /ping/<token>/fail      failure (also /ping/<token>/<exit code other than 0>)

The monitor keeps the latest pings per check (`PingState`, changed by the pure `apply_ping`)
and a scheduled evaluation judges them with `judge_heartbeat`, a pure function of `now`:

1. a failure newer than the last success                     -> heartbeat_failed
2. a start not followed by success or failure within `grace` -> heartbeat_missed
3. no success for `period + grace` (counted from when the
   monitor began watching, until the first success)         -> heartbeat_missed
4. otherwise                                                 -> ok

Nothing here knows the network or the database; the ping routes and the store are the
monitor's (monitor.web.ping, monitor.store.pings). Tokens are secrets: no evidence, log or
metric shows one.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import re
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal

from pydantic import Field, SecretStr, field_validator

from checks.duration import Duration
from checks.result import Evidence, Outcome, ProbeResult
from checks.spec import ProbeSpec

# What a heartbeat's evidence names instead of a URL: its ping URL holds the secret token.
EVIDENCE_URL = "heartbeat"
TOKEN_PATTERN = r"^[A-Za-z0-9_-]{16,128}$"
_DERIVED_CHARS = 32  # 192 bits of the HMAC, base64url


class PingKind(enum.StrEnum):
    """What a ping says about the job."""

    START = "start"  # the job began
    SUCCESS = "success"  # the job finished well (or simply: it is alive)
    FAIL = "fail"  # the job failed (a fail ping or a non-zero exit code)


class HeartbeatCheckSpec(ProbeSpec):
    """`kind: heartbeat`: the job pings `/ping/<token>` at least every `period`."""

    kind: Literal["heartbeat"] = "heartbeat"
    period: Duration = Field(
        description="How often the job pings when all is well, e.g. 1h for an hourly cron "
        "job, 1d for a nightly backup."
    )
    grace: Duration = Field(
        default=timedelta(minutes=5),
        description="How late a ping may be before it counts as missed; also how long a job "
        "may run after its start ping.",
    )
    token: SecretStr | None = Field(
        default=None,
        description="The secret of this check's ping URL, from the environment: "
        "${BACKUP_PING_TOKEN} (16 to 128 letters, digits, '-' or '_'). Left out: derived "
        "from heartbeat.secret and the check's key (see `monitor heartbeat-urls`).",
    )

    @field_validator("token")
    @classmethod
    def _url_safe(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None  # `${TOKEN:-}` unset: derived instead
        if not re.match(TOKEN_PATTERN, value.get_secret_value()):
            # The value is a secret: the message says what is wrong, not what it was.
            raise ValueError(
                "must be 16 to 128 letters, digits, '-' or '_' (e.g. the output of "
                "`openssl rand -hex 16`)"
            )
        return value

    @field_validator("period")
    @classmethod
    def _positive_period(cls, value: timedelta) -> timedelta:
        if value < timedelta(seconds=1):
            raise ValueError("must be at least 1s, e.g. 1h or 1d")
        return value


def derived_token(secret: str, check_key: str) -> str:
    """The token of a check without its own: HMAC-SHA256 of its key under the shared secret,
    URL-safe. Stable across restarts and processes; a new secret gives every check a new URL."""
    digest = hmac.new(secret.encode(), check_key.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii")[:_DERIVED_CHARS]


@dataclass(frozen=True, slots=True)
class PingState:
    """The latest pings of one check, as the store keeps them (one row per check)."""

    last_ping_at: datetime | None = None
    success_at: datetime | None = None
    failure_at: datetime | None = None
    exit_code: int | None = None  # of the latest failure, when it came as an exit code
    started_at: datetime | None = None  # a start not yet followed by success or failure
    run_seconds: float | None = None  # start to success, of the latest run that had both


def apply_ping(
    state: PingState | None, *, kind: PingKind, at: datetime, exit_code: int | None = None
) -> PingState:
    """`state` after a ping of `kind` at `at`."""
    state = state or PingState()
    if kind is PingKind.START:
        return replace(state, last_ping_at=at, started_at=at)
    if kind is PingKind.SUCCESS:
        run = state.run_seconds
        if state.started_at is not None and state.started_at <= at:
            run = (at - state.started_at).total_seconds()
        return replace(state, last_ping_at=at, success_at=at, started_at=None, run_seconds=run)
    return replace(state, last_ping_at=at, failure_at=at, exit_code=exit_code, started_at=None)


def judge_heartbeat(
    spec: HeartbeatCheckSpec,
    *,
    now: datetime,
    watching_since: datetime | None,
    state: PingState | None,
) -> ProbeResult:
    """The verdict on a heartbeat at `now` (see the module docstring for the rules).

    `watching_since` is when the monitor began expecting pings (its start): a check that has
    never pinged is missed once `period + grace` has passed since then; None (a one-off
    probe) judges one that never pinged missed at once."""
    state = state or PingState()
    period, grace = spec.period, spec.grace
    outcome, error = Outcome.OK, None
    if state.failure_at is not None and (
        state.success_at is None or state.failure_at > state.success_at
    ):
        outcome = Outcome.HEARTBEAT_FAILED
        how = "a fail ping" if state.exit_code is None else f"exit code {state.exit_code}"
        error = f"the job reported {how} {_ago(now - state.failure_at)}"
    elif state.started_at is not None and now - state.started_at > grace:
        outcome = Outcome.HEARTBEAT_MISSED
        error = (
            f"the job started {_ago(now - state.started_at)} and has not finished within "
            f"grace {_span(grace)}"
        )
    else:
        expected = f"expected every {_span(period)} (grace {_span(grace)})"
        if state.success_at is not None:
            if now - state.success_at > period + grace:
                outcome = Outcome.HEARTBEAT_MISSED
                error = f"last success {_ago(now - state.success_at)}; {expected}"
        elif watching_since is None:
            outcome = Outcome.HEARTBEAT_MISSED
            error = f"no success ping has arrived yet; {expected}"
        elif now - watching_since > period + grace:
            outcome = Outcome.HEARTBEAT_MISSED
            error = (
                f"no success ping since the monitor began watching "
                f"{_ago(now - watching_since)}; {expected}"
            )
    timings: dict[str, float] = {}
    if state.run_seconds is not None:
        timings["run"] = state.run_seconds
    if state.last_ping_at is not None:
        timings["since_last_ping"] = max(0.0, (now - state.last_ping_at).total_seconds())
    return ProbeResult(
        outcome=outcome,
        started_at=now,
        latency=None,
        evidence=Evidence(url=EVIDENCE_URL, error=error, timings=timings),
    )


def _ago(span: timedelta) -> str:
    return f"{_span(span)} ago"


def _span(span: timedelta) -> str:
    """`1d 2h`, `3h 05m`, `4m 10s`, `12s`: the two largest units."""
    seconds = max(0, int(span.total_seconds()))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h" if hours else f"{days}d"
    if hours:
        return f"{hours}h {minutes:02d}m" if minutes else f"{hours}h"
    if minutes:
        return f"{minutes}m {secs:02d}s" if secs else f"{minutes}m"
    return f"{secs}s"

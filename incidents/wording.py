"""How the engine puts things into words: incident titles, result summaries, timeline lines.

Pure functions of plain values, kept apart from the state machine so the wording can be read,
tested and changed without touching the rules.
"""

from __future__ import annotations

from checks.result import Outcome, ProbeResult
from incidents.severity import Severity

# Outcomes that mean the page is not served at all: the title says the site "is down".
OUTAGE_OUTCOMES = frozenset(
    {
        Outcome.HTTP_5XX,
        Outcome.TIMEOUT,
        Outcome.CONNECTION_ERROR,
        Outcome.TLS_ERROR,
        Outcome.UNEXPECTED_STATUS,
    }
)

# Probes bound their error text already; this cap keeps one timeline line one line even if a
# probe forgets to.
_MAX_ERROR_CHARS = 200


def check_id(check_key: str) -> str:
    """The last part of a check key: `acme/shop/home` -> `home`."""
    return check_key.rsplit("/", 1)[-1]


def incident_title(*, site_label: str, check_key: str, outcome: Outcome) -> str:
    """The title of an incident whose worst cause is `outcome` on check `check_key`."""
    if outcome in OUTAGE_OUTCOMES:
        return f"{site_label} is down"
    if outcome is Outcome.SLOW:
        return f"{site_label} is slow"
    return f"{site_label}: {check_id(check_key)} failing ({outcome})"


def describe(result: ProbeResult) -> str:
    """One line for logs: outcome, then status, latency, failing step and error when known.

    e.g. `http_5xx (HTTP 500, 120 ms)`, `timeout (10.0 s, no answer within 10s)`.
    """
    return _summary(result, with_latency=True)


def cause(result: ProbeResult) -> str:
    """What a timeline line says about a result: like `describe`, but latency only when slow.

    A 500's latency is noise on a timeline; a slow answer's latency is the whole point.
    """
    return _summary(result, with_latency=result.outcome is Outcome.SLOW)


def failed_message(*, check_key: str, result: ProbeResult, failures: int) -> str:
    """e.g. `acme/shop/home failed: http_5xx (HTTP 500) after 3 consecutive failures`."""
    return f"{check_key} failed: {cause(result)} after {_run(failures, 'failure')}"


def escalated_message(
    *, check_key: str, result: ProbeResult, before: Severity, after: Severity
) -> str:
    """e.g. `escalated from Severity 2 to Severity 1: acme/shop/home http_5xx (HTTP 500)`."""
    return f"escalated from Severity {int(before)} to Severity {int(after)}: {check_key} " + cause(
        result
    )


def recovered_message(*, check_key: str, result: ProbeResult, successes: int) -> str:
    """e.g. `acme/shop/home recovered: ok (HTTP 200) after 2 consecutive successes`."""
    return f"{check_key} recovered: {cause(result)} after {_run(successes, 'success')}"


def resolved_message(*, site_label: str) -> str:
    return f"resolved: every check of {site_label} passes again"


def _run(count: int, noun: str) -> str:
    if count == 1:
        return f"1 {noun}"
    plural = "successes" if noun == "success" else f"{noun}s"
    return f"{count} consecutive {plural}"


def _summary(result: ProbeResult, *, with_latency: bool) -> str:
    evidence = result.evidence
    parts: list[str] = []
    # Flow probes name the step in their error text already ("step pay: ...").
    if evidence.step and not (evidence.error or "").startswith(f"step {evidence.step}"):
        parts.append(f"step {evidence.step}")
    # A probe's error text often is the status line itself ("HTTP 500 Internal Server
    # Error"): say it once.
    if evidence.status is not None and not (evidence.error or "").startswith(
        f"HTTP {evidence.status}"
    ):
        parts.append(f"HTTP {evidence.status}")
    if with_latency and result.latency is not None:
        parts.append(_latency(result.latency))
    if evidence.error:
        parts.append(_one_line(evidence.error))
    if not parts:
        return str(result.outcome)
    return f"{result.outcome} ({', '.join(parts)})"


def _latency(seconds: float) -> str:
    if seconds < 1:
        return f"{round(seconds * 1000)} ms"
    return f"{seconds:.1f} s"


def _one_line(text: str) -> str:
    flat = " ".join(text.split())
    if len(flat) <= _MAX_ERROR_CHARS:
        return flat
    return flat[: _MAX_ERROR_CHARS - 1] + "…"

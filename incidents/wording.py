"""How the engine puts things into words: incident titles, result summaries, timeline lines.

Pure functions of plain values, kept apart from the state machine so the wording can be read,
tested and changed without touching the rules.
"""

from __future__ import annotations

from collections.abc import Callable

from babel.numbers import format_decimal

from checks.result import Outcome, ProbeResult
from incidents.model import CheckRef, Headline
from incidents.severity import Severity

# A catalog's gettext: English msgid in, the reader's language out.
Gettext = Callable[[str], str]

# Outcomes that mean the page is not served at all: when an availability check has one, the
# title says the site "is down".
OUTAGE_OUTCOMES = frozenset(
    {
        Outcome.HTTP_5XX,
        Outcome.TIMEOUT,
        Outcome.CONNECTION_ERROR,
        Outcome.TLS_ERROR,
        Outcome.UNEXPECTED_STATUS,
        Outcome.REDIRECT_REFUSED,
        Outcome.DNS_ERROR,  # the site's own name (an availability dns check) resolves no more
    }
)

# Probes bound their error text already; this cap keeps one timeline line one line even if a
# probe forgets to.
_MAX_ERROR_CHARS = 200


def check_id(check_key: str) -> str:
    """The last part of a check key: `acme/shop/home` -> `home`."""
    return check_key.rsplit("/", 1)[-1]


def part_name(*, name: str, check_key: str) -> str:
    """A check's display name: its configured `name`, else its id in words (`admin-panel`
    -> `Admin panel`), so no reader ever sees a `client/site/check` key."""
    if name.strip():
        return " ".join(name.split())
    words = check_id(check_key).replace("-", " ").replace("_", " ").replace(".", " ")
    words = " ".join(words.split())
    return words[:1].upper() + words[1:]


def headline_for(check: CheckRef, result: ProbeResult) -> Headline:
    """The parts of the title an incident gets when `result` of `check` is its worst cause."""
    evidence = result.evidence
    return Headline(
        site_label=check.site_label,
        check=check.key,
        part=part_name(name=check.name, check_key=check.key),
        availability=check.availability,
        outcome=result.outcome,
        status=evidence.status,
        # A step name is the operator's (from the config), never the target's.
        step=evidence.step,
        latency=result.latency if result.outcome is Outcome.SLOW else None,
        slow_after=check.slow_after if result.outcome is Outcome.SLOW else None,
    )


def is_down(headline: Headline) -> bool:
    """The site as a whole is down: an availability check fails to be served at all."""
    return headline.availability and headline.outcome in OUTAGE_OUTCOMES


def _english(message: str) -> str:
    return message


def title(headline: Headline, *, gettext: Gettext = _english, locale: str = "en") -> str:
    """The incident's title in the catalog's language: "<site> is down" only when the
    availability scope fails; otherwise it names the failing part and how it fails, e.g.
    "Trail Outfitters: Checkout is failing (the pay step answers with an error)"."""
    _ = gettext
    values: dict[str, object] = {
        "site": headline.site_label,
        "part": headline.part,
        "status": headline.status,
        "step": (headline.step or "").replace("-", " ").replace("_", " "),
    }
    if headline.outcome is Outcome.SLOW:
        values["latency"] = _seconds(headline.latency, locale=locale)
        values["target"] = _seconds(headline.slow_after, locale=locale)
        if headline.latency is None or headline.slow_after is None:
            if headline.availability:
                return _("%(site)s: pages load slowly") % values
            return _("%(site)s: %(part)s loads slowly") % values
        if headline.availability:
            return _("%(site)s: pages load slowly (%(latency)s, target %(target)s)") % values
        return _("%(site)s: %(part)s loads slowly (%(latency)s, target %(target)s)") % values
    if is_down(headline):
        return _("%(site)s is down") % values
    return _("%(site)s: %(part)s %(how)s") % {**values, "how": _how(headline, _, values)}


def _how(headline: Headline, _: Gettext, values: dict[str, object]) -> str:
    """How the part fails, after its name: "unreachable (HTTP 500)", "is failing (...)"."""
    outcome = headline.outcome
    if outcome is Outcome.BROKEN_ASSET:
        return _("shows a broken image or file")
    if outcome is Outcome.CERT_EXPIRING:
        return _("has a security certificate that expires soon")
    if headline.step:
        return _step_how(headline, _, values)
    if outcome in (Outcome.HTTP_5XX, Outcome.UNEXPECTED_STATUS) and headline.status is not None:
        return _("unreachable (HTTP %(status)s)") % values
    plain = {
        Outcome.CONTENT_MISMATCH: N_("does not show what it should"),
        Outcome.TIMEOUT: N_("unreachable (no answer in time)"),
        Outcome.CONNECTION_ERROR: N_("unreachable (no connection)"),
        Outcome.TLS_ERROR: N_("unreachable (the secure connection fails)"),
        Outcome.TOO_LARGE: N_("is failing (the answer is too large)"),
        Outcome.REDIRECT_REFUSED: N_("unreachable (it sends visitors to an internal address)"),
        Outcome.DNS_ERROR: N_("cannot be found (its DNS name does not resolve)"),
        Outcome.DNS_MISMATCH: N_("has unexpected DNS records"),
        Outcome.DOMAIN_EXPIRING: N_("has a domain registration that expires soon"),
        Outcome.DOMAIN_EXPIRING_SOON: N_("has a domain registration that expires in days"),
        Outcome.DOMAIN_EXPIRED: N_("has an expired domain registration"),
        Outcome.DOMAIN_UNKNOWN: N_("has a domain registration we could not check"),
        Outcome.HEARTBEAT_MISSED: N_("did not report in time"),
        Outcome.HEARTBEAT_FAILED: N_("reported a failure"),
        Outcome.SCRIPT_ERROR: N_("is failing (the page has an error)"),
        Outcome.REQUEST_FAILED: N_("is failing (part of the page does not load)"),
        Outcome.ELEMENT_MISSING: N_("is failing (a button or field is missing)"),
    }
    return _(plain.get(outcome, N_("is failing")))


def _step_how(headline: Headline, _: Gettext, values: dict[str, object]) -> str:
    """How a flow fails at one of its steps: "is failing (the pay step answers with an error)"."""
    outcome = headline.outcome
    if outcome in (Outcome.HTTP_5XX, Outcome.UNEXPECTED_STATUS):
        if headline.status is not None:
            return _("is failing (the %(step)s step answers with an error, HTTP %(status)s)") % (
                values
            )
        return _("is failing (the %(step)s step answers with an error)") % values
    if outcome is Outcome.CONTENT_MISMATCH:
        return _("is failing (the %(step)s step does not show what it should)") % values
    if outcome is Outcome.TIMEOUT:
        return _("is failing (the %(step)s step does not answer in time)") % values
    # What a browser check sees (checks.browser); never what the page's console said.
    browser = {
        Outcome.SCRIPT_ERROR: N_("is failing (the page has an error at the %(step)s step)"),
        Outcome.REQUEST_FAILED: N_(
            "is failing (part of the page does not load at the %(step)s step)"
        ),
        Outcome.ELEMENT_MISSING: N_(
            "is failing (a button or field is missing at the %(step)s step)"
        ),
        Outcome.TOO_LARGE: N_("is failing (the page is too heavy at the %(step)s step)"),
    }
    if outcome in browser:
        return _(browser[outcome]) % values
    return _("is failing (the %(step)s step cannot be reached)") % values


def N_(message: str) -> str:  # noqa: N802 - gettext's marker name, which pybabel extracts
    """Marks a msgid for the catalogs; it is translated where it is used."""
    return message


def _seconds(value: float | None, *, locale: str) -> str:
    """`7.2 s` in English, `7,2 s` in German: the reader's own decimal mark."""
    if value is None:
        return ""
    if value < 1:
        return f"{round(value * 1000)} ms"
    return f"{format_decimal(round(value, 1), format='0.#', locale=locale)} s"


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

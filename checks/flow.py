"""The `flow` check: several requests in one browser-like session, such as a checkout.

A flow is a list of steps run in order in one HTTP session of its own (cookies carry from
step to step, and no other check or run shares them). Each step sends one request and judges
its answer. A step can save values from its answer (a regex group, a JSON path, a named
hidden form field such as a CSRF token, a response header) for later steps to use as
`{{name}}` in their url, headers, form, JSON body and expectations (see `checks.template`).
Secrets such as a test card number come from `${VAR}` in the YAML, substituted when the
config is loaded; step bodies are never logged and requests never reach the evidence. What
a flow sent (form and JSON values, headers, URL credentials), what it saved and its session
cookies are masked wherever an answer echoes them (`checks.scrub`); mark a form field
`secret: true` to mask it whatever its length. A redirect to another origin carries the
synthetic-check header but none of the step's headers (`checks.redirects`).

How a step's answer is judged, first match wins (the same order as the `http` check):

1. status >= 500                                  -> http_5xx
2. status outside `expect.status`                 -> unexpected_status
3. body longer than `max_body_bytes`              -> too_large
4. `body_contains` / `body_not_contains` /
   `json_equals` fail                             -> content_mismatch
5. a `save` finds nothing                         -> content_mismatch ("could not save ...")
6. otherwise the step passes

No answer at all is named by `checks.classify` (timeout, connection_error, tls_error,
too_large for too many redirects). A step's values are saved from any complete answer, even
one that fails its expectations, so that a cleanup step can still cancel an order whose
confirmation page looked wrong.

The flow's outcome:

- The first failing step decides it. Later steps are skipped, except steps marked `always`
  (cleanup: empty the cart, cancel the test order), which still run; their own results are
  noted in the evidence but do not change the outcome. An `always` step that needs a value
  the failed flow never saved is skipped (no order number, no order to cancel).
- An `always` step is otherwise an ordinary step: when every step before it passed and it
  fails, the flow fails at that step. A cleanup that stops working leaves test orders in a
  client's shop, which somebody has to hear about.
- When every step passes, the whole flow's wall time (every step that ran) is compared with
  `slow_after`: slower is `slow`, and the evidence is the slowest step's.
- `timeout` bounds the whole flow, cleanup steps included; a step's own `timeout` bounds that
  step within it. Once the flow's time is spent, cleanup steps are skipped.
- A flow is never re-tried inside one probe: a step may have side effects (an order), and
  `failures_to_open` already absorbs one lost packet.

The evidence is the deciding step's (url, status, body excerpt, response headers, timings),
with `Evidence.step` naming it and `Evidence.error` saying why ("step pay: body lacks
"Order confirmed""). Timings hold that step's `total` and `ttfb`, the `flow_total`, and
`step:<name>` for each step that ran.

The synthetic-check header
--------------------------

Every request of a flow, redirects included, carries the header

    X-Synthetic-Check: agency-monitor

(the name is the check's `synthetic_header`; the value is always `agency-monitor`). It tells
the client's site that the request comes from our monitor, not from a customer, so that the
site can leave it out of its analytics and conversion tracking, skip e-mails to the
customer, and cancel or never fulfil orders placed by it. A flow cannot remove or change it
through a step's `headers`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urljoin

import aiohttp
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from checks.classify import PROBE_ERRORS, classify_exception, failure_cause, one_line
from checks.extract import Answer, Extractor, NotFound, extract, find_json
from checks.flow_spec import (
    DEFAULT_SYNTHETIC_HEADER,
    SYNTHETIC_VALUE,
    FlowCheckSpec,
    FlowStep,
    StepExpect,
    step_problems,
)
from checks.http import (
    EXCERPT_BYTES,
    _decode,
    _header_evidence,
    _quote,
    _read_capped,
    _status_text,
)
from checks.redact import redact_text, redact_url
from checks.redirects import open_following
from checks.result import Evidence, FailureCause, Outcome, ProbeResult
from checks.scrub import (
    Secrets,
    clean_line,
    clean_text,
    header_secrets,
    strings_in,
    url_secrets,
)
from checks.template import MissingValue, as_text, render, render_json, render_mapping

__all__ = [
    "DEFAULT_SYNTHETIC_HEADER",
    "SYNTHETIC_VALUE",
    "Extractor",
    "FlowCheckSpec",
    "FlowStep",
    "StepExpect",
    "probe_flow",
    "step_problems",
]

_log = logging.getLogger(__name__)

_MAX_CONTENT_ERROR_CHARS = 300
_MAX_FLOW_ERROR_CHARS = 1000


async def probe_flow(
    spec: FlowCheckSpec,
    *,
    session: aiohttp.ClientSession,
    now: Callable[[], datetime],
    monotonic: Callable[[], float] = time.perf_counter,
) -> ProbeResult:
    """Run `spec`'s steps and classify the flow (see the module docstring).

    `spec.url` must be absolute. The flow's requests go through `session`'s connector (and
    carry its default headers) but in a session of their own, with a fresh cookie jar that
    also keeps cookies from IP hosts such as 127.0.0.1. `now` stamps `started_at` (UTC);
    `monotonic` measures the timings.
    """
    started_at = now()
    connector = session.connector
    if connector is None:
        raise RuntimeError("probe_flow needs an open session (its connector is closed)")
    async with aiohttp.ClientSession(
        connector=connector,
        connector_owner=False,
        cookie_jar=aiohttp.CookieJar(unsafe=True),
        headers=session.headers,
        trust_env=session.trust_env,
    ) as flow_session:
        run = _FlowRun(spec, session=flow_session, monotonic=monotonic)
        await run.run()
        # A session cookie is a credential: where an answer echoes it, evidence masks it.
        run.mask_too(morsel.value for morsel in flow_session.cookie_jar)
    return run.result(started_at)


@dataclass(slots=True)
class _Request:
    """A step with its placeholders filled in, ready to send and judge."""

    url: URL
    headers: CIMultiDict[str]
    form: dict[str, str] | None
    json_body: Any
    body_contains: list[str]
    body_not_contains: list[str]
    json_equals: dict[str, Any]


class _Unsendable(Exception):
    """Saved values made a request that cannot be sent (a line break in a header, a URL
    that does not parse): the target's answer at fault, so the step fails."""


@dataclass(slots=True)
class _StepReport:
    """What one step did and saw."""

    step: FlowStep
    url: str
    status: int | None = None
    reason: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    raw_headers: CIMultiDictProxy[str] | None = None
    charset: str | None = None
    body: bytearray = field(default_factory=bytearray)
    truncated: bool = False
    ttfb: float | None = None
    total: float | None = None  # None when the step did not run
    outcome: Outcome | None = None  # None when the step passed or was skipped
    error: str | None = None
    answered: bool = False  # a complete answer was judged (not an exception)
    cause: FailureCause | None = None  # see checks.classify.failure_cause
    skipped: str | None = None  # why the step did not run

    @property
    def failed(self) -> bool:
        return self.outcome is not None


class _FlowRun:
    def __init__(
        self,
        spec: FlowCheckSpec,
        *,
        session: aiohttp.ClientSession,
        monotonic: Callable[[], float],
    ) -> None:
        self._spec = spec
        self._session = session
        self._clock = monotonic
        self._values: dict[str, Any] = {}
        self._masked: list[str] = []  # values sent or saved: masked in evidence (checks.scrub)
        self._strict: list[str] = []  # values of `secret: true` fields: masked at any length
        self._reports: list[_StepReport] = []
        self._failure: _StepReport | None = None
        self._start = 0.0
        self._end = 0.0

    def mask_too(self, values: Iterable[str]) -> None:
        """Mask `values` in the evidence as well (see checks.scrub)."""
        self._masked.extend(values)

    async def run(self) -> None:
        self._start = self._clock()
        for step in self._spec.steps:
            if self._failure is not None and not step.always:
                self._reports.append(_StepReport(step=step, url=step.url, skipped="skipped"))
                continue
            report = await self._run_step(step)
            self._reports.append(report)
            _log.debug("flow step %s: %s", step.name, report.outcome or report.skipped or "ok")
            if report.failed and self._failure is None:
                self._failure = report
        self._end = self._clock()

    async def _run_step(self, step: FlowStep) -> _StepReport:
        report = _StepReport(step=step, url=urljoin(self._spec.url, step.url))
        try:
            request = self._render(step)
        except MissingValue as exc:
            if self._failure is None:  # pragma: no cover - validation rules this out
                raise
            report.skipped = f"skipped ({{{{{exc.name}}}}} was not saved)"
            return report
        except _Unsendable as exc:
            report.outcome, report.error, report.total = Outcome.CONTENT_MISMATCH, str(exc), 0.0
            return report
        report.url = str(request.url)
        limit, limit_text = self._limit(step)
        if limit <= 0:
            if self._failure is not None:
                report.skipped = "skipped (the flow's timeout was spent)"
            else:
                report.outcome, report.total = Outcome.TIMEOUT, 0.0
                report.error = f"not started: {limit_text} was spent by the steps before"
            return report
        start = self._clock()
        try:
            async with asyncio.timeout(limit):
                await self._exchange(request, report, since=start)
        except PROBE_ERRORS as exc:
            report.total = self._clock() - start
            _no_answer(report, exc, limit_text=limit_text, max_redirects=self._spec.max_redirects)
            return report
        report.total = self._clock() - start
        report.answered = True
        self._judge(request, report)
        return report

    def _render(self, step: FlowStep) -> _Request:
        values = self._values
        rendered_url = urljoin(self._spec.url, render(step.url, values))
        try:
            url = URL(rendered_url)
        except ValueError as exc:
            raise _Unsendable(f"saved values made an invalid url: {one_line(exc)}") from exc
        headers: CIMultiDict[str] = CIMultiDict()
        for name, value in render_mapping(step.headers, values).items():
            if any(char in name + value for char in "\r\n\0"):
                raise _Unsendable(f"saved values put a line break into the {name} header")
            headers[name] = value
        # Set last, so that no step header can drop or change it.
        headers[self._spec.synthetic_header] = SYNTHETIC_VALUE
        expect = step.expect
        form = self._form(step)
        json_body = render_json(step.json_body, values)
        # What this step sends may come back in an answer: masked in the evidence.
        self._masked += header_secrets(headers)
        self._masked += url_secrets(rendered_url)
        self._masked += strings_in(json_body)
        return _Request(
            url=url,
            headers=headers,
            form=form,
            json_body=json_body,
            body_contains=[render(text, values) for text in expect.body_contains],
            body_not_contains=[render(text, values) for text in expect.body_not_contains],
            json_equals={path: render_json(v, values) for path, v in expect.json_equals.items()},
        )

    def _form(self, step: FlowStep) -> dict[str, str] | None:
        texts = step.form_texts()
        if texts is None:
            return None
        form = {}
        for name, text in texts.items():
            value = render(text, self._values)
            form[render(name, self._values)] = value
            (self._strict if step.is_secret_field(name) else self._masked).append(value)
        return form

    def _limit(self, step: FlowStep) -> tuple[float, str]:
        """Seconds this step may take, and how to name that limit in a message."""
        flow_limit = self._spec.timeout.total_seconds()
        left = self._start + flow_limit - self._clock()
        if step.timeout is not None and step.timeout.total_seconds() < left:
            return step.timeout.total_seconds(), f"the step's timeout {_secs(step.timeout)}"
        return left, f"the flow's timeout {_secs(self._spec.timeout)}"

    async def _exchange(self, request: _Request, report: _StepReport, *, since: float) -> None:
        spec = self._spec
        async with open_following(
            self._session,
            report.step.method,
            request.url,
            headers=request.headers,
            # The synthetic-check header goes everywhere; the step's own headers do not.
            kept=(spec.synthetic_header,),
            data=request.form,
            json=request.json_body,
            follow=report.step.follow_redirects,
            max_redirects=spec.max_redirects,
            allow_private=spec.allow_private_redirects,
            ssl=spec.verify_tls,
        ) as response:
            report.ttfb = self._clock() - since
            report.url = str(response.url)
            report.status = response.status
            report.reason = response.reason
            report.headers = _header_evidence(response.headers)
            report.raw_headers = response.headers
            report.charset = response.charset
            report.truncated = await _read_capped(
                response.content, into=report.body, cap=spec.max_body_bytes
            )
            if report.truncated:
                response.close()

    def _judge(self, request: _Request, report: _StepReport) -> None:
        """Save what the answer offers, then classify it (see the module docstring)."""
        status = report.status
        assert status is not None  # an answered step has a status
        answer = Answer(
            text=_decode(report.body, report.charset),
            headers=report.raw_headers if report.raw_headers is not None else CIMultiDict(),
        )
        unsaved = None if report.truncated else self._save(report.step, answer)
        if status >= 500:
            report.outcome, report.error = Outcome.HTTP_5XX, _status_text(status, report.reason)
        elif not report.step.expect.accepts_status(status):
            accepted = ", ".join(str(entry) for entry in report.step.expect.status)
            report.outcome = Outcome.UNEXPECTED_STATUS
            report.error = (
                f"{_status_text(status, report.reason)} is outside expect.status [{accepted}]"
            )
        elif report.truncated:
            report.outcome = Outcome.TOO_LARGE
            report.error = (
                f"body is larger than max_body_bytes ({self._spec.max_body_bytes} bytes); "
                "stopped reading there"
            )
        elif (mismatch := _content_mismatch(request, answer)) is not None:
            report.outcome, report.error = Outcome.CONTENT_MISMATCH, mismatch
        elif unsaved is not None:
            report.outcome, report.error = Outcome.CONTENT_MISMATCH, unsaved

    def _save(self, step: FlowStep, answer: Answer) -> str | None:
        """Save every value the answer has; say what could not be saved, if anything."""
        problems = []
        for name, extractor in step.save.items():
            try:
                self._values[name] = extract(extractor, answer)
                self._masked.append(as_text(self._values[name]))
            except NotFound as exc:
                problems.append(f"could not save {name}: {exc}")
        return _bounded("; ".join(problems)) if problems else None

    # -- the verdict ------------------------------------------------------------------------

    def result(self, started_at: datetime) -> ProbeResult:
        result = self._verdict(started_at)
        secrets = Secrets(self._masked, strict=self._strict)
        return replace(result, evidence=result.evidence.masked(secrets))

    def _verdict(self, started_at: datetime) -> ProbeResult:
        flow_total = self._end - self._start
        ran = [report for report in self._reports if report.total is not None]
        step_timings = {f"step:{r.step.name}": r.total for r in ran if r.total is not None}
        failure = self._failure
        if failure is not None:
            error = f"step {failure.step.name}: {failure.error}" + self._afterwards(failure)
            return ProbeResult(
                outcome=failure.outcome or Outcome.CONTENT_MISMATCH,
                started_at=started_at,
                latency=flow_total if failure.answered else None,
                evidence=_evidence(
                    failure,
                    error=_bounded(error, limit=_MAX_FLOW_ERROR_CHARS),
                    timings={**_step_timings(failure), "flow_total": flow_total, **step_timings},
                    step=failure.step.name,
                ),
                cause=failure.cause,
            )
        slow_after = self._spec.slow_after.total_seconds()
        timings = {"total": flow_total, "flow_total": flow_total, **step_timings}
        if flow_total <= slow_after:
            # What a passing flow shows is its last real step, not a cleanup run after it:
            # "/orders/•••/cancel" is not the page a client's mail should name.
            shown = next((r for r in reversed(ran) if not r.step.always), ran[-1])
            evidence = _evidence(shown, error=None, timings=timings, step=None)
            return ProbeResult(
                outcome=Outcome.OK, started_at=started_at, latency=flow_total, evidence=evidence
            )
        slowest = max(ran, key=lambda report: report.total or 0.0)
        error = (
            f"the flow took {flow_total:.3f}s, more than slow_after {slow_after:g}s; "
            f"slowest step {slowest.step.name} took {slowest.total or 0.0:.3f}s"
        )
        return ProbeResult(
            outcome=Outcome.SLOW,
            started_at=started_at,
            latency=flow_total,
            evidence=_evidence(slowest, error=error, timings=timings, step=slowest.step.name),
        )

    def _afterwards(self, failure: _StepReport) -> str:
        """What happened after the failing step: skipped steps and each cleanup's result."""
        after = self._reports[self._reports.index(failure) + 1 :]
        skipped = [report.step.name for report in after if report.skipped == "skipped"]
        notes = [f"; not run: {', '.join(skipped)}"] if skipped else []
        for report in after:
            if not report.step.always:
                continue
            if report.skipped is not None:
                state = report.skipped
            elif report.failed:
                state = f"failed: {report.error}"
            else:
                state = "ok"
            notes.append(f"; cleanup {report.step.name} {state}")
        return "".join(notes)


def _no_answer(report: _StepReport, exc: Exception, *, limit_text: str, max_redirects: int) -> None:
    """Classify a step that ended in an exception, as `checks.http` does."""
    if isinstance(exc, aiohttp.TooManyRedirects) and exc.history:
        last = exc.history[-1]
        report.url, report.status, report.reason = str(last.url), last.status, last.reason
        report.headers = _header_evidence(last.headers)
        report.outcome = Outcome.TOO_LARGE
        report.error = f"more than {max_redirects} redirects; gave up at {redact_url(report.url)}"
    elif report.status is not None and report.status >= 500:
        report.outcome = Outcome.HTTP_5XX
        report.error = (
            f"{_status_text(report.status, report.reason)}; then the body failed: "
            f"{_why(exc, limit_text)}"
        )
    else:
        report.outcome = classify_exception(exc)
        report.error = _why(exc, limit_text)
        if report.outcome is Outcome.CONNECTION_ERROR:
            report.cause = failure_cause(exc)
        if report.outcome is Outcome.TIMEOUT and report.status is not None:
            report.error += (
                f" (status {report.status} arrived, body stalled after {len(report.body)} bytes)"
            )
        elif report.outcome is Outcome.TIMEOUT:
            report.error += " (no response headers arrived)"


def _why(exc: Exception, limit_text: str) -> str:
    if isinstance(exc, TimeoutError):
        return f"no complete answer within {limit_text}"
    return one_line(exc)


def _content_mismatch(request: _Request, answer: Answer) -> str | None:
    """Every required text missing, forbidden text present and JSON value that differs."""
    text = answer.text
    problems = []
    missing = [needle for needle in request.body_contains if needle not in text]
    if missing:
        problems.append("body lacks " + ", ".join(map(_quote, missing)))
    forbidden = [needle for needle in request.body_not_contains if needle in text]
    if forbidden:
        problems.append("body contains forbidden " + ", ".join(map(_quote, forbidden)))
    for path, expected in request.json_equals.items():
        try:
            actual = find_json(path, answer)[0]
        except NotFound as exc:
            problems.append(str(exc))
            continue
        if not _same(actual, expected):
            problems.append(f"{path} is {_json_text(actual)}, expected {_json_text(expected)}")
    return _bounded("; ".join(problems)) if problems else None


def _same(actual: Any, expected: Any) -> bool:
    # Python holds True == 1; JSON does not.
    if isinstance(actual, bool) or isinstance(expected, bool):
        return type(actual) is type(expected) and actual == expected
    return bool(actual == expected)


def _json_text(value: Any) -> str:
    # default=str: YAML may have made a date of an expected value.
    return _bounded(json.dumps(value, ensure_ascii=False, default=str), limit=80)


def _evidence(
    report: _StepReport, *, error: str | None, timings: dict[str, float], step: str | None
) -> Evidence:
    # Evidence reaches the timeline, the API, logs and mails: no secrets from the URL, and
    # no body of a flow that passed (see checks.scrub; the caller masks what was sent).
    excerpt = ""
    if error is not None:
        excerpt = clean_text(_decode(report.body[:EXCERPT_BYTES], report.charset))
    return Evidence(
        url=redact_url(report.url),
        status=report.status,
        error=None if error is None else clean_line(redact_text(error)),
        body_excerpt=excerpt,
        headers=report.headers,
        timings=timings,
        step=step,
    )


def _step_timings(report: _StepReport) -> dict[str, float]:
    timings = {"total": report.total or 0.0}
    if report.ttfb is not None:
        timings["ttfb"] = report.ttfb
    return timings


def _bounded(text: str, *, limit: int = _MAX_CONTENT_ERROR_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _secs(value: timedelta) -> str:
    return f"{value.total_seconds():g}s"

"""The incident engine: what one probe result does to its check's state and its site's incident.

Pure: no I/O and no clock of its own (the time is the `now` argument). The caller loads the
check's state and the site's open incident, calls `apply_result`, and writes back what the
returned `Transition` says changed, in one transaction.

The rules, for a check with `failures_to_open = N` and `successes_to_resolve = M`:

- A failure is *confirmed* when the check's last N results are all failures. Its confirmed
  severity is the least severe of those N, so one slow answer among 500s keeps it at Severity 2
  until N 500s in a row say otherwise.
- A site has at most one open incident. A check's confirmed failure opens one, or attaches to
  the open one (`CHECK_FAILED`), escalating it when the check is worse (`ESCALATED`). A check
  that is already failing escalates the incident too when its confirmed severity worsens. An
  incident's severity never decreases; the check's own `severity` follows its results.
- A failing check recovers after M successes in a row (`CHECK_RECOVERED`); when no check of the
  site is failing any more the incident resolves (`RESOLVED`). A resolved incident is final: a
  later failure opens a new one.
- The incident is the truth about which checks are failing: a check counts as failing exactly
  when it is in the open incident's `failing_checks`. A state that says otherwise (the incident
  was resolved by hand, the state came from an older run) is corrected on the next result, and
  a success just clears the state. A check still failing when its incident was resolved by hand
  is `held`: its failures count again only after one success, so the next confirmed failure
  needs a pass and N failures after it (no reopening straight after a forced resolve).

The returned `CheckState` equals the input in every field but `last_result_at` when the result
changed nothing else (a healthy check's next success, a failing check's next identical failure);
`last_result_at` is the time of the latest result and so changes with every call.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime

from checks.result import Outcome, ProbeResult
from incidents import wording
from incidents.model import (
    CheckRef,
    CheckState,
    Incident,
    IncidentStatus,
    TimelineEntry,
    TimelineKind,
    Transition,
)
from incidents.severity import Severity
from incidents.wording import describe

__all__ = ["apply_result", "confirmed_severity", "describe", "settled_success"]


def apply_result(
    *,
    now: datetime,
    check: CheckRef,
    result: ProbeResult,
    severity: Severity | None,
    state: CheckState,
    incident: Incident | None,
) -> Transition:
    """Apply one probe result of `check` and return the new state, incident and timeline.

    `severity` is None for an ok result, else what `SeverityPolicy.severity_for` gives for it.
    `state` is the check's state before this result (`CheckState(key=check.key)` for a check
    never seen); `incident` is the site's open incident, or None when it has none.
    """
    _validate(check=check, result=result, severity=severity, state=state, incident=incident)
    step = _Step(now=now, check=check, result=result, incident=incident)
    observed = _observe(step, severity=severity, state=state)
    if result.ok:
        new_state = _on_success(step, observed)
    else:
        new_state = _on_failure(step, observed)
    return Transition(
        state=new_state,
        incident=step.incident,
        incident_changed=step.incident != incident,
        timeline=tuple(step.timeline),
    )


def settled_success(
    *, now: datetime, state: CheckState, result: ProbeResult, incident: Incident | None
) -> CheckState | None:
    """What `apply_result` returns, cheaply, for the commonest result: a success of a check
    whose last result was a success too, on a site with no open incident. Then nothing
    happens but time: the transition has this state, no incident and no timeline. None when
    the result is any other case (call `apply_result`).

    Worth it because it is most of what a monitor does: hundreds of times a second, the full
    engine would validate, build its working set and copy the state three times to find
    that nothing changed.
    """
    if incident is not None or result.outcome is not Outcome.OK:
        return None
    if state.last_outcome is not Outcome.OK:
        return None
    # As _observe and _on_success would leave it: unattached (no incident), so no streaks,
    # and the run of successes goes on since the same moment.
    return CheckState(key=state.key, last_outcome=Outcome.OK, last_result_at=now, since=state.since)


def confirmed_severity(
    recent: tuple[Severity | None, ...], failures_to_open: int
) -> Severity | None:
    """The severity of a confirmed failure, or None when the last results do not confirm one.

    Confirmed means the last `failures_to_open` results are all failures; the severity is the
    least severe among them, so a single worse result cannot raise it on its own.
    """
    window = recent[-failures_to_open:]
    if len(window) < failures_to_open or any(entry is None for entry in window):
        return None
    return Severity(max(entry for entry in window if entry is not None))


@dataclass(slots=True)
class _Step:
    """One call's working set: the incident as it evolves and the entries to append."""

    now: datetime
    check: CheckRef
    result: ProbeResult
    incident: Incident | None
    timeline: list[TimelineEntry] = field(default_factory=list)

    def record(self, kind: TimelineKind, message: str, severity: Severity | None) -> None:
        self.timeline.append(
            TimelineEntry(
                at=self.now,
                kind=kind,
                message=message,
                check=self.check.key,
                outcome=self.result.outcome,
                severity=severity,
                evidence=self.result.evidence.to_dict(),
            )
        )


def _validate(
    *,
    check: CheckRef,
    result: ProbeResult,
    severity: Severity | None,
    state: CheckState,
    incident: Incident | None,
) -> None:
    if check.failures_to_open < 1 or check.successes_to_resolve < 1:
        raise ValueError(
            f"{check.key}: failures_to_open and successes_to_resolve must be at least 1 "
            f"(got {check.failures_to_open} and {check.successes_to_resolve})"
        )
    if state.key != check.key:
        raise ValueError(f"state is for check {state.key!r}, result is for check {check.key!r}")
    if result.ok and severity is not None:
        raise ValueError(f"severity must be None for an ok result of {check.key} (got {severity})")
    if not result.ok and severity is None:
        raise ValueError(
            f"a {result.outcome} result of {check.key} needs a severity: pass "
            "SeverityPolicy.severity_for(result.outcome, check_severity=...)"
        )
    if incident is None:
        return
    if incident.site != check.site:
        raise ValueError(
            f"incident {incident.ref} is for site {incident.site!r}, check {check.key} is on "
            f"{check.site!r}: pass the open incident of the check's own site"
        )
    if not incident.is_open:
        raise ValueError(
            f"incident {incident.ref} is {incident.status}: pass only the site's open incident "
            "(or None); a resolved incident is never reopened"
        )


def _observe(step: _Step, *, severity: Severity | None, state: CheckState) -> CheckState:
    """The state's bookkeeping after one more result, before any confirmation is decided."""
    check, result = step.check, step.result
    # `failing` mirrors the incident; a state that disagrees is stale and corrected here.
    attached = _attached(step)
    was_failure = state.last_outcome.is_failure if state.last_outcome is not None else None
    # Failing, still failing at its last result, and no longer attached: the incident was
    # resolved by hand under it (forced). Its failures wait for one success, or the next one
    # would reopen at once. (One already recovering had its success.)
    held = not result.ok and (
        state.held or (state.failing and not attached and was_failure is True)
    )
    # A success ends any run of failures, and successes only matter while the check is
    # failing: so a healthy check's state stops changing after its first result, and the
    # store writes nothing for it probe after probe.
    return replace(
        state,
        recent=(() if result.ok or held else (*state.recent, severity)[-check.failures_to_open :]),
        successes=(
            min(state.successes + 1, check.successes_to_resolve) if result.ok and attached else 0
        ),
        failing=attached,
        severity=state.severity if attached and state.failing else None,
        last_outcome=result.outcome,
        last_result_at=step.now,
        since=state.since if was_failure == result.outcome.is_failure else step.now,
        held=held,
    )


def _attached(step: _Step) -> bool:
    return step.incident is not None and step.check.key in step.incident.failing_checks


def _on_failure(step: _Step, state: CheckState) -> CheckState:
    confirmed = confirmed_severity(state.recent, step.check.failures_to_open)
    if confirmed is None:
        return state
    if step.incident is None:
        _open(step, confirmed, since=state.since)
    elif state.failing:
        _escalate_if_worse(step, step.incident, confirmed)
    else:
        _attach(step, step.incident, confirmed)
    return replace(state, failing=True, severity=confirmed)


def _open(step: _Step, severity: Severity, *, since: datetime | None) -> None:
    check, result = step.check, step.result
    headline = wording.headline_for(check, result)
    step.incident = Incident(
        id=None,
        client=check.client,
        site=check.site,
        title=wording.title(headline),
        severity=severity,
        status=IncidentStatus.OPEN,
        opened_at=step.now,
        failing_checks=frozenset({check.key}),
        checks=frozenset({check.key}),
        headline=headline,
        failing_since=since,
    )
    step.record(TimelineKind.OPENED, _failed_message(step), severity)


def _attach(step: _Step, incident: Incident, severity: Severity) -> None:
    key = step.check.key
    attached = replace(
        incident,
        failing_checks=incident.failing_checks | {key},
        checks=incident.checks | {key},
    )
    if severity >= incident.severity and _takes_the_title(step, attached):
        # As bad as the incident already is, but about the site as a whole (down, or all its
        # pages slow): the title says so rather than naming the part that failed first.
        attached = _retitled(step, attached)
    step.incident = attached
    step.record(
        TimelineKind.CHECK_FAILED,
        _failed_message(step) + _title_change(incident, attached),
        severity,
    )
    _escalate_if_worse(step, attached, severity)


def _escalate_if_worse(step: _Step, incident: Incident, severity: Severity) -> None:
    if severity >= incident.severity:  # lower number is more severe
        return
    check = step.check
    # The title names the worst cause, which is now this check's.
    escalated = replace(_retitled(step, incident), severity=severity)
    step.incident = escalated
    message = wording.escalated_message(
        check_key=check.key, result=step.result, before=incident.severity, after=severity
    )
    step.record(TimelineKind.ESCALATED, message + _title_change(incident, escalated), severity)


def _takes_the_title(step: _Step, incident: Incident) -> bool:
    """A failure no more severe than the incident takes its title only when it is about the
    whole site and the title is not: the availability scope over a part, and "down" over
    anything else."""
    new = wording.headline_for(step.check, step.result)
    current = incident.headline
    if current is None:
        return new.availability
    if wording.is_down(new):
        return not wording.is_down(current)
    return new.availability and not current.availability


def _retitled(step: _Step, incident: Incident) -> Incident:
    headline = wording.headline_for(step.check, step.result)
    return replace(incident, headline=headline, title=wording.title(headline))


def _title_change(before: Incident, after: Incident) -> str:
    """What a timeline line adds when the incident's title changed: the new title."""
    if before.title == after.title:
        return ""
    return f"; title now: {after.title}"


def _failed_message(step: _Step) -> str:
    return wording.failed_message(
        check_key=step.check.key, result=step.result, failures=step.check.failures_to_open
    )


def _on_success(step: _Step, state: CheckState) -> CheckState:
    incident = step.incident
    if not state.failing or incident is None or state.successes < step.check.successes_to_resolve:
        return state
    key = step.check.key
    message = wording.recovered_message(
        check_key=key, result=step.result, successes=step.check.successes_to_resolve
    )
    step.record(TimelineKind.CHECK_RECOVERED, message, state.severity)
    failing_checks = incident.failing_checks - {key}
    if failing_checks:
        step.incident = replace(incident, failing_checks=failing_checks)
    else:
        step.incident = replace(
            incident,
            failing_checks=failing_checks,
            status=IncidentStatus.RESOLVED,
            resolved_at=step.now,
        )
        step.timeline.append(
            TimelineEntry(
                at=step.now,
                kind=TimelineKind.RESOLVED,
                message=wording.resolved_message(site_label=step.check.site_label),
                severity=incident.severity,
            )
        )
    return replace(state, failing=False, severity=None)

"""Severity levels and the policy that maps a probe outcome to one.

Defaults come from the service-level page: an outage, a 500 or a broken checkout is
Severity 1; slow loads (> 5 s), a failing contact form or an inaccessible admin panel are
Severity 2.
"""

from __future__ import annotations

import enum

from pydantic import BaseModel, ConfigDict, Field

from checks.result import Outcome


class Severity(enum.IntEnum):
    """Lower number, more severe."""

    CRITICAL = 1  # complete outage, business halted: bypasses the queue
    MAJOR = 2  # major feature broken or serious degradation
    MODERATE = 3  # visible issue, core business not blocked
    LOW = 4  # cosmetic, questions: never opened automatically

    @property
    def label(self) -> str:
        return f"Severity {int(self)} ({self.name.title()})"


def _default_outcome_severity() -> dict[Outcome, Severity]:
    return {
        Outcome.HTTP_5XX: Severity.CRITICAL,
        Outcome.TIMEOUT: Severity.CRITICAL,
        Outcome.CONNECTION_ERROR: Severity.CRITICAL,
        Outcome.TLS_ERROR: Severity.CRITICAL,
        Outcome.UNEXPECTED_STATUS: Severity.CRITICAL,
        # Visitors are sent where they cannot go (or somewhere they must not see).
        Outcome.REDIRECT_REFUSED: Severity.CRITICAL,
        # What a browser sees; like a flow's content_mismatch, a checkout journey sets its
        # own `severity: 1` (a broken checkout), a contact form's keeps 2.
        Outcome.SCRIPT_ERROR: Severity.MAJOR,
        Outcome.REQUEST_FAILED: Severity.MAJOR,
        Outcome.ELEMENT_MISSING: Severity.MAJOR,
        Outcome.CONTENT_MISMATCH: Severity.MAJOR,
        Outcome.TOO_LARGE: Severity.MAJOR,
        Outcome.SLOW: Severity.MAJOR,
        Outcome.BROKEN_ASSET: Severity.MODERATE,
        Outcome.CERT_EXPIRING: Severity.MODERATE,
        # The site's own name not resolving is an outage; the monitor gives a dns check of
        # another name (a mail host, a CDN alias) Severity 2 (monitor.config.models).
        Outcome.DNS_ERROR: Severity.CRITICAL,
        Outcome.DNS_MISMATCH: Severity.MAJOR,
        Outcome.DOMAIN_EXPIRING: Severity.MODERATE,
        Outcome.DOMAIN_EXPIRING_SOON: Severity.MAJOR,
        Outcome.DOMAIN_EXPIRED: Severity.CRITICAL,
        # The registry's lookup failed: something for the agency to look at, not an outage.
        Outcome.DOMAIN_UNKNOWN: Severity.LOW,
        # A job behind the site (a backup, an import) stopped: serious, not an outage.
        Outcome.HEARTBEAT_MISSED: Severity.MAJOR,
        Outcome.HEARTBEAT_FAILED: Severity.MAJOR,
    }


class SeverityPolicy(BaseModel):
    """Which severity each failure outcome opens. YAML key: `severity_policy`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    outcomes: dict[Outcome, Severity] = Field(
        default_factory=_default_outcome_severity,
        description="Severity (1-4) per failure outcome; unlisted outcomes use the defaults.",
    )

    def severity_for(self, outcome: Outcome, *, check_severity: Severity | None = None) -> Severity:
        """The severity a failure of `outcome` deserves.

        A check's own `severity` (e.g. 2 for an admin panel) replaces the policy's for every
        failure except `slow`, where the less severe of the two applies: a slow admin page is
        no worse than a down one, and a slow checkout is still a slow load (Severity 2).
        """
        if outcome is Outcome.OK:
            raise ValueError("ok is not a failure")
        base = self.outcomes.get(outcome) or _default_outcome_severity()[outcome]
        if check_severity is None:
            return base
        if outcome is Outcome.SLOW:
            return Severity(max(base, check_severity))
        return check_severity

"""The whole YAML file as pydantic models.

Each room owns the models of its own things: probe specs live in `checks/`, the severity
policy in `incidents/`; this module assembles them into one file format. The JSON Schema in
`config/monitor.schema.json` is generated from these models (`monitor schema`).
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable
from datetime import timedelta
from email.utils import parseaddr
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal
from urllib.parse import urljoin, urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    SecretStr,
    Tag,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from checks.browser_spec import BrowserCheckSpec
from checks.dns import DnsCheckSpec
from checks.domain import DomainCheckSpec
from checks.duration import Duration
from checks.flow import FlowCheckSpec
from checks.heartbeat import HeartbeatCheckSpec
from checks.http import HttpCheckSpec
from checks.page import PageCheckSpec
from checks.rdap import BOOTSTRAP_URL, registrable_domain
from checks.spec import check_each
from checks.tcp import TcpCheckSpec
from incidents.calendar_spec import BusinessHoursSpec
from incidents.escalation import ONCALL, EscalationPolicy
from incidents.i18n import available_languages
from incidents.message_text import zone
from incidents.model import CheckRef
from incidents.recurring_maintenance import RecurringWindowSpec
from incidents.rotation import Rotation
from incidents.severity import Severity, SeverityPolicy
from incidents.sla import DEFAULT_PLANS, PlanSpec, SlaPolicy
from monitor.config.channels import (
    ChannelConfig,
    ChannelName,
    RouteConfig,
    check_channel_names,
    check_routes,
)
from monitor.config.logo import logo_data_url
from monitor.passwords import looks_like_hash

SLUG_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,62}$"

Slug = Annotated[
    str,
    Field(
        pattern=SLUG_PATTERN,
        description="Lower-case letters, digits, '.', '_' and '-'; used in metrics and URLs.",
    ),
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _require_unique_ids(items: Iterable[CheckCommon | SiteConfig | ClientConfig]) -> None:
    # Ids become metric labels and check keys ("client/site/check"): a duplicate would
    # silently merge two checks. The YAML loader reports duplicates with their lines itself
    # and drops this error (type "duplicate_id"); this guards configs built in code.
    seen: set[str] = set()
    for item in items:
        if item.id in seen:
            raise PydanticCustomError("duplicate_id", "duplicate id '{id}'", {"id": item.id})
        seen.add(item.id)


MIN_INTERVAL = timedelta(milliseconds=100)


def _interval_floor(value: timedelta) -> timedelta:
    if value < MIN_INTERVAL:
        raise ValueError("must be at least 100ms")
    return value


Interval = Annotated[Duration, AfterValidator(_interval_floor)]


class Defaults(_Model):
    """Values every check inherits unless it sets its own."""

    interval: Interval = Field(default=timedelta(seconds=60), description="How often to probe.")
    timeout: Duration = timedelta(seconds=10)
    slow_after: Duration = Field(
        default=timedelta(seconds=5), description="Slower than this is `slow` (Severity 2)."
    )
    failures_to_open: int = Field(default=3, ge=1, le=100)
    successes_to_resolve: int = Field(default=2, ge=1, le=100)
    confirm_from_other_location: bool = Field(
        default=False,
        description="Before a failure counts toward an incident, have a monitor process in "
        "another location probe the check too; a failure seen from one location alone is "
        "ignored (see cluster.location).",
    )


INHERITED_FIELDS = tuple(Defaults.model_fields)


class CheckCommon(_Model):
    """Scheduling and incident fields of every check kind."""

    id: Slug
    name: str | None = Field(
        default=None,
        max_length=80,
        description='Display name clients read, e.g. "Checkout" or "Admin panel"; '
        "defaults to the id in words.",
    )
    role: Literal["availability", "part"] | None = Field(
        default=None,
        description="availability: this check failing means the site is down; part: it is "
        'about one part of the site ("Checkout is failing"). When no check of a site has a '
        "role, its http checks of the site's own URL are its availability (or every check, if "
        "it has none).",
    )
    interval: Interval = Defaults.model_fields["interval"].default
    failures_to_open: int = Field(default=3, ge=1, le=100)
    successes_to_resolve: int = Field(default=2, ge=1, le=100)
    confirm_from_other_location: bool = Field(
        default=False,
        description="Have another location confirm a failure before it counts (see defaults).",
    )
    severity: Severity | None = Field(
        default=None,
        description="Severity of this check's failures (1-4), replacing the severity policy's; "
        "e.g. 2 for an admin panel. A slow answer takes the less severe of the two.",
    )

    # Fields this kind keeps at its own default instead of taking `defaults:`'s.
    OWN_DEFAULTS: ClassVar[frozenset[str]] = frozenset()


class HttpCheckConfig(HttpCheckSpec, CheckCommon):
    """`kind: http` (the default kind)."""


class PageCheckConfig(PageCheckSpec, CheckCommon):
    """`kind: page`: the HTML and its same-origin assets, as a browser's first load."""


class FlowCheckConfig(FlowCheckSpec, CheckCommon):
    """`kind: flow`: steps in one session, e.g. a checkout or a contact form."""


class DnsCheckConfig(DnsCheckSpec, CheckCommon):
    """`kind: dns`: one record of a name, e.g. the site's A record or its MX."""


class TcpCheckConfig(TcpCheckSpec, CheckCommon):
    """`kind: tcp`: a port that accepts (and answers), e.g. SMTP, IMAP, Redis."""


class DomainCheckConfig(DomainCheckSpec, CheckCommon):
    """`kind: domain`: the registration expiry of the site's domain, through RDAP."""

    interval: Interval = Field(
        default=timedelta(days=1),
        description="How often to look the domain up; daily unless set here (`defaults:` "
        "does not apply: registries limit their RDAP servers' rate).",
    )

    OWN_DEFAULTS: ClassVar[frozenset[str]] = frozenset({"interval"})


class HeartbeatCheckConfig(HeartbeatCheckSpec, CheckCommon):
    """`kind: heartbeat`: a job pings the monitor's /ping/<token> at least every `period`."""

    # A missed ping is no flaky network: one evaluation that finds it missed is enough.
    failures_to_open: int = Field(default=1, ge=1, le=100)
    successes_to_resolve: int = Field(default=1, ge=1, le=100)
    interval: Interval = Field(
        default=timedelta(seconds=30),
        description="How often the latest pings are judged (not a probe: nothing is sent).",
    )

    # Fields of `defaults:` a heartbeat does not take: it sends nothing (timeout, slow_after),
    # and its own defaults above suit a push check better than those of a probe.
    OWN_DEFAULTS: ClassVar[frozenset[str]] = frozenset(
        {"interval", "timeout", "slow_after", "failures_to_open", "successes_to_resolve"}
    )

    @model_validator(mode="after")
    def _has_a_token(self, info: ValidationInfo) -> HeartbeatCheckConfig:
        # The loader says whether the file sets heartbeat.secret; a config built in code is
        # checked as a whole by MonitorConfig instead.
        context = info.context or {}
        if self.token is None and context.get("heartbeat_secret") is False:
            raise ValueError(MISSING_TOKEN)
        return self


MISSING_TOKEN = (
    "a heartbeat check needs its own token (token: ${BACKUP_PING_TOKEN}) or heartbeat.secret "
    "(secret: ${MONITOR_HEARTBEAT_SECRET}) to derive one"
)


class BrowserCheckConfig(BrowserCheckSpec, CheckCommon):
    """`kind: browser`: a journey in real Chromium, e.g. a JavaScript checkout."""

    # A journey of several pages is no page load: it keeps its own timeout and slow_after
    # unless it sets them.
    OWN_DEFAULTS: ClassVar[frozenset[str]] = frozenset({"timeout", "slow_after"})


CHECK_KINDS = ("http", "page", "flow", "dns", "tcp", "domain", "heartbeat", "browser")


def _check_kind(value: Any) -> str:
    kind = value.get("kind", "http") if isinstance(value, dict) else getattr(value, "kind", "http")
    return kind if kind in CHECK_KINDS else "unknown"


CheckConfig = Annotated[
    Annotated[HttpCheckConfig, Tag("http")]
    | Annotated[PageCheckConfig, Tag("page")]
    | Annotated[FlowCheckConfig, Tag("flow")]
    | Annotated[DnsCheckConfig, Tag("dns")]
    | Annotated[TcpCheckConfig, Tag("tcp")]
    | Annotated[DomainCheckConfig, Tag("domain")]
    | Annotated[HeartbeatCheckConfig, Tag("heartbeat")]
    | Annotated[BrowserCheckConfig, Tag("browser")],
    Discriminator(
        _check_kind,
        custom_error_type="check_kind",
        custom_error_message=f"kind must be one of {', '.join(CHECK_KINDS)}",
    ),
]


class SiteConfig(_Model):
    id: Slug
    name: str | None = Field(default=None, description="Display name; defaults to the host.")
    url: str = Field(description="Base URL the checks' paths are joined to.")
    checks: list[CheckConfig] = Field(min_length=1)
    maintenance: list[RecurringWindowSpec] = Field(
        default_factory=list,
        description="Recurring maintenance windows of this site, in its client's time zone "
        "(besides the client's own): no incident opens, open ones' SLA clocks pause.",
    )

    @field_validator("checks")
    @classmethod
    def _unique_check_ids(cls, value: list[CheckConfig]) -> list[CheckConfig]:
        _require_unique_ids(value)
        return value

    @field_validator("url")
    @classmethod
    def _absolute_http_url(cls, value: str) -> str:
        return _absolute_http_url(value, example="https://shop.example")

    @model_validator(mode="after")
    def _checks_can_take_their_target(self) -> SiteConfig:
        host = urlsplit(self.url).hostname or ""
        for index, check in enumerate(self.checks):
            if isinstance(check, DomainCheckConfig) and check.domain is None:
                if registrable_domain(host) is None:
                    raise ValueError(
                        f"checks[{index}].domain: the site's host {host} has no registered "
                        "domain to derive; write domain: acme.example"
                    )
            if isinstance(check, DnsCheckConfig) and check.name is None and _is_ip(host):
                raise ValueError(
                    f"checks[{index}].name: the site's host {host} is an address, not a name "
                    "to look up; write name: shop.acme.example"
                )
        return self

    @property
    def label(self) -> str:
        return self.name or urlsplit(self.url).hostname or self.id


_EMAIL = re.compile(r"^[^@\s<>,;\"]+@[^@\s<>,;\"]+\.[^@\s<>,;\"]+$")


def _email_address(value: str) -> str:
    if not _EMAIL.match(value):
        raise ValueError("must be an email address such as ops@agency.example")
    return value


EmailAddress = Annotated[
    str,
    AfterValidator(_email_address),
    WithJsonSchema({"type": "string", "format": "email", "examples": ["ops@agency.example"]}),
]


def _blank_is_none(value: SecretStr | None) -> SecretStr | None:
    # `${MONITOR_API_TOKEN:-}` with the variable unset means "no secret", never "the empty
    # secret", which an empty Authorization header or `?key=` would match.
    if value is not None and not value.get_secret_value().strip():
        return None
    return value


OptionalSecret = Annotated[SecretStr | None, AfterValidator(_blank_is_none)]


_ACCENT = re.compile(r"^#[0-9a-fA-F]{6}$")
_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")


class StatusPageConfig(_Model):
    public: bool = Field(
        default=False,
        description="true: /status/<client> needs no login. false: the link must carry "
        "?key=<access_key>.",
    )
    title: str | None = Field(
        default=None, max_length=120, description="Page title; defaults to the client's name."
    )
    logo_url: str | None = Field(
        default=None, description="An https URL of the client's logo, shown in the header."
    )
    accent: str | None = Field(
        default=None,
        description="Accent colour of the header, e.g. #0b5394 (dark enough for white text).",
    )
    domain: str | None = Field(
        default=None,
        description="A host name of the client's (a CNAME to this monitor), e.g. "
        "status.acme.example: requests for it serve this page at /.",
    )
    access_key: OptionalSecret = Field(
        default=None,
        description="Required for a private page: write ${ACME_STATUS_KEY}; the link is "
        "/status/<client>?key=<it>.",
    )
    components: Literal["sites", "checks"] = Field(
        default="sites",
        description="sites: one component per site. checks: each site also lists its checks "
        "as components with their own state, by display name (the check's name, else its id "
        "in words; never its URL).",
    )

    @field_validator("logo_url")
    @classmethod
    def _https_logo(cls, value: str | None) -> str | None:
        if value is not None and urlsplit(value).scheme != "https":
            raise ValueError(
                f"must be an https URL such as https://acme.example/logo.png (got {value!r})"
            )
        return value

    @field_validator("accent")
    @classmethod
    def _hex_colour(cls, value: str | None) -> str | None:
        if value is not None and not _ACCENT.match(value):
            raise ValueError(f"must be a colour such as #0b5394 (got {value!r})")
        return value

    @field_validator("domain")
    @classmethod
    def _host_name(cls, value: str | None) -> str | None:
        if value is not None and not _DOMAIN.match(value.lower()):
            raise ValueError(f"must be a host name such as status.acme.example (got {value!r})")
        return value.lower() if value is not None else None

    @model_validator(mode="after")
    def _private_needs_key(self) -> StatusPageConfig:
        if not self.public and self.access_key is None:
            raise ValueError(
                "a private status page (public: false) needs access_key, e.g. "
                "access_key: ${ACME_STATUS_KEY}; or set public: true"
            )
        return self


class ReportsConfig(_Model):
    monthly: bool = Field(
        default=False,
        description="Mail the monthly service report (HTML with a PDF attached) to the "
        "client's contacts on the first working day of each month, for the month before.",
    )


class ClientConfig(_Model):
    id: Slug
    name: str | None = None
    plan: str = Field(
        default="standard",
        description="A key of `plans`: decides which severities' SLA clocks run 24x7.",
    )
    business_hours: BusinessHoursSpec = Field(
        default_factory=BusinessHoursSpec,
        description="The client's time zone, weekly hours and holidays: SLA clocks count in "
        "them, and emails show times in the time zone.",
    )
    contacts: list[EmailAddress] = Field(
        default_factory=list, description="Who receives the incident emails of this client."
    )
    language: str = Field(
        default="en",
        pattern=r"^[a-z]{2,3}(_[A-Z]{2})?$",
        description="Language of this client's emails: en, de, or any language with a "
        "catalog in notifications.locale_dir.",
    )
    reports: ReportsConfig | None = Field(
        default=None, description="This client's reports; left out: the top-level `reports`."
    )
    sites: list[SiteConfig] = Field(min_length=1)
    status_page: StatusPageConfig | None = Field(
        default=None,
        description="A status page at /status/<client id> (none without this section).",
    )
    maintenance: list[RecurringWindowSpec] = Field(
        default_factory=list,
        description="Recurring maintenance windows of every site of this client, in its time "
        "zone, e.g. `- weekly: sun 02:00-04:00` or `- {cron: '0 3 1 * *', duration: 2h}`.",
    )

    @field_validator("plan")
    @classmethod
    def _known_plan(cls, value: str, info: ValidationInfo) -> str:
        # The loader passes the plan names of the file being validated as context.
        plans = (info.context or {}).get("plans") or DEFAULT_PLANS
        if value not in plans:
            raise ValueError(f"unknown plan (plans: {', '.join(sorted(plans))})")
        return value

    @property
    def label(self) -> str:
        return self.name or self.id

    @field_validator("sites")
    @classmethod
    def _unique_site_ids(cls, value: list[SiteConfig]) -> list[SiteConfig]:
        _require_unique_ids(value)
        return value


class SmtpConfig(_Model):
    host: str
    port: int = Field(default=587, ge=1, le=65535)
    security: Literal["starttls", "tls", "none"] = Field(
        default="starttls", description="starttls (port 587), tls (465) or none (tests only)."
    )
    username: str | None = None
    password: SecretStr | None = Field(
        default=None, description="Write ${SMTP_PASSWORD}: secrets never sit in this file."
    )
    timeout: Duration = timedelta(seconds=30)

    @model_validator(mode="after")
    def _no_plain_text_login(self) -> SmtpConfig:
        # With security none the password would cross the network readable by anyone on
        # the path; a relay on this machine is the one place where that is harmless.
        if self.security == "none" and (self.username or self.password):
            if not is_loopback_host(self.host):
                raise ValueError(
                    "username/password need security: starttls or tls: with security: none "
                    f"the password would travel in plain text to {self.host} (allowed only "
                    "to a relay on localhost)"
                )
        return self


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def is_loopback_host(host: str) -> bool:
    """localhost, 127.0.0.0/8 or ::1 (by name or literal); no name resolution."""
    name = host.strip().strip("[]").lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class NotificationsConfig(_Model):
    sender: str = Field(
        default="Support <support@agency.example>",
        description="The From of every email; its domain also names Message-IDs.",
    )
    smtp: SmtpConfig | None = Field(
        default=None,
        description="Without it, emails are written as .eml files to outbox_dir instead.",
    )
    outbox_dir: str = Field(default="outbox", description="Where .eml files go without SMTP.")
    locale_dir: str | None = Field(
        default=None,
        description="A folder of extra client-mail languages: <folder>/<language>/LC_MESSAGES/"
        "messages.po (gettext catalogs; English and German are shipped).",
    )
    templates_dir: str | None = Field(
        default=None,
        description="A folder of mail templates replacing the shipped ones (client.txt.j2, "
        "client.html.j2, oncall.*.j2), looked up first in <folder>/<client id>/<language>/, "
        "<folder>/<client id>/, <folder>/<language>/, then <folder>/.",
    )

    @field_validator("locale_dir", "templates_dir")
    @classmethod
    def _a_folder(cls, value: str | None) -> str | None:
        if value is not None and not Path(value).is_dir():
            raise ValueError(f"must be an existing folder (got {value!r})")
        return value

    email_client_on_open: list[Severity] = Field(
        default_factory=lambda: [Severity.CRITICAL, Severity.MAJOR],
        description="Severities whose opening is emailed to the client at once.",
    )
    dashboard_url: str | None = Field(
        default=None, description="Base URL linked from on-call mails, e.g. a Grafana page."
    )
    retry_initial: Duration = Field(
        default=timedelta(seconds=5),
        description="First wait after a failed delivery; it doubles with each failure.",
    )
    retry_max: Duration = Field(default=timedelta(minutes=15), description="Longest wait.")
    poll_interval: Interval = Field(
        default=timedelta(seconds=5),
        description="How often the outbox is looked at (new notifications go out at once).",
    )
    mail_on_removed_check: bool = Field(
        default=False,
        description="Mail the client the resolution of an incident that a config reload "
        "resolved because every check it had was removed (off: only the timeline says so).",
    )

    @field_validator("sender")
    @classmethod
    def _sender_has_address(cls, value: str) -> str:
        _, address = parseaddr(value)
        if "@" not in address or any(c in value for c in "\r\n"):
            raise ValueError(
                f"must be an address such as 'Support <support@agency.example>' (got {value!r})"
            )
        return value

    @property
    def sender_domain(self) -> str:
        return parseaddr(self.sender)[1].rsplit("@", 1)[-1]


class AgencyConfig(_Model):
    """Who sends the client mails: the agency's name, look and time zone."""

    name: str | None = Field(
        default=None, max_length=80, description='Signs client mails, e.g. "Northwind Web".'
    )
    logo_url: str | None = Field(
        default=None,
        max_length=500,
        description="An https:// URL of the logo shown at the top of HTML client mails.",
    )
    report_logo: str | None = Field(
        default=None,
        max_length=200_000,
        description="The logo at the top of the monthly report's PDF: a local image file "
        "(.png, .jpg, .gif, .svg), e.g. /etc/monitor/logo.png, or a data:image/...;base64, "
        "URL. Read when the report is printed; nothing is fetched from the network.",
    )
    accent_color: str = Field(
        default="#1f4e8c",
        pattern=r"^#[0-9a-fA-F]{6}$",
        description="Colour of headings and rules in HTML client mails, e.g. #1f4e8c.",
    )
    signature: str | None = Field(
        default=None,
        max_length=1000,
        description="Closing lines of every client mail (several lines allowed).",
    )
    reply_to: EmailAddress | None = Field(
        default=None, description="Where clients' replies go (the Reply-To of client mails)."
    )
    timezone: str = Field(
        default="UTC",
        description="The agency's IANA time zone: on-call mails show times in it beside the "
        "client's.",
    )
    business_hours: BusinessHoursSpec | None = Field(
        default=None,
        description="The agency's own business hours, for routes with hours: business or "
        "after_hours; left out: mon-fri 09:00-17:00 in the agency's time zone.",
    )

    @field_validator("logo_url")
    @classmethod
    def _https_url(cls, value: str | None) -> str | None:
        if value is not None:
            parts = urlsplit(value)
            if parts.scheme != "https" or not parts.hostname or any(c in value for c in '"<> '):
                raise ValueError(
                    f"must be an https:// URL such as https://agency.example/logo.png "
                    f"(got {value!r})"
                )
        return value

    @field_validator("report_logo")
    @classmethod
    def _local_image(cls, value: str | None) -> str | None:
        if value is not None:
            logo_data_url(value)  # raises ValueError saying what is wrong
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        zone(value)
        return value


class WebhookConfig(_Model):
    url: str
    headers: dict[str, SecretStr] = Field(
        default_factory=dict, description="e.g. Authorization: Bearer ${PAGER_TOKEN}"
    )
    timeout: Duration = timedelta(seconds=10)


PERSON_PATTERN = r"^[A-Za-z][A-Za-z0-9_.-]{0,62}$"


class PersonConfig(_Model):
    """Someone escalation levels and rotations can name."""

    name: str = Field(
        pattern=PERSON_PATTERN,
        description="How levels, rotations and the metrics name them: letters, digits, "
        "'.', '_' and '-', e.g. alice or bob.smith.",
    )
    email: EmailAddress = Field(description="Where their pages go.")
    phone: str | None = Field(
        default=None,
        pattern=r"^\+?[0-9][0-9 ()-]{2,31}$",
        description="e.g. +49 30 1234567 (kept for channels that page by phone).",
    )
    channels: list[Slug] = Field(
        default_factory=list,
        description="Names of configured channels that also reach this person.",
    )


class OncallConfig(_Model):
    emails: list[EmailAddress] = Field(
        default_factory=list, description="On-call's addresses: pages, reminders, overdue."
    )
    webhook: WebhookConfig | None = Field(
        default=None, description="A JSON POST on every page (Severity 1), e.g. a pager."
    )
    rotation: Rotation | None = Field(
        default=None,
        description="Who is on call when (agency.timezone): an escalation level naming "
        "`oncall` pages that person. Without it, `oncall` pages the emails and webhook above.",
    )


class ApiConfig(_Model):
    token: OptionalSecret = Field(
        default=None,
        description="Bearer token for every /api call that changes something: write "
        "${MONITOR_API_TOKEN}. Without it those calls are refused (401).",
    )
    protect_reads: bool = Field(
        default=True,
        description="Require the token for read-only /api calls too (incidents hold client "
        "names, URLs and probe evidence). false opens the GET calls to anyone who can reach "
        "server.host.",
    )


class DatabaseConfig(_Model):
    url: str = Field(
        default="sqlite+aiosqlite:///monitor.db",
        description="SQLAlchemy async URL: sqlite+aiosqlite:///file.db or "
        "postgresql+asyncpg://user@host/db.",
    )


class ServerConfig(_Model):
    host: str = Field(
        default="127.0.0.1",
        description="Address of /metrics, /healthz and /api. Keep it on loopback and expose "
        "/metrics alone with metrics_listen.",
    )
    port: int = Field(default=9464, ge=0, le=65535, description="0 picks a free port.")
    metrics_listen: str | None = Field(
        default=None,
        description="A second listener serving only /metrics and /healthz, e.g. "
        "`0.0.0.0:9465` or `[::]:9465`, so a Prometheus on another host can scrape while /api "
        "stays on host.",
    )
    allowed_hosts: list[Annotated[str, Field(min_length=1, max_length=253)]] = Field(
        default_factory=list,
        description="Host names (without port) /api accepts besides localhost, 127.0.0.1, "
        "[::1] and server.host, e.g. monitor.agency.internal behind a proxy; any other Host "
        "header gets 421, which stops DNS rebinding.",
    )
    header_timeout: Duration = Field(
        default=timedelta(seconds=10),
        description="A request whose header is not complete this long after its first byte "
        "is dropped with its connection (slowloris).",
    )
    idle_timeout: Duration = Field(
        default=timedelta(seconds=60),
        description="A connection that sends no request this long after it opened or after "
        "its last answer is closed.",
    )
    public_url: str | None = Field(
        default=None,
        description="The URL this server is reached at from outside (through a proxy), e.g. "
        "https://monitor.agency.example: `monitor heartbeat-urls` prints the ping URLs "
        "under it.",
    )
    watch_config: bool = Field(
        default=False,
        description="Reload the config file on its own when it changes (its modification "
        "time and content are looked at every watch_interval), as SIGHUP or POST /api/reload "
        "do.",
    )
    watch_interval: Interval = Field(
        default=timedelta(seconds=5), description="How often watch_config looks at the file."
    )
    max_connections: int = Field(
        default=64,
        ge=1,
        le=10_000,
        description="Connections to this server at most; also at most a quarter of the "
        "process's open-file limit, the rest is kept for probes and the database. When full, "
        "the connection idle longest is closed to admit a new one.",
    )

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        return _absolute_http_url(value, example="https://monitor.agency.example").rstrip("/")

    @field_validator("metrics_listen")
    @classmethod
    def _host_and_port(cls, value: str | None) -> str | None:
        if value is not None:
            split_listen(value)
        return value

    @field_validator("allowed_hosts")
    @classmethod
    def _lower_case_hosts(cls, value: list[str]) -> list[str]:
        # As a Host header writes them: lower case, an IPv6 address in brackets.
        hosts = [host.strip().lower().strip("[]") for host in value]
        return [f"[{host}]" if ":" in host else host for host in hosts]


def split_listen(value: str) -> tuple[str, int]:
    """`host:port` or `[v6]:port` -> (host, port); ValueError with an example otherwise."""
    host, sep, port = value.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"must be host:port such as 0.0.0.0:9465 or [::]:9465 (got {value!r})")
    return host, int(port)


class SchedulerConfig(_Model):
    max_concurrency: int = Field(default=512, ge=1, description="Probes in flight at most.")
    per_host: int = Field(default=4, ge=1, description="Probes in flight per target host.")
    history_per_check: int = Field(
        default=50, ge=1, le=10_000, description="Recent results kept per check in the database."
    )
    sla_tick: Interval = Field(
        default=timedelta(seconds=15),
        description="How often SLA clocks are checked for reminders, breaches and deferred "
        "on-call notices.",
    )
    uptime_refresh: Interval = Field(
        default=timedelta(seconds=60),
        description="How often the uptime gauge (monitor_site_uptime_ratio) is read from the "
        "daily rollups; scrapes in between get the figures of the last read.",
    )


class BrowserConfig(_Model):
    """The Chromium that `browser` checks run in: one per monitor process (see
    monitor.browser_pool), with pages of its own apart from the http checks."""

    executable: str | None = Field(
        default=None,
        description="Chromium to use, a path or a name on PATH (default: chromium, "
        "chromium-browser or google-chrome on PATH; Debian: apt-get install chromium).",
    )
    max_pages: int = Field(
        default=2, ge=1, le=32, description="Journeys running at once; the others wait."
    )
    max_page_memory_mb: int = Field(
        default=256,
        ge=16,
        description="A page whose JavaScript heap grows past this is closed, and its journey "
        "fails as `too_large`.",
    )
    ping_timeout: Duration = Field(
        default=timedelta(seconds=5),
        description="A browser that does not answer a health ping within this is restarted.",
    )
    screenshots_dir: str = Field(
        default="screenshots",
        description="Folder of the PNGs taken at failing steps (on-call mails attach them).",
    )
    screenshots_max_files: int = Field(default=500, ge=1, description="PNGs kept at most.")
    screenshots_max_age: Duration = Field(
        default=timedelta(days=30), description="PNGs older than this are deleted."
    )


class ClusterConfig(_Model):
    """How the `monitor run` processes that share one database divide the sites between them.

    Each site's checks are probed by the one process holding the site's lease; a process that
    stops renewing (it died, or lost the database) loses its sites to the others within
    `lease`. With one process (and SQLite) it simply holds every site.
    """

    location: Slug = Field(
        default="local",
        description="Where this process probes from, e.g. `${MONITOR_LOCATION:-eu-west}`; "
        "`monitor run --location` overrides it. Checks with confirm_from_other_location "
        "are re-probed from a different location before a failure counts.",
    )
    worker_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="This process's name among those sharing the database (default: host "
        "name/location). A process that restarts under the same name takes its sites back at "
        "once; two processes running at the same time need different names "
        "(`monitor run --worker-id`).",
    )
    source_address: str | None = Field(
        default=None,
        description="Local IP address the probes of `http` checks connect from (a machine "
        "with one address per network path); `monitor run --source-address` overrides it.",
    )
    lease: Duration = Field(
        default=timedelta(seconds=15),
        ge=timedelta(seconds=1),
        le=timedelta(minutes=10),
        description="Within this, the sites of a process that died are taken over by the "
        "others (leases are renewed every quarter of it).",
    )

    @field_validator("source_address")
    @classmethod
    def _an_ip_address(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                ipaddress.ip_address(value)
            except ValueError:
                raise ValueError(
                    f"must be an IP address of this machine, e.g. 10.0.0.5 (got {value!r})"
                ) from None
        return value

    @property
    def worker(self) -> str:
        """This process's worker id: `worker_id`, else "<host name>/<location>"."""
        return self.worker_id or f"{socket.gethostname()}/{self.location}"


class CanaryConfig(HttpCheckSpec):
    """A URL outside every client's hosting, probed like an `http` check: while every canary
    fails, the monitor itself has lost its connectivity (see incidents.connectivity)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Slug = Field(description="Names the canary in metrics, /healthz and on-call mails.")
    url: str = Field(
        description="An absolute http(s) URL outside every client's hosting, e.g. "
        "https://www.example.org/"
    )
    interval: Interval = Field(default=timedelta(seconds=30), description="How often to probe.")

    @field_validator("url")
    @classmethod
    def _absolute_http_url(cls, value: str) -> str:
        return _absolute_http_url(value, example="https://www.example.org/")


class MassFailureConfig(_Model):
    """Without canaries: when at least `sites` sites, and half of all sites, start failing
    within one check interval, client mails about them wait `hold` and on-call is asked."""

    enabled: bool = Field(default=True, description="Ignored when canaries are configured.")
    sites: int = Field(default=5, ge=1, description="At least this many sites at once.")
    hold: Duration = Field(
        default=timedelta(minutes=5),
        ge=timedelta(0),
        description="How long client mails wait; a real outage is still mailed afterwards.",
    )


class RdapConfig(_Model):
    """Where `domain` checks look registrations up (see checks/rdap.py)."""

    bootstrap_url: str = Field(
        default=BOOTSTRAP_URL,
        description="IANA's RDAP bootstrap file, which `monitor rdap-bootstrap --update` "
        "downloads into bootstrap_file.",
    )
    bootstrap_file: str = Field(
        default="rdap-dns.json",
        description="The refreshed bootstrap file; while it does not exist, the one shipped "
        "with the monitor is used. Probes never download it themselves.",
    )
    servers: dict[str, str] = Field(
        default_factory=dict,
        description="RDAP base URL per top-level domain, over the bootstrap's, e.g. "
        "{de: 'https://rdap.denic.de/'}.",
    )

    @field_validator("bootstrap_url")
    @classmethod
    def _bootstrap_http_url(cls, value: str) -> str:
        return _absolute_http_url(value, example=BOOTSTRAP_URL)

    @field_validator("servers")
    @classmethod
    def _server_urls(cls, value: dict[str, str]) -> dict[str, str]:
        check_each(
            ((f"{tld}:", url) for tld, url in value.items()),
            lambda url: _absolute_http_url(url, example="https://rdap.example-registry.net/"),
        )
        return value


class HeartbeatConfig(_Model):
    secret: OptionalSecret = Field(
        default=None,
        description="Write ${MONITOR_HEARTBEAT_SECRET}: the ping token of every heartbeat "
        "check without its own `token` is an HMAC of its key under this secret.",
    )


class OperatorAccount(_Model):
    """Someone who signs in to the console (/ui); their actions carry `name`."""

    name: Annotated[str, Field(min_length=1, max_length=80, pattern=r"^[^\x00-\x1f\x7f]+$")] = (
        Field(description="Shown on the timeline of every action, e.g. Alice Example.")
    )
    email: EmailAddress
    password_hash: str = Field(
        description="An argon2 or bcrypt hash, as `monitor hash-password` prints it; never "
        "the password itself.",
        examples=["$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo"],
    )
    timezone: str | None = Field(
        default=None,
        description="The zone the console shows this operator's times in, e.g. Europe/Berlin; "
        "defaults to agency.timezone.",
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if value is not None:
            zone(value)
        return value

    @field_validator("password_hash")
    @classmethod
    def _a_hash(cls, value: str) -> str:
        if not looks_like_hash(value.strip()):
            raise ValueError(
                "must be an argon2 or bcrypt hash such as $argon2id$v=19$m=65536,t=3,p=4$...: "
                "run `monitor hash-password` and paste what it prints (got something else, "
                "not shown in case it is a password)"
            )
        return value.strip()


class ConsoleConfig(_Model):
    session_lifetime: Duration = Field(
        default=timedelta(hours=12),
        description="A sign-in lasts this long; then the console asks again.",
    )
    secret: OptionalSecret = Field(
        default=None,
        description="Signs the session cookies: write ${MONITOR_CONSOLE_SECRET} (32+ random "
        "characters). Without it each start picks a random key and sign-ins end at restart.",
    )
    public_url: str | None = Field(
        default=None,
        description="How operators reach the console, e.g. https://monitor.agency.example "
        "(links; an https URL also marks the cookie Secure).",
    )
    sign_in_attempts: int = Field(
        default=5,
        ge=1,
        le=1000,
        description="Failed sign-ins allowed per address and per operator name in "
        "sign_in_window before further attempts are refused.",
    )
    sign_in_window: Duration = Field(
        default=timedelta(minutes=15), description="The window failed sign-ins are counted in."
    )

    @field_validator("public_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        return _absolute_http_url(value, example="https://monitor.agency.example").rstrip("/")

    @field_validator("secret")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 32:
            raise ValueError("must be at least 32 characters (e.g. `openssl rand -hex 32`)")
        return value


class MonitorConfig(_Model):
    database: DatabaseConfig = DatabaseConfig()
    server: ServerConfig = ServerConfig()
    scheduler: SchedulerConfig = SchedulerConfig()
    browser: BrowserConfig = BrowserConfig()
    defaults: Defaults = Defaults()
    severity_policy: SeverityPolicy = SeverityPolicy()
    sla_policy: SlaPolicy = SlaPolicy()
    plans: dict[str, PlanSpec] = Field(
        default_factory=lambda: dict(DEFAULT_PLANS),
        description="standard, retainer and enterprise exist by default; entries here are "
        "added to them or replace them.",
    )
    agency: AgencyConfig = AgencyConfig()
    notifications: NotificationsConfig = NotificationsConfig()
    people: list[PersonConfig] = Field(
        default_factory=list,
        description="People escalation levels and the on-call rotation name.",
    )
    oncall: OncallConfig = OncallConfig()
    escalation: dict[Severity, EscalationPolicy] = Field(
        default_factory=dict,
        json_schema_extra={"propertyNames": {"enum": [str(int(s)) for s in Severity]}},
        description="Per severity (1-4): levels paged while nobody acknowledges, and how "
        "often to repeat the last. A severity left out pages as before: Severity 1 pages "
        "on-call at once, others tell on-call in business hours.",
    )
    api: ApiConfig = ApiConfig()
    cluster: ClusterConfig = ClusterConfig()
    canaries: list[CanaryConfig] = Field(
        default_factory=list,
        description="URLs outside every client's hosting: while all fail, failures elsewhere "
        "open no incidents and on-call is paged once.",
    )
    mass_failure: MassFailureConfig = MassFailureConfig()
    rdap: RdapConfig = Field(
        default_factory=RdapConfig,
        description="RDAP servers for `domain` checks: the bootstrap and per-TLD overrides.",
    )
    reports: ReportsConfig = Field(
        default_factory=ReportsConfig,
        description="Client reports, for every client that does not set its own `reports`.",
    )
    heartbeat: HeartbeatConfig = Field(
        default_factory=HeartbeatConfig,
        description="Heartbeat (push) checks: the secret their ping tokens are derived from.",
    )
    clients: list[ClientConfig] = Field(min_length=1)
    # After clients, so that routes are checked against them.
    channels: dict[ChannelName, ChannelConfig] = Field(
        default_factory=dict,
        description="Named chat and pager destinations as Apprise URLs (from ${ENV}), e.g. "
        'team-chat: {url: "${SLACK_URL}"}.',
    )
    routes: list[RouteConfig] | None = Field(
        default=None,
        description="Who hears what; left out: on-call email hears everything it did, the "
        "webhook and every channel hear Severity 1 pages.",
    )

    @field_validator("channels")
    @classmethod
    def _free_channel_names(
        cls, value: dict[str, ChannelConfig], info: ValidationInfo
    ) -> dict[str, ChannelConfig]:
        check_channel_names(value)
        # People are read before channels: their `channels` are checked here, where both are.
        people = info.data.get("people")
        for index, person in enumerate(people if isinstance(people, list) else ()):
            for name in person.channels:
                if name not in value:
                    listed = ", ".join(sorted(value)) or "none"
                    raise ValueError(
                        f"people[{index}].channels: {name!r} is not a channel (channels: "
                        f"{listed}); add it under `channels:` or remove it"
                    )
        return value

    @field_validator("routes")
    @classmethod
    def _routes_name_what_exists(
        cls, value: list[RouteConfig] | None, info: ValidationInfo
    ) -> list[RouteConfig] | None:
        if value is not None:
            oncall = info.data.get("oncall")
            clients = info.data.get("clients")
            check_routes(
                value,
                channels=info.data.get("channels"),
                webhook=isinstance(oncall, OncallConfig) and oncall.webhook is not None,
                clients=None if clients is None else {client.id for client in clients},
            )
        return value

    operators: list[OperatorAccount] = Field(
        default_factory=list,
        description="Who may sign in to the operator console (/ui); without any, /ui is off.",
    )
    console: ConsoleConfig = ConsoleConfig()

    @field_validator("operators")
    @classmethod
    def _unique_operator_names(cls, value: list[OperatorAccount]) -> list[OperatorAccount]:
        seen: set[str] = set()
        for index, operator in enumerate(value):
            folded = operator.name.casefold()
            if folded in seen:
                raise ValueError(
                    f"operators[{index}].name: {operator.name!r} is listed twice; "
                    "each operator needs a name of their own"
                )
            seen.add(folded)
        return value

    @field_validator("plans")
    @classmethod
    def _plans_over_defaults(cls, value: dict[str, PlanSpec]) -> dict[str, PlanSpec]:
        return {**DEFAULT_PLANS, **value}

    @field_validator("clients")
    @classmethod
    def _unique_client_ids(cls, value: list[ClientConfig]) -> list[ClientConfig]:
        _require_unique_ids(value)
        return value

    @field_validator("clients")
    @classmethod
    def _known_languages(
        cls, value: list[ClientConfig], info: ValidationInfo
    ) -> list[ClientConfig]:
        notifications = info.data.get("notifications")
        folder = (
            notifications.locale_dir if isinstance(notifications, NotificationsConfig) else None
        )
        known = available_languages(Path(folder) if folder else None)
        for index, client in enumerate(value):
            if client.language not in known:
                raise ValueError(
                    f"clients[{index}].language: no catalog for {client.language!r} "
                    f"(languages: {', '.join(sorted(known))}); add "
                    f"{client.language}/LC_MESSAGES/messages.po to notifications.locale_dir"
                )
        return value

    @field_validator("people")
    @classmethod
    def _unique_people(cls, value: list[PersonConfig]) -> list[PersonConfig]:
        seen: set[str] = set()
        for index, person in enumerate(value):
            if person.name in seen:
                raise ValueError(f"people[{index}].name: {person.name!r} is listed twice")
            if person.name == ONCALL:
                raise ValueError(
                    f"people[{index}].name: {ONCALL!r} means whoever is on call: pick another"
                )
            seen.add(person.name)
        return value

    @field_validator("oncall")
    @classmethod
    def _rotation_names_people(cls, value: OncallConfig, info: ValidationInfo) -> OncallConfig:
        rotation = value.rotation
        if rotation is None:
            return value
        named = [(f"people[{i}]", name) for i, name in enumerate(rotation.people)]
        named += [(f"overrides[{i}].person", o.person) for i, o in enumerate(rotation.overrides)]
        for where, name in named:
            _require_person(info, f"oncall.rotation.{where}", name)
        return value

    @field_validator("escalation")
    @classmethod
    def _levels_name_people(
        cls, value: dict[Severity, EscalationPolicy], info: ValidationInfo
    ) -> dict[Severity, EscalationPolicy]:
        for severity, policy in value.items():
            for index, level in enumerate(policy.levels):
                for name in level.notify:
                    if name != ONCALL:
                        where = f"escalation.{int(severity)}.levels[{index}].notify"
                        _require_person(info, where, name)
        return value

    @field_validator("clients")
    @classmethod
    def _heartbeat_tokens(
        cls, value: list[ClientConfig], info: ValidationInfo
    ) -> list[ClientConfig]:
        heartbeat = info.data.get("heartbeat")
        secret = heartbeat.secret if isinstance(heartbeat, HeartbeatConfig) else None
        # Loaded from a file, each check said so on its own line (HeartbeatCheckConfig).
        checked_in_file = (info.context or {}).get("heartbeat_secret")
        problems = []
        seen: dict[str, str] = {}
        for c, client in enumerate(value):
            for i, site in enumerate(client.sites):
                for k, check in enumerate(site.checks):
                    if not isinstance(check, HeartbeatCheckConfig):
                        continue
                    where = f"clients[{c}].sites[{i}].checks[{k}].token"
                    if check.token is None:
                        if secret is None and checked_in_file is None:
                            problems.append(f"{where}: {MISSING_TOKEN}")
                        continue
                    token = check.token.get_secret_value()
                    if token in seen:
                        problems.append(f"{where}: the same token as {seen[token]}")
                    seen[token] = f"{client.id}/{site.id}/{check.id}"
        if problems:
            raise ValueError("; ".join(problems))
        return value

    @field_validator("canaries")
    @classmethod
    def _unique_canary_names(cls, value: list[CanaryConfig]) -> list[CanaryConfig]:
        seen: set[str] = set()
        for canary in value:
            if canary.name in seen:
                raise PydanticCustomError(
                    "duplicate_canary", "duplicate canary name '{id}'", {"id": canary.name}
                )
            seen.add(canary.name)
        return value


def _require_person(info: ValidationInfo, where: str, name: str) -> None:
    people = info.data.get("people")
    known = {p.name for p in people} if isinstance(people, list) else set()
    if name not in known:
        listed = ", ".join(sorted(known)) or "none yet"
        raise ValueError(
            f"{where}: {name!r} is not in `people` (people: {listed}); add "
            f"`- {{name: {name}, email: {name}@agency.example}}` to `people`"
        )


class ConfiguredCheck(_Model):
    """One check ready to schedule: defaults applied, URL absolute."""

    key: str  # "client/site/check"
    client: str
    site: str  # "client/site"
    check_id: str
    spec: CheckConfig
    ref: CheckRef

    @property
    def host(self) -> str:
        """What the scheduler's per-host limit counts by: the host (and port) probed."""
        spec = self.spec
        if isinstance(spec, DnsCheckConfig):
            return spec.name or ""
        if isinstance(spec, TcpCheckConfig):
            return f"{spec.host}:{spec.port}"
        if isinstance(spec, DomainCheckConfig):
            return spec.domain or ""
        if isinstance(spec, HeartbeatCheckConfig):
            return self.key  # it sends nothing: its own
        return urlsplit(spec.url).netloc

    @property
    def interval_seconds(self) -> float:
        return self.spec.interval.total_seconds()


def has_browser_checks(config: MonitorConfig) -> bool:
    """Whether any check is `kind: browser` (only then is Playwright imported or Chromium
    looked for)."""
    return any(
        check.kind == "browser"
        for client in config.clients
        for site in client.sites
        for check in site.checks
    )


def configured_checks(config: MonitorConfig) -> list[ConfiguredCheck]:
    """Flatten clients/sites/checks, applying `defaults:` to fields a check did not set."""
    out: list[ConfiguredCheck] = []
    inherited = config.defaults.model_dump()
    for client in config.clients:
        for site in client.sites:
            availability = availability_checks(site)
            for check in site.checks:
                update = {
                    name: value
                    for name, value in inherited.items()
                    if name not in check.model_fields_set and name not in check.OWN_DEFAULTS
                }
                update.update(_site_target(check, site))
                spec = check.model_copy(update=update)
                key = f"{client.id}/{site.id}/{check.id}"
                out.append(
                    ConfiguredCheck(
                        key=key,
                        client=client.id,
                        site=f"{client.id}/{site.id}",
                        check_id=check.id,
                        spec=spec,
                        ref=CheckRef(
                            key=key,
                            client=client.id,
                            site=f"{client.id}/{site.id}",
                            site_label=site.label,
                            failures_to_open=spec.failures_to_open,
                            successes_to_resolve=spec.successes_to_resolve,
                            name=check.name or "",
                            availability=check.id in availability,
                            slow_after=spec.slow_after.total_seconds(),
                        ),
                    )
                )
    return out


def _site_target(check: CheckConfig, site: SiteConfig) -> dict[str, Any]:
    """What a check takes from its site: the URL its path joins, or the host it asks for."""
    host = urlsplit(site.url).hostname or ""
    if isinstance(check, DnsCheckConfig):
        update: dict[str, Any] = {"name": check.name or host}
        if check.max_answer_time is not None:
            update["slow_after"] = check.max_answer_time
        if check.severity is None and update["name"] != host:
            # dns_error is Severity 1 for the site's own name (its visitors cannot reach it);
            # another name (a mail host, a CDN alias) failing is Severity 2, like a mismatch.
            update["severity"] = Severity.MAJOR
        return update
    if isinstance(check, TcpCheckConfig):
        return {"host": check.host or host}
    if isinstance(check, DomainCheckConfig):
        return {"domain": check.domain or registrable_domain(host)}
    if isinstance(check, HeartbeatCheckConfig):
        return {}
    return {"url": urljoin(site.url, check.url)}


def availability_checks(site: SiteConfig) -> frozenset[str]:
    """The ids of the checks whose failure means `site` is down (see `CheckCommon.role`)."""
    marked = frozenset(check.id for check in site.checks if check.role == "availability")
    if marked:
        return marked
    # A heartbeat is a job behind the site, never what serves it.
    candidates = [
        check
        for check in site.checks
        if check.role != "part" and not isinstance(check, HeartbeatCheckConfig)
    ]
    root = frozenset(
        check.id
        for check in candidates
        if check.kind == "http" and _same_page(urljoin(site.url, check.url), site.url)
    )
    return root or frozenset(check.id for check in candidates)


def _same_page(url: str, base: str) -> bool:
    one, other = urlsplit(url), urlsplit(base)
    return (one.scheme, one.netloc, one.path.rstrip("/")) == (
        other.scheme,
        other.netloc,
        other.path.rstrip("/"),
    )


def with_cluster_overrides(
    config: MonitorConfig,
    *,
    location: str | None = None,
    worker_id: str | None = None,
    source_address: str | None = None,
) -> MonitorConfig:
    """`config` with the `monitor run` flags that name this one process applied (validated
    like the YAML: a bad --location raises pydantic's ValidationError)."""
    given = {
        "location": location,
        "worker_id": worker_id,
        "source_address": source_address,
    }
    overrides = {name: value for name, value in given.items() if value is not None}
    if not overrides:
        return config
    cluster = ClusterConfig.model_validate({**config.cluster.model_dump(), **overrides})
    return config.model_copy(update={"cluster": cluster})


class _ZoneOnly(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    timezone: str = "UTC"

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        zone(value)
        return value


class ClientZone(BaseModel):
    """A client as operator commands see it: its id and time zone, nothing else."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    id: str
    business_hours: _ZoneOnly = _ZoneOnly()


class OperatorSections(_Model):
    """What operator commands (`monitor queue`, `ack`, `show`...) read of the config: where
    the monitor listens and the time zones to show times in. The rest of the file, with the
    environment variables of its secrets, is the running monitor's and is not validated."""

    server: ServerConfig = ServerConfig()
    agency: AgencyConfig = AgencyConfig()
    clients: list[ClientZone] = Field(default_factory=list)


class _OncallRotationOnly(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    emails: list[EmailAddress] = Field(default_factory=list)
    rotation: Rotation | None = None


class OncallSections(_Model):
    """What `monitor oncall` reads of the config: the rotation, its people and the agency's
    time zone; not the webhook's headers or any other secret."""

    agency: AgencyConfig = AgencyConfig()
    people: list[PersonConfig] = Field(default_factory=list)
    oncall: _OncallRotationOnly = _OncallRotationOnly()


def _absolute_http_url(value: str, *, example: str) -> str:
    """`value` when it is an absolute http(s) URL with a host; the error gives `example`."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"must be an absolute http(s) URL such as {example} (got {value!r})")
    return value

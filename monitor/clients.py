"""Per-client context built once from the config: SLA calendars and how to address mails."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

from incidents.calendar_spec import BusinessHoursSpec, build_calendar
from incidents.escalation import Escalation
from incidents.flow import NotifyPolicy, Person
from incidents.messages import Branding, ClientInfo, MessageContext
from incidents.severity import Severity
from incidents.sla import SlaContext
from incidents.wording import part_name
from monitor.config.models import ClientConfig, MonitorConfig

ONCALL_WEBHOOK = "oncall"  # the name outbox rows use for the configured on-call webhook


@dataclass(frozen=True, slots=True)
class ClientContext:
    sla: SlaContext
    info: ClientInfo


def client_contexts(config: MonitorConfig) -> dict[str, ClientContext]:
    contexts: dict[str, ClientContext] = {}
    for client in config.clients:
        contexts[client.id] = ClientContext(
            sla=SlaContext(
                business=build_calendar(client.business_hours),
                plan=config.plans[client.plan],
                policy=config.sla_policy,
            ),
            info=ClientInfo(
                id=client.id,
                name=client.label,
                contacts=tuple(client.contacts),
                timezone=client.business_hours.timezone,
                language=client.language,
                names=display_names(client),
                update_every={
                    severity: config.sla_policy.targets(severity).update_every
                    for severity in Severity
                },
            ),
        )
    return contexts


def display_names(client: ClientConfig) -> dict[str, str]:
    """How the client's mails name its sites and checks, by key (never the key itself)."""
    names: dict[str, str] = {}
    for site in client.sites:
        names[f"{client.id}/{site.id}"] = site.label
        for check in site.checks:
            key = f"{client.id}/{site.id}/{check.id}"
            names[key] = part_name(name=check.name or "", check_key=key)
    return names


def message_context(config: MonitorConfig) -> MessageContext:
    notifications, agency = config.notifications, config.agency
    return MessageContext(
        sender_domain=notifications.sender_domain,
        oncall=tuple(config.oncall.emails),
        dashboard_url=notifications.dashboard_url or console_link(config),
        locale_dir=Path(notifications.locale_dir) if notifications.locale_dir else None,
        templates_dir=Path(notifications.templates_dir) if notifications.templates_dir else None,
        branding=Branding(
            name=agency.name,
            logo_url=agency.logo_url,
            accent_color=agency.accent_color,
            signature=agency.signature,
        ),
        agency_timezone=agency.timezone,
    )


def console_link(config: MonitorConfig) -> str | None:
    """Where on-call mails link an incident when no dashboard_url is set: its console page
    (`<public_url>/ui/incidents/<n>`), if the console is on and reachable by a public URL."""
    if not (config.operators and config.console.public_url):
        return None
    return f"{config.console.public_url}/ui"


def notify_policy(config: MonitorConfig) -> NotifyPolicy:
    """What the incident flow needs to decide who hears what: the single entry point of
    routing (incidents.flow.notifications turns an incident change into outbox rows with it)."""
    agency = config.agency
    hours = agency.business_hours or BusinessHoursSpec(timezone=agency.timezone)
    return NotifyPolicy(
        email_client_on_open=frozenset(config.notifications.email_client_on_open),
        webhook_targets=(ONCALL_WEBHOOK,) if config.oncall.webhook is not None else (),
        chat_channels=tuple(config.channels),
        routes=None if config.routes is None else tuple(r.route() for r in config.routes),
        agency_hours=build_calendar(hours),
        people={
            person.name: Person(
                name=person.name,
                email=person.email,
                phone=person.phone,
                channels=tuple(person.channels),
            )
            for person in config.people
        },
    )


def escalation_of(config: MonitorConfig) -> Escalation:
    """The escalation policies and the rotation, in the agency's time zone."""
    return Escalation(
        policies=dict(config.escalation),
        rotation=config.oncall.rotation,
        zone=ZoneInfo(config.agency.timezone),
    )

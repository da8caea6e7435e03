"""Delivery of notifications from the outbox: email (SMTP or `.eml` files), webhooks and
chat channels (Apprise).

The outbox worker calls a `Mailer` for each `OutgoingEmail`, the `WebhookSender` for each
`OutgoingWebhook` and the `ChatSender` for each `OutgoingChat`; all raise only
`DeliveryError`, whose `permanent` says whether to give up. `retry_delay` says when to try
again otherwise.
"""

from monitor.delivery.backoff import retry_delay
from monitor.delivery.chat import ChannelUrlError, ChatSender, ChatTarget, service_name
from monitor.delivery.errors import DeliveryError
from monitor.delivery.mail import (
    FileMailer,
    Mailer,
    SmtpMailer,
    SmtpSecurity,
    SmtpSettings,
    build_email,
    check_sender,
)
from monitor.delivery.webhook import WebhookSender, WebhookTarget

__all__ = [
    "ChannelUrlError",
    "ChatSender",
    "ChatTarget",
    "DeliveryError",
    "FileMailer",
    "Mailer",
    "SmtpMailer",
    "SmtpSecurity",
    "SmtpSettings",
    "WebhookSender",
    "WebhookTarget",
    "build_email",
    "check_sender",
    "retry_delay",
    "service_name",
]

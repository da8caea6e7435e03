"""Delivery of notifications from the outbox: email (SMTP or `.eml` files), webhooks and
chat channels (Apprise).

The outbox worker calls a `Mailer` for each `OutgoingEmail`, the `WebhookSender` for each
`OutgoingWebhook` and the `ChatSender` for each `OutgoingChat`; all raise only
`DeliveryError`, whose `permanent` says whether to give up. `retry_delay` says when to try
again otherwise. `monitor.delivery.chat` is imported only where channels are configured:
Apprise loads its 100+ plugins when first used, which a monitor without channels need not
wait for.
"""

from monitor.delivery.backoff import retry_delay
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
]

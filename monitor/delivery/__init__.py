"""Delivery of notifications from the outbox: email (SMTP or `.eml` files) and webhooks.

The outbox worker calls a `Mailer` for each `OutgoingEmail` and the `WebhookSender` for each
`OutgoingWebhook`; both raise only `DeliveryError`, whose `permanent` says whether to give up.
`retry_delay` says when to try again otherwise.
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

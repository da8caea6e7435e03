"""The operator console (/ui): sign-in, queue, incidents, sites, maintenance and outbox."""

from monitor.web.console.app import Console

__all__ = ["Console"]

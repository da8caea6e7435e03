"""Reading the console's forms: posted fields, bounded text, safe redirect targets, and times
typed in the operator's own zone."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from aiohttp import web

from incidents.public_status import Stage
from monitor.desk import ActionError

MAX_FORM = 64 * 1024
MAX_TEXT = 20_000
FORM_KEY: web.RequestKey[Mapping[str, str]] = web.RequestKey("console_form", Mapping)


async def read_form(request: web.Request) -> Mapping[str, str]:
    """The posted form, read once per request (the guard and the handler share it)."""
    cached = request.get(FORM_KEY)
    if cached is None:
        if request.content_length is not None and request.content_length > MAX_FORM:
            raise web.HTTPRequestEntityTooLarge(
                max_size=MAX_FORM, actual_size=request.content_length
            )
        posted = await request.post()
        cached = {key: value for key, value in posted.items() if isinstance(value, str)}
        request[FORM_KEY] = cached
    return cached


def see_other(location: str) -> web.Response:
    """A 303 to return (rather than raise) when it sets or clears cookies."""
    return web.Response(status=303, headers={"Location": location})


def form_text(form: Mapping[str, str], name: str) -> str:
    text = form.get(name, "").replace("\r\n", "\n")
    if len(text) > MAX_TEXT:
        raise ActionError(f"{name} is longer than {MAX_TEXT} characters", status=400)
    return text


def is_public(form: Mapping[str, str]) -> bool:
    """An update for the client (the default) rather than an internal note."""
    return form.get("audience", "public") != "internal"


def update_fields(form: Mapping[str, str]) -> tuple[str, bool, Stage | None]:
    """(text, public, stage) of the update form; ActionError for a text too long."""
    stage = form.get("stage") or None
    allowed = {s.value for s in Stage if s is not Stage.RESOLVED}
    return form_text(form, "text"), is_public(form), Stage(stage) if stage in allowed else None


def local_path(target: str | None) -> str | None:
    """`target` when it is a path of this console (never another site: no open redirect)."""
    if not target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not parts.path.startswith("/ui/") or "\\" in target:
        return None
    return parts.path


def local_time(text: str, tz: ZoneInfo, what: str) -> datetime:
    """A `datetime-local` field (no zone: the operator's own) as an aware time."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ActionError(
            f"the {what} must be a date and time such as 2026-12-24T22:00", status=400
        ) from exc
    if value.tzinfo is None:
        value = value.replace(tzinfo=tz)
    if not 2000 <= value.astimezone(UTC).year <= 2999:
        raise ActionError(f"the {what} must be between the years 2000 and 2999", status=400)
    return value

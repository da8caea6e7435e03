"""Whether the database answered the store's latest request: what /healthz says while it is
away. Kept by the store itself, since every query and transaction passes through it."""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError

_REASON_MAX_CHARS = 200


class StoreHealth:
    """The latest answer of the database: unavailable (with a reason) or answering."""

    def __init__(self) -> None:
        self._reason: str | None = None

    @property
    def reason(self) -> str | None:
        """Why the database did not answer the latest request; None while it answers."""
        return self._reason

    def failed(self, exc: BaseException) -> None:
        self._reason = _describe(exc)

    def answered(self) -> None:
        self._reason = None


def _describe(exc: BaseException) -> str:
    """The driver's own error in one line: never SQLAlchemy's text, which quotes the statement
    and its parameters (evidence a target sent, among them)."""
    cause = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    lines = str(cause).strip().splitlines()
    text = f"{type(cause).__name__}: {lines[0]}" if lines else type(cause).__name__
    if len(text) > _REASON_MAX_CHARS:
        text = text[: _REASON_MAX_CHARS - 1] + "…"
    return text

"""The store's exception tree. SQLAlchemy and driver errors are translated here, once.

StoreError                   anything the store could not do; the original is __cause__
 ├── StoreUnavailable        the database cannot be reached or is busy: retry later
 ├── DuplicateOpenIncident   a site already has an open incident (.site)
 ├── IncidentNotFound        an update named an incident id that is not stored (.incident_id)
 ├── StaleIncident           another writer updated the incident since it was read
 │                           (.incident_id, .version: the version the write expected)
 └── LeaseLost               the writing process no longer owns the site's lease (.site, .owner)
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator

from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError


class StoreError(Exception):
    """The store could not complete an operation."""


class StoreUnavailable(StoreError):
    """The database is unreachable, closed the connection, or stayed locked too long."""


class DuplicateOpenIncident(StoreError):
    """The database refused a second open incident for one site (partial unique index)."""

    def __init__(self, site: str) -> None:
        super().__init__(
            f"site {site!r} already has an open incident; resolve it or update it instead "
            "of opening another"
        )
        self.site = site


class IncidentNotFound(StoreError):
    def __init__(self, incident_id: int) -> None:
        super().__init__(f"incident {incident_id} is not in the store")
        self.incident_id = incident_id


class StaleIncident(StoreError):
    """The incident was written by someone else since this copy was read (its version moved
    on); nothing of the transaction was written. Reload it and decide again."""

    def __init__(self, incident_id: int, version: int) -> None:
        super().__init__(
            f"incident {incident_id} changed since version {version} was read; reload it "
            "(Store.get_incident) and apply the change to the current version"
        )
        self.incident_id = incident_id
        self.version = version


class LeaseLost(StoreError):
    """A write fenced by a site lease found the lease held by another process, or by none;
    nothing of the transaction was written. Stop probing the site until it is claimed again."""

    def __init__(self, site: str, owner: str) -> None:
        super().__init__(
            f"{owner} no longer holds the lease on site {site!r} (it expired and was taken, "
            "or was released); claim it again (Store.claim_sites) and reload its state first"
        )
        self.site = site
        self.owner = owner


# OperationalError covers "database is locked" and lost connections; OSError is what asyncpg
# raises when the server refuses or never answers the connection. The sqlite3 errors come from
# the one place that talks to the driver directly (engine.use_wal).
UNAVAILABLE_ERRORS: tuple[type[Exception], ...] = (
    OperationalError,
    InterfaceError,
    OSError,
    sqlite3.OperationalError,
)


@contextlib.contextmanager
def translated(action: str) -> Iterator[None]:
    """Re-raise third-party errors raised inside as StoreError subclasses, saying what failed.

    A plain (not async) context manager works around `await` too, and keeps tracebacks short.
    """
    try:
        yield
    except StoreError:
        raise
    except UNAVAILABLE_ERRORS as exc:
        raise StoreUnavailable(f"{action}: {exc}") from exc
    except (SQLAlchemyError, sqlite3.Error) as exc:
        raise StoreError(f"{action}: {exc}") from exc

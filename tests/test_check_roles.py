"""Which checks are a site's availability scope (their failure means "down"), and the display
names and targets each check carries into the engine."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from monitor.clients import display_names
from monitor.config.models import MonitorConfig, configured_checks

FLOW = {"id": "checkout", "kind": "flow", "steps": [{"name": "pay", "url": "/pay"}]}


def config(checks: list[dict[str, Any]], url: str = "https://shop.example") -> MonitorConfig:
    return MonitorConfig.model_validate(
        {"clients": [{"id": "acme", "sites": [{"id": "shop", "url": url, "checks": checks}]}]}
    )


def availability(cfg: MonitorConfig) -> set[str]:
    return {c.check_id for c in configured_checks(cfg) if c.ref.availability}


def test_by_default_the_http_checks_of_the_site_url_are_its_availability() -> None:
    cfg = config(
        [
            {"id": "home", "url": "/"},
            {"id": "home-again", "url": ""},
            {"id": "admin", "url": "/wp-admin/"},
            {"id": "product", "kind": "page", "url": "/"},
            FLOW,
        ]
    )
    assert availability(cfg) == {"home", "home-again"}


def test_a_site_under_a_path_has_its_own_root() -> None:
    cfg = config(
        [{"id": "shop", "url": "/shop/"}, {"id": "blog", "url": "/blog"}],
        url="https://example.org/shop",
    )
    assert availability(cfg) == {"shop"}


def test_without_a_check_of_the_site_url_every_check_is_availability() -> None:
    assert availability(config([{"id": "health", "url": "/healthz"}, FLOW])) == {
        "health",
        "checkout",
    }


def test_roles_given_replace_the_default() -> None:
    cfg = config(
        [
            {"id": "home", "url": "/"},
            {"id": "api", "url": "/api/health", "role": "availability"},
            {"id": "admin", "url": "/admin", "role": "part"},
        ]
    )
    assert availability(cfg) == {"api"}


def test_marking_a_part_keeps_the_default_for_the_others() -> None:
    cfg = config([{"id": "home", "url": "/"}, {"id": "admin", "url": "/admin", "role": "part"}])
    assert availability(cfg) == {"home"}
    only_parts = config(
        [{"id": "health", "url": "/healthz"}, {"id": "admin", "url": "/admin", "role": "part"}]
    )
    assert availability(only_parts) == {"health"}


def test_a_role_must_be_availability_or_part() -> None:
    with pytest.raises(ValidationError, match="role"):
        config([{"id": "home", "url": "/", "role": "critical"}])


def test_the_engine_gets_the_display_name_and_the_slow_target() -> None:
    cfg = config(
        [{"id": "admin-panel", "url": "/admin", "slow_after": "3s"}, FLOW | {"name": "Checkout"}]
    )
    refs = {c.check_id: c.ref for c in configured_checks(cfg)}
    assert (refs["admin-panel"].name, refs["admin-panel"].slow_after) == ("", 3.0)
    assert refs["checkout"].name == "Checkout"
    assert display_names(cfg.clients[0]) == {
        "acme/shop": "shop.example",
        "acme/shop/admin-panel": "Admin panel",
        "acme/shop/checkout": "Checkout",
    }

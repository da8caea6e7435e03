"""The monitor end to end, in-process: real loopback targets, real store, real HTTP server."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from incidents.model import IncidentStatus, TimelineKind
from incidents.severity import Severity
from monitor.app import Running, running_monitor
from monitor.config.models import ApiConfig, MonitorConfig
from monitor.events import EventKind, MonitorEvent
from tests.helpers import Target, eventually


def make_config(
    *, site_url: str, database_url: str, checks: list[dict[str, Any]], **defaults: Any
) -> MonitorConfig:
    return MonitorConfig.model_validate(
        {
            "database": {"url": database_url},
            "server": {"host": "127.0.0.1", "port": 0},
            "defaults": {
                "interval": "100ms",
                "timeout": "2s",
                "failures_to_open": 2,
                "successes_to_resolve": 2,
                **defaults,
            },
            "clients": [
                {"id": "acme", "sites": [{"id": "shop", "url": site_url, "checks": checks}]}
            ],
        }
    )


async def _open_incidents(running: Running) -> list[Any]:
    return await running.store.list_incidents(open_only=True)


async def test_500s_open_a_severity_1_incident_and_recovery_resolves_it(
    target: tuple[Target, str], database_url: str
) -> None:
    shop, url = target
    events: list[MonitorEvent] = []
    config = make_config(
        site_url=url, database_url=database_url, checks=[{"id": "home", "url": "/"}]
    )
    async with running_monitor(config, listeners=[events.append]) as running:
        await eventually(lambda: running.monitor.check_state("acme/shop/home"))
        assert await _open_incidents(running) == []

        shop.set("/", status=500, body="Internal Server Error")
        [incident] = await eventually(lambda: _open_incidents(running))
        assert incident.severity is Severity.CRITICAL
        assert incident.title.endswith("is down")
        failures = [e for e in events if e.kind is EventKind.CHECK_FAILED]
        assert failures and "http_5xx" in failures[0].message

        shop.set("/", status=200, body="Welcome")
        resolved = await eventually(lambda: _resolved(running, incident.id), timeout=10)
        assert resolved.status is IncidentStatus.RESOLVED
        kinds = [entry.kind for entry in await running.store.timeline(incident.id)]
        assert kinds[0] is TimelineKind.OPENED and kinds[-1] is TimelineKind.RESOLVED
        opened = await running.store.timeline(incident.id)
        assert opened[0].evidence is not None and opened[0].evidence["status"] == 500
        assert len(await running.store.list_incidents()) == 1


async def _resolved(running: Running, incident_id: int | None) -> Any:
    assert incident_id is not None
    incident = await running.store.get_incident(incident_id)
    return incident if incident is not None and not incident.is_open else None


async def test_slow_site_opens_severity_2_then_escalates_to_1_when_it_goes_down(
    target: tuple[Target, str], tmp_path: Any
) -> None:
    shop, url = target
    shop.set("/", delay=0.3)
    config = make_config(
        site_url=url,
        database_url=f"sqlite+aiosqlite:///{tmp_path}/m.db",
        checks=[{"id": "home", "url": "/"}],
        slow_after="150ms",
        interval="200ms",
    )
    async with running_monitor(config) as running:
        [incident] = await eventually(lambda: _open_incidents(running))
        assert incident.severity is Severity.MAJOR
        assert incident.title.startswith("127.0.0.1: pages load slowly (")
        assert incident.title.endswith(" ms, target 150 ms)")

        shop.set("/", delay=0.0, status=503)
        escalated = await eventually(
            lambda: _with_severity(running, incident.id, Severity.CRITICAL)
        )
        assert escalated.id == incident.id
        kinds = [entry.kind for entry in await running.store.timeline(incident.id)]
        assert TimelineKind.ESCALATED in kinds
        assert len(await running.store.list_incidents()) == 1


async def _with_severity(running: Running, incident_id: int | None, severity: Severity) -> Any:
    assert incident_id is not None
    incident = await running.store.get_incident(incident_id)
    return incident if incident is not None and incident.severity is severity else None


async def test_two_failing_checks_of_one_site_make_one_incident(
    target: tuple[Target, str], tmp_path: Any
) -> None:
    shop, url = target
    config = make_config(
        site_url=url,
        database_url=f"sqlite+aiosqlite:///{tmp_path}/m.db",
        checks=[{"id": "home", "url": "/"}, {"id": "cart", "url": "/cart"}],
    )
    async with running_monitor(config) as running:
        shop.set("/", status=500)
        shop.set("/cart", status=500)
        incident = await eventually(lambda: _failing(running, {"acme/shop/home", "acme/shop/cart"}))
        assert len(await running.store.list_incidents()) == 1
        assert incident.checks == frozenset({"acme/shop/home", "acme/shop/cart"})

        shop.set("/", status=200)
        await eventually(lambda: _failing(running, {"acme/shop/cart"}))
        assert (await running.store.get_incident(incident.id)).is_open  # type: ignore[union-attr]

        shop.set("/cart", status=200)
        await eventually(lambda: _resolved(running, incident.id))
        assert len(await running.store.list_incidents()) == 1


async def _failing(running: Running, checks: set[str]) -> Any:
    incidents = await _open_incidents(running)
    for incident in incidents:
        if incident.failing_checks == frozenset(checks):
            return incident
    return None


async def test_serves_metrics_health_and_incidents_api(
    target: tuple[Target, str], tmp_path: Any
) -> None:
    shop, url = target
    shop.set("/", status=500)
    config = make_config(
        site_url=url,
        database_url=f"sqlite+aiosqlite:///{tmp_path}/m.db",
        checks=[{"id": "home", "url": "/"}],
    )
    config = config.model_copy(update={"api": ApiConfig(token=SecretStr("reader"))})
    bearer = {"Authorization": "Bearer reader"}
    async with (
        running_monitor(config) as running,
        aiohttp.ClientSession(headers=bearer) as http,
    ):
        [incident] = await eventually(lambda: _open_incidents(running))

        async with http.get(f"{running.url}/healthz") as response:
            assert response.status == 200
            health = await response.json()
        assert health["status"] == "ok" and health["open_incidents"] == 1

        async with http.get(f"{running.url}/api/incidents?open=1") as response:
            listed = await response.json()
        assert [i["id"] for i in listed["incidents"]] == [incident.id]

        async with http.get(f"{running.url}/api/incidents/{incident.id}") as response:
            detail = await response.json()
        assert detail["severity"] == 1 and detail["timeline"][0]["kind"] == "opened"

        async with http.get(f"{running.url}/api/incidents/99999") as response:
            assert response.status == 404

        async with http.get(f"{running.url}/metrics") as response:
            text = await response.text()
        samples = _samples(text)
        home = (("check", "home"), ("client", "acme"), ("site", "shop"))
        assert samples[("probe_success", home)] == 0.0
        assert samples[("probe_http_status_code", home)] == 500.0
        assert ("probe_duration_seconds", home) in samples
        site = (("client", "acme"), ("site", "shop"))
        assert (
            "monitor_probe_duration_seconds_bucket",
            tuple(sorted((*site, ("le", "5.0")))),
        ) in samples
        assert samples[("monitor_incidents_open", (("client", "acme"), ("severity", "1")))] == 1
        opened = (("client", "acme"), ("severity", "1"))
        assert samples[("monitor_incidents_opened_total", opened)] == 1
        assert samples[("monitor_scheduler_lag_seconds_count", ())] > 0


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def test_our_own_event_loop_stall_never_makes_a_healthy_site_look_slow(
    target: tuple[Target, str], tmp_path: Any
) -> None:
    shop, url = target
    shop.set("/", delay=0.05)  # healthy: well under slow_after
    config = make_config(
        site_url=url,
        database_url=f"sqlite+aiosqlite:///{tmp_path}/m.db",
        checks=[{"id": "home", "url": "/"}],
        slow_after="200ms",
        failures_to_open=1,
        interval="300ms",
    )
    async with running_monitor(config) as running:
        discarded = running.registry.get_sample_value(
            "monitor_probe_results_discarded_total", {"reason": "event_loop_lag"}
        )
        for _ in range(3):
            hits = shop.hits.get("/", 0)
            await eventually(lambda hits=hits: shop.hits.get("/", 0) > hits, interval=0.001)
            # The probe is in flight (the target takes 50 ms); now the monitor's own loop
            # stalls for 400 ms, as an overloaded process would.
            time.sleep(0.4)
        await eventually(
            lambda: (
                (
                    running.registry.get_sample_value(
                        "monitor_probe_results_discarded_total", {"reason": "event_loop_lag"}
                    )
                    or 0
                )
                > (discarded or 0)
            )
        )
        labels = {"client": "acme", "site": "shop", "check": "home"}
        slow = running.registry.get_sample_value(
            "monitor_probe_results_total", {**labels, "outcome": "slow"}
        )
        assert not slow
        assert await running.store.list_incidents() == []


async def test_a_broken_image_on_a_page_check_opens_a_severity_3_incident(
    target: tuple[Target, str], tmp_path: Any
) -> None:
    shop, url = target
    shop.set("/", body='<html><body><img src="/static/mug.png"><script src="/app.js"></script>')
    shop.set("/app.js", body="console.log(1)")
    shop.set("/static/mug.png", status=404, body="not found")
    config = make_config(
        site_url=url,
        database_url=f"sqlite+aiosqlite:///{tmp_path}/m.db",
        checks=[{"id": "home", "kind": "page", "url": "/"}],
    )
    async with running_monitor(config) as running:
        [incident] = await eventually(lambda: _open_incidents(running))
        assert incident.severity is Severity.MODERATE
        opened = (await running.store.timeline(incident.id))[0]  # type: ignore[arg-type]
        assert opened.outcome is not None and str(opened.outcome) == "broken_asset"
        assert opened.evidence is not None and "/static/mug.png" in opened.evidence["error"]
        assert shop.hits["/app.js"] >= 2  # assets are fetched on every probe

        shop.set("/static/mug.png", status=200, body="png")
        await eventually(lambda: _resolved(running, incident.id))


async def test_a_site_that_never_answers_opens_a_severity_1_incident(tmp_path: Any) -> None:
    # A server that accepts connections and never answers: every probe times out.
    hold: list[asyncio.StreamWriter] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        hold.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    config = make_config(
        site_url=f"http://127.0.0.1:{port}",
        database_url=f"sqlite+aiosqlite:///{tmp_path}/m.db",
        checks=[{"id": "home", "url": "/"}],
        timeout="1s",
        interval="1200ms",
    )
    try:
        async with running_monitor(config) as running:
            [incident] = await eventually(lambda: _open_incidents(running))
            assert incident.severity is Severity.CRITICAL
            timeline = await running.store.timeline(incident.id)  # type: ignore[arg-type]
            assert timeline[0].outcome is not None and str(timeline[0].outcome) == "timeout"
            counted = running.registry.get_sample_value(
                "monitor_probe_results_total",
                {"client": "acme", "site": "shop", "check": "home", "outcome": "timeout"},
            )
            assert counted is not None and counted >= 2  # timeouts count, not discarded
    finally:
        for writer in hold:
            writer.close()
        server.close()
        await server.wait_closed()

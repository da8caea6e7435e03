"""Per-check series in flat arrays: what a scrape shows, the same through the registry, and
a chunked exposition that Prometheus' own parser reads."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from checks.result import Evidence, Outcome, ProbeResult
from monitor.check_metrics import CHUNK, CheckMetrics
from monitor.metrics import DURATION_BUCKETS, Metrics

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def result(
    outcome: Outcome,
    *,
    latency: float | None = 0.12,
    status: int | None = 200,
    not_after: float | None = None,
) -> ProbeResult:
    return ProbeResult(
        outcome=outcome,
        started_at=T0,
        latency=latency,
        evidence=Evidence(url="https://x.example/", status=status, tls_not_after=not_after),
    )


def parsed(text: str) -> Samples:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def rendered(metrics: CheckMetrics) -> Samples:
    return parsed(b"".join(metrics.render()).decode())


def collected(registry: CollectorRegistry) -> Samples:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in registry.collect()
        for sample in family.samples
    }


def labels(client: str, site: str, check: str, **more: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted({"client": client, "site": site, "check": check, **more}.items()))


def test_a_scrape_shows_each_checks_last_result_counts_and_the_sites_histogram() -> None:
    metrics = CheckMetrics(buckets=(0.1, 1.0, 5.0))
    metrics.observe("acme/shop/home", result(Outcome.OK, latency=0.1, not_after=1.8e9))
    metrics.observe("acme/shop/home", result(Outcome.HTTP_5XX, latency=0.5, status=500))
    metrics.observe("acme/shop/cart", result(Outcome.OK, latency=7.0))
    metrics.observe("acme/blog/home", result(Outcome.TIMEOUT, latency=None, status=None))
    samples = rendered(metrics)

    home = labels("acme", "shop", "home")
    assert samples[("probe_success", home)] == 0
    assert samples[("probe_http_status_code", home)] == 500
    assert samples[("probe_duration_seconds", home)] == 0.5
    assert samples[("probe_ssl_earliest_cert_expiry", home)] == 1.8e9  # from its last answer
    assert samples[("monitor_probe_results_total", labels("acme", "shop", "home", outcome="ok"))]
    assert (
        samples[("monitor_probe_results_total", labels("acme", "shop", "home", outcome="http_5xx"))]
        == 1
    )
    # Outcomes never seen are not shown (as prometheus_client's children, made on first use).
    assert ("monitor_probe_results_total", labels("acme", "shop", "cart", outcome="slow")) not in (
        samples
    )
    blog = labels("acme", "blog", "home")
    assert samples[("probe_success", blog)] == 0 and samples[("probe_http_status_code", blog)] == 0
    assert ("probe_duration_seconds", blog) not in samples  # nothing measured
    assert ("probe_ssl_earliest_cert_expiry", blog) not in samples

    shop = (("client", "acme"), ("site", "shop"))

    def bucket(le: str) -> float:
        return samples[
            ("monitor_probe_duration_seconds_bucket", tuple(sorted((*shop, ("le", le)))))
        ]

    # 0.1 sits on a bucket's edge and counts in it; 7.0 only in +Inf.
    assert [bucket(le) for le in ("0.1", "1.0", "5.0", "+Inf")] == [1, 2, 2, 3]
    assert samples[("monitor_probe_duration_seconds_count", shop)] == 3
    assert samples[("monitor_probe_duration_seconds_sum", shop)] == pytest.approx(7.6)
    blog_site = (("client", "acme"), ("site", "blog"))
    assert samples[("monitor_probe_duration_seconds_count", blog_site)] == 0


def test_the_registry_reads_the_same_series_as_a_scrape() -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    checks = metrics.checks
    checks.observe("acme/shop/home", result(Outcome.OK, latency=0.25, not_after=1.7e9))
    checks.observe("acme/shop/home", result(Outcome.SLOW, latency=6.0))
    checks.observe('acme/sh"op/we\\ird', result(Outcome.OK, latency=0.01))
    assert rendered(checks) == {
        key: value
        for key, value in collected(registry).items()
        if key[0].startswith(("probe_", "monitor_probe_results_total", "monitor_probe_duration"))
    }
    assert (
        registry.get_sample_value(
            "monitor_probe_results_total",
            {"client": "acme", "site": "shop", "check": "home", "outcome": "slow"},
        )
        == 1
    )
    assert registry.get_sample_value(
        "probe_success", {"client": "acme", "site": 'sh"op', "check": "we\\ird"}
    )


def test_the_exposition_has_every_series_once_and_parses() -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    for i in range(CHUNK + 10):  # more than one chunk
        metrics.checks.observe(f"c{i % 3}/s{i % 7}/k{i}", result(Outcome.OK, latency=0.02))
    metrics.scheduler_lag.observe(0.001)
    chunks = list(metrics.exposition())
    assert len(chunks) > 4
    text = b"".join(chunks).decode()
    families = [family.name for family in text_string_to_metric_families(text)]
    assert len(families) == len(set(families))  # nothing twice (the registry's copy is left out)
    assert {"probe_success", "monitor_probe_results", "monitor_scheduler_lag_seconds"} <= set(
        families
    )
    samples = parsed(text)
    assert sum(1 for name, _ in samples if name == "probe_success") == CHUNK + 10
    # Outside an exposition, the registry shows the checks' series again.
    assert registry.get_sample_value("probe_success", {"client": "c0", "site": "s0", "check": "k0"})


def test_forgotten_checks_are_hidden_until_their_next_result() -> None:
    metrics = CheckMetrics(buckets=DURATION_BUCKETS)
    metrics.observe("acme/shop/home", result(Outcome.OK))
    metrics.observe("acme/blog/home", result(Outcome.OK))
    metrics.forget(["acme/shop/home", "acme/unknown/x"])
    samples = rendered(metrics)
    assert ("probe_success", labels("acme", "shop", "home")) not in samples
    assert ("monitor_probe_duration_seconds_count", (("client", "acme"), ("site", "shop"))) not in (
        samples
    )
    assert ("probe_success", labels("acme", "blog", "home")) in samples
    metrics.observe("acme/shop/home", result(Outcome.OK))
    counted = rendered(metrics)[
        ("monitor_probe_results_total", labels("acme", "shop", "home", outcome="ok"))
    ]
    assert counted == 2  # the counter went on where it was


def test_buckets_must_increase() -> None:
    with pytest.raises(ValueError, match="increasing"):
        CheckMetrics(buckets=(1.0, 0.5))


def test_a_domain_checks_expiry_is_a_gauge_of_its_own_and_rendered_as_collected() -> None:
    metrics = CheckMetrics(buckets=(0.1, 1.0))
    registry = CollectorRegistry()
    registry.register(metrics)
    expiring = ProbeResult(
        outcome=Outcome.DOMAIN_EXPIRING,
        started_at=T0,
        latency=0.05,
        evidence=Evidence(url="domain://acme.example", status=200, domain_not_after=1.9e9),
    )
    metrics.observe("acme/shop/domain", expiring)
    metrics.observe("acme/shop/home", result(Outcome.OK, not_after=1.8e9))
    domain, home = labels("acme", "shop", "domain"), labels("acme", "shop", "home")
    for samples in (rendered(metrics), collected(registry)):
        assert samples[("probe_domain_expiry_timestamp_seconds", domain)] == 1.9e9
        assert ("probe_domain_expiry_timestamp_seconds", home) not in samples
        assert ("probe_ssl_earliest_cert_expiry", domain) not in samples
        assert samples[("probe_success", domain)] == 0

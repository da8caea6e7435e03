"""Per-check probe metrics for tens of thousands of checks: flat arrays, formatted at scrape.

prometheus_client keeps a child object per label set, each with its own lock, and formats
every sample through generic code: at 50,000 checks that costs a dict build, a lock and a
child lookup per probe and metric, hundreds of megabytes, and seconds per scrape (with a
per-check histogram). Here each check has a slot in a few flat arrays; a probe writes its
values there (everything runs on the event loop's thread: no lock), and a scrape formats them
with each check's label text built once.

Series (blackbox_exporter's names where the meaning is the same):

- `probe_success`, `probe_http_status_code`, `probe_duration_seconds` (of the last probe that
  measured one), `probe_ssl_earliest_cert_expiry`, `probe_domain_expiry_timestamp_seconds`
  (a `domain` check's registration expiry): gauges per check (client, site, check);
- `probe_http_duration_seconds{phase="resolve|connect|tls|processing|transfer"}`: where the
  time of the check's last http probe went (checks.phases), when its transport measured it;
- `monitor_heartbeat_run_seconds`: how long a heartbeat's job last ran (start to success);
- `monitor_probe_results_total`: probes completed per check and outcome;
- `monitor_probe_duration_seconds`: a histogram per site (client, site), for percentiles
  (a histogram per check would be 14 series per check).

A check's series appear with its first result; `forget` hides them (the check moved to
another process) until its next result here.
"""

from __future__ import annotations

import math
from array import array
from bisect import bisect_left
from collections.abc import Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from checks.phases import PHASES
from checks.result import Outcome, ProbeResult

CHECK_LABELS = ("client", "site", "check")
SITE_LABELS = ("client", "site")

_OUTCOMES = tuple(Outcome)
_OUTCOME_SLOT = {outcome: slot for slot, outcome in enumerate(_OUTCOMES)}
_NO_COUNTS = array("I", [0] * len(_OUTCOMES))
_NO_PHASES = array("d", [math.nan] * len(PHASES))
_PHASE_TEXT = [f',phase="{phase}"}} ' for phase in PHASES]
# Checks formatted per chunk of the exposition, so a scrape can let probes run in between.
CHUNK = 5000

_HELP = {
    "probe_success": "1 if the check's last probe succeeded (outcome ok), else 0.",
    "probe_http_status_code": "HTTP status of the check's last answer (0 when none arrived).",
    "probe_duration_seconds": "Wall time of the check's last measured probe: connect, "
    "request and the whole body.",
    "probe_ssl_earliest_cert_expiry": "When the check's TLS certificate expires (Unix time), "
    "from its last answer.",
    "probe_domain_expiry_timestamp_seconds": "When the check's domain registration expires "
    "(Unix time), from its last RDAP answer.",
    "probe_http_duration_seconds": "Duration of the check's last http probe by phase "
    "(resolve, connect, tls, processing, transfer), redirects included.",
    "monitor_heartbeat_run_seconds": "How long the heartbeat check's job last ran, from its "
    "start ping to its success ping.",
    "monitor_probe_results": "Probes completed, by check and outcome class.",
    "monitor_probe_duration_seconds": "Wall time of each probe (connect, request and the "
    "whole body), by site.",
}


def label_text(names: Sequence[str], values: Sequence[str]) -> str:
    """`name="value",...` as the text exposition format writes labels."""
    return ",".join(f'{name}="{_escape(value)}"' for name, value in zip(names, values, strict=True))


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _header(name: str, kind: str, help_name: str | None = None) -> str:
    text = _HELP[help_name or name].replace("\\", r"\\").replace("\n", r"\n")
    return f"# HELP {name} {text}\n# TYPE {name} {kind}\n"


def _number(value: float) -> str:
    return repr(float(value)) if value != math.inf else "+Inf"


class CheckMetrics(Collector):
    """The per-check series. `observe` once per probe result; `render` at scrape time."""

    def __init__(self, *, buckets: Sequence[float]) -> None:
        if list(buckets) != sorted(set(buckets)) or not buckets:
            raise ValueError(f"buckets must be distinct and increasing (got {buckets})")
        self._bounds = tuple(float(bound) for bound in buckets)
        self._le = [_number(bound) for bound in self._bounds] + ["+Inf"]
        self._slot: dict[str, int] = {}
        self._keys: list[str] = []  # split into label values only when collected
        self._labels: list[str] = []
        self._live = bytearray()  # 1 while the check's series are shown
        self._success = bytearray()
        self._status = array("l")
        self._duration = array("d")  # NaN: the last probe measured none
        self._cert = array("d")  # NaN: no certificate seen
        self._domain = array("d")  # NaN: no registration expiry seen
        self._phases = array("d")  # len(PHASES) per check; NaN: the last probe measured none
        self._run = array("d")  # NaN: no heartbeat run measured
        self._counts = array("I")  # len(_OUTCOMES) per check (2**32 probes: 136 years at 1/s)
        self._site_of = array("l")
        self._site_slot: dict[str, int] = {}
        self._site_values: list[tuple[str, str]] = []
        self._site_labels: list[str] = []
        self._site_buckets = array("Q")  # len(bounds) + 1 per site, not cumulative
        self._site_sum = array("d")
        self._omitted = False

    # -- writing ---------------------------------------------------------------------------

    def observe(self, key: str, result: ProbeResult) -> None:
        """Record one probe result of check `key` ("client/site/check")."""
        slot = self._slot.get(key)
        if slot is None:
            slot = self._add(key)
        evidence = result.evidence
        self._live[slot] = 1
        self._success[slot] = result.outcome is Outcome.OK
        self._status[slot] = evidence.status or 0
        latency = result.latency
        if latency is None:
            self._duration[slot] = math.nan
        else:
            self._duration[slot] = latency
            site = self._site_of[slot]
            width = len(self._bounds) + 1
            self._site_buckets[site * width + bisect_left(self._bounds, latency)] += 1
            self._site_sum[site] += latency
        self._counts[slot * len(_OUTCOMES) + _OUTCOME_SLOT[result.outcome]] += 1
        if evidence.tls_not_after is not None:
            self._cert[slot] = evidence.tls_not_after
        if evidence.domain_not_after is not None:
            self._domain[slot] = evidence.domain_not_after
        timings = evidence.timings
        base = slot * len(PHASES)
        for offset, phase in enumerate(PHASES):
            self._phases[base + offset] = timings.get(phase, math.nan)
        run = timings.get("run")
        if run is not None:
            self._run[slot] = run

    def forget(self, keys: Collection[str]) -> None:
        """Stop showing these checks' series (another process probes them now); the next
        result of one here shows its series again, counters where they were."""
        for key in keys:
            slot = self._slot.get(key)
            if slot is not None:
                self._live[slot] = 0

    def _add(self, key: str) -> int:
        client, site, check = key.split("/", 2)
        slot = len(self._keys)
        self._slot[key] = slot
        self._keys.append(key)
        self._labels.append(label_text(CHECK_LABELS, (client, site, check)))
        self._live.append(0)
        self._success.append(0)
        self._status.append(0)
        self._duration.append(math.nan)
        self._cert.append(math.nan)
        self._domain.append(math.nan)
        self._phases.extend(_NO_PHASES)
        self._run.append(math.nan)
        self._counts.extend(_NO_COUNTS)
        site_key = f"{client}/{site}"
        site_slot = self._site_slot.get(site_key)
        if site_slot is None:
            site_slot = self._site_slot[site_key] = len(self._site_values)
            self._site_values.append((client, site))
            self._site_labels.append(label_text(SITE_LABELS, (client, site)))
            self._site_buckets.extend(array("Q", bytes(8 * (len(self._bounds) + 1))))
            self._site_sum.append(0.0)
        self._site_of.append(site_slot)
        return slot

    # -- the text exposition ---------------------------------------------------------------

    def render(self) -> Iterator[bytes]:
        """The series in the Prometheus text format, in chunks of at most CHUNK checks."""
        live = [slot for slot in range(len(self._keys)) if self._live[slot]]
        chunks = [live[start : start + CHUNK] for start in range(0, len(live), CHUNK)]
        labels = self._labels
        gauges: tuple[tuple[str, Sequence[float] | bytearray, bool], ...] = (
            ("probe_success", self._success, False),
            ("probe_http_status_code", self._status, False),
            ("probe_duration_seconds", self._duration, True),
            ("probe_ssl_earliest_cert_expiry", self._cert, True),
            ("probe_domain_expiry_timestamp_seconds", self._domain, True),
            ("monitor_heartbeat_run_seconds", self._run, True),
        )
        for name, values, floats in gauges:
            yield _header(name, "gauge").encode()
            for chunk in chunks:
                if floats:
                    lines = [
                        f"{name}{{{labels[slot]}}} {values[slot]!r}\n"
                        for slot in chunk
                        if values[slot] == values[slot]  # NaN: nothing to show
                    ]
                else:
                    lines = [f"{name}{{{labels[slot]}}} {values[slot]}\n" for slot in chunk]
                yield "".join(lines).encode()
        yield _header("probe_http_duration_seconds", "gauge").encode()
        phases = self._phases
        for chunk in chunks:
            lines = []
            for slot in chunk:
                base = slot * len(PHASES)
                for offset in range(len(PHASES)):
                    value = phases[base + offset]
                    if value == value:  # NaN: not measured
                        lines.append(
                            f"probe_http_duration_seconds{{{labels[slot]}"
                            f"{_PHASE_TEXT[offset]}{value!r}\n"
                        )
            yield "".join(lines).encode()
        yield _header(
            "monitor_probe_results_total", "counter", help_name="monitor_probe_results"
        ).encode()
        width = len(_OUTCOMES)
        counts = self._counts
        outcome_text = [f',outcome="{outcome.value}"}} ' for outcome in _OUTCOMES]
        for chunk in chunks:
            lines = []
            for slot in chunk:
                base = slot * width
                for offset in range(width):
                    count = counts[base + offset]
                    if count:
                        lines.append(
                            f"monitor_probe_results_total{{{labels[slot]}"
                            f"{outcome_text[offset]}{count}\n"
                        )
            yield "".join(lines).encode()
        yield self._render_histogram().encode()

    def _render_histogram(self) -> str:
        name = "monitor_probe_duration_seconds"
        lines = [_header(name, "histogram")]
        width = len(self._bounds) + 1
        shown = {self._site_of[slot] for slot in range(len(self._keys)) if self._live[slot]}
        for site in sorted(shown):
            labels = self._site_labels[site]
            total = 0
            for offset in range(width):
                total += self._site_buckets[site * width + offset]
                lines.append(f'{name}_bucket{{{labels},le="{self._le[offset]}"}} {total}\n')
            lines.append(f"{name}_count{{{labels}}} {total}\n")
            lines.append(f"{name}_sum{{{labels}}} {self._site_sum[site]!r}\n")
        return "".join(lines)

    # -- the Collector protocol (registry reads, tests) ------------------------------------

    @contextmanager
    def omitted(self) -> Iterator[None]:
        """While in this context, `collect` yields nothing: a generic exposition of the
        registry leaves these series to `render`."""
        self._omitted = True
        try:
            yield
        finally:
            self._omitted = False

    def describe(self) -> Iterable[Metric]:
        return self._families(())

    def collect(self) -> Iterable[Metric]:
        if self._omitted:
            return []
        return self._families([slot for slot in range(len(self._keys)) if self._live[slot]])

    def _families(self, slots: Sequence[int]) -> list[Metric]:
        gauges = {
            name: GaugeMetricFamily(name, _HELP[name], labels=CHECK_LABELS)
            for name in (
                "probe_success",
                "probe_http_status_code",
                "probe_duration_seconds",
                "probe_ssl_earliest_cert_expiry",
                "probe_domain_expiry_timestamp_seconds",
                "monitor_heartbeat_run_seconds",
            )
        }
        phase_gauge = GaugeMetricFamily(
            "probe_http_duration_seconds",
            _HELP["probe_http_duration_seconds"],
            labels=(*CHECK_LABELS, "phase"),
        )
        results = CounterMetricFamily(
            "monitor_probe_results",
            _HELP["monitor_probe_results"],
            labels=(*CHECK_LABELS, "outcome"),
        )
        histogram = HistogramMetricFamily(
            "monitor_probe_duration_seconds",
            _HELP["monitor_probe_duration_seconds"],
            labels=SITE_LABELS,
        )
        width = len(_OUTCOMES)
        for slot in slots:
            values = self._keys[slot].split("/", 2)
            gauges["probe_success"].add_metric(values, self._success[slot])
            gauges["probe_http_status_code"].add_metric(values, self._status[slot])
            for name, series in (
                ("probe_duration_seconds", self._duration),
                ("probe_ssl_earliest_cert_expiry", self._cert),
                ("probe_domain_expiry_timestamp_seconds", self._domain),
                ("monitor_heartbeat_run_seconds", self._run),
            ):
                if not math.isnan(series[slot]):
                    gauges[name].add_metric(values, series[slot])
            for offset, phase in enumerate(PHASES):
                value = self._phases[slot * len(PHASES) + offset]
                if not math.isnan(value):
                    phase_gauge.add_metric([*values, phase], value)
            for offset, outcome in enumerate(_OUTCOMES):
                count = self._counts[slot * width + offset]
                if count:
                    results.add_metric([*values, outcome.value], count)
        bucket_width = len(self._bounds) + 1
        for site in sorted({self._site_of[slot] for slot in slots}):
            cumulative = []
            total = 0
            for offset in range(bucket_width):
                total += self._site_buckets[site * bucket_width + offset]
                cumulative.append((self._le[offset], float(total)))
            histogram.add_metric(
                list(self._site_values[site]), cumulative, sum_value=self._site_sum[site]
            )
        return [*gauges.values(), phase_gauge, results, histogram]

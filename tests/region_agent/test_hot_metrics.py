"""The request path's lock-free tallies are exposed as proper Prometheus counters and histograms."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from region_agent.hot_metrics import RequestTally
from region_agent.metrics import Metrics


def samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(metrics.registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_counts_and_latency_buckets_as_prometheus_reads_them() -> None:
    m = Metrics()
    tally = m.tally
    for seconds in (0.00003, 0.0003, 0.0003, 0.7, 5.0):
        tally.observe("Deduct", "OK", seconds)
    tally.observe("Deduct", "INSUFFICIENT", 0.001)
    m.served_local("Deduct")
    m.served_local("DeductBatch", 100)
    m.served_forwarded("Deduct")
    got = samples(m)
    assert got[("quota_region_agent_requests_total", (("code", "OK"), ("method", "Deduct")))] == 5
    assert got[("quota_region_agent_requests_total", (("code", "INSUFFICIENT"), ("method", "Deduct")))] == 1

    def bucket(le: str) -> float:
        return got[("quota_region_agent_request_seconds_bucket", (("le", le), ("method", "Deduct")))]

    # Cumulative, as a histogram's buckets are: le="5e-05" holds 0.00003; 0.0005 adds the two
    # 0.0003; 0.001 adds the 0.001 (le is inclusive); 1.0 adds 0.7; +Inf the 5 s.
    assert [bucket(le) for le in ("5e-05", "0.0002", "0.0005", "0.001", "0.5", "1.0", "+Inf")] == [
        1,
        1,
        3,
        4,
        4,
        5,
        6,
    ]
    assert got[("quota_region_agent_request_seconds_count", (("method", "Deduct"),))] == 6
    assert abs(got[("quota_region_agent_request_seconds_sum", (("method", "Deduct"),))] - 5.70163) < 1e-9
    assert got[("quota_region_agent_served_total", (("method", "DeductBatch"), ("where", "local")))] == 100
    assert got[("quota_region_agent_served_total", (("method", "Deduct"), ("where", "forwarded")))] == 1


def test_bucket_bounds_are_written_as_prometheus_client_writes_them() -> None:
    bounds = (0.00005, 0.001, 0.5, 1.0, 10.0)
    reference = CollectorRegistry()
    Histogram("h_seconds", "h", buckets=bounds, registry=reference).observe(0.2)
    want = sorted(s.labels["le"] for f in reference.collect() for s in f.samples if "le" in s.labels)
    tally = RequestTally(bounds)
    tally.observe("X", "OK", 0.2)
    got = sorted(s.labels["le"] for f in tally.collect() for s in f.samples if "le" in s.labels)
    assert got == want

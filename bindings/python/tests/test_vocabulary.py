"""The metric vocabulary (sdk/src/telemetry/metrics.json) that C++, .NET and Python share:
the OpenTelemetry instruments made through the API (a stand-in: Debian has no
opentelemetry package), and the Prometheus text export."""

from __future__ import annotations

import json
import pathlib
import re

import pytest

import tollgate
from tollgate import _telemetry, prometheus

VOCABULARY = json.loads((pathlib.Path(__file__).resolve().parents[3] / "sdk" / "src" / "telemetry"
                         / "metrics.json").read_text())
METRICS = {m["name"]: m for m in VOCABULARY["metrics"]}


def test_the_instruments_are_the_vocabularys(fake_otel, make_limiter):
    make_limiter()  # the instruments are made with the first limiter
    got = {i.name: (i.kind, i.unit, i.description) for i in fake_otel.instruments.values()}
    want = {m["name"]: (m["instrument"], m["unit"], m["description"]) for m in METRICS.values()}
    assert got == want
    assert fake_otel.meters[0][0] == VOCABULARY["meter"]


def test_observations_carry_the_vocabularys_attributes_and_no_key(fake_otel, make_limiter, key):
    lim = make_limiter()
    assert lim.acquire(key, 1, timeout=20).allowed
    lim.try_acquire("nobody:" + key)
    seen = 0
    for name, instrument in fake_otel.instruments.items():
        if instrument.kind == "histogram":
            continue
        for value, attributes in instrument.observe():
            seen += 1
            assert value >= 0, name
            assert sorted(attributes) == sorted(METRICS[name]["attributes"]), name
            for k, v in attributes.items():
                assert key.split(":", 1)[1] not in str(v)
                values = VOCABULARY["attributes"][k]["values"]
                assert not values or v in values, (name, k, v)
    assert seen >= len(METRICS) - 2  # all but the histogram and (no shards here) breaker state


def test_counters_read_the_native_counters(fake_otel, make_limiter, key):
    lim = make_limiter()
    assert lim.acquire(key, 1, timeout=20).allowed
    for name, _unit, _description, stat in _telemetry.COUNTERS + _telemetry.GAUGES:
        (value, _), = fake_otel.instruments[name].observe()
        assert value == sum(s[stat] for s in _telemetry._live_stats()), name


FAMILY = re.compile(r"^# TYPE (\S+) (counter|gauge|histogram)$", re.M)


def test_prometheus_text_has_the_vocabularys_families(make_limiter, key):
    lim = make_limiter()
    lim.try_acquire("nobody:" + key)
    text = lim.prometheus_text()
    families = dict(FAMILY.findall(text))
    kinds = {"counter": "counter", "updowncounter": "gauge", "histogram": "histogram"}
    assert families == {m["prometheus"]: kinds[m["instrument"]] for m in METRICS.values()}
    assert ('tollgate_decisions_total{tollgate_result="denied",tollgate_reason="no_policy",'
            'tollgate_policy="other"} 1\n') in text
    assert key.split(":", 1)[1] not in text
    assert prometheus.generate_latest(lim) == text.encode()


def test_prometheus_wsgi_app_serves_the_text(make_limiter):
    lim = make_limiter()
    calls = []
    body = b"".join(prometheus.make_wsgi_app(lim)({"REQUEST_METHOD": "GET"},
                                                  lambda status, headers: calls.append((status, headers))))
    status, headers = calls[0]
    assert status == "200 OK"
    assert dict(headers)["Content-Type"] == prometheus.CONTENT_TYPE_LATEST
    assert b"# TYPE tollgate_decisions_total counter\n" in body
    lim.close()
    with pytest.raises(tollgate.LimiterClosedError):
        lim.prometheus_text()


def test_decisions_per_policy_and_no_tenant_id_in_the_policy_value(fake_otel, make_limiter, redis_url, key):
    """tollgate.policy: a policy's own name; a per-tenant override without one (its name is its
    match, a tenant key) counts under "other", as does a key no policy matches."""
    tenant = key.split(":", 1)[1]
    store = {"type": "redis", "shards": [redis_url]}
    lim = make_limiter(config={"store": store, "policies": [
        {"name": "standard", "match": "tenant:*", "type": "token_bucket", "rate": 100, "burst": 100},
        {"match": "tenant:" + tenant + "-vip", "type": "token_bucket", "rate": 100, "burst": 100}]})
    assert lim.acquire(key, 1, timeout=20).allowed
    assert lim.acquire(key + "-vip", 1, timeout=20).allowed
    for _ in range(4):
        lim.try_acquire(key)
    lim.try_acquire("nobody:" + key)
    policies = {p["name"]: p for p in lim.stats()["policies"]}
    assert list(policies) == ["other", "standard"]
    assert policies["standard"]["admitted"] >= 1
    assert policies["other"]["admitted"] >= 1  # the override's
    assert policies["other"]["denied"]["no_policy"] == 1
    s = lim.stats()
    assert sum(p["admitted"] for p in s["policies"]) == s["admitted"]
    assert sum(sum(p["denied"].values()) for p in s["policies"]) == s["denied_total"]

    observed = fake_otel.instruments["tollgate.decisions"].observe()
    assert all(tenant not in a["tollgate.policy"] for _, a in observed)
    mine = {(a["tollgate.policy"], a["tollgate.result"], a["tollgate.reason"]): v for v, a in observed}
    live = _telemetry._live_stats()
    assert mine[("standard", "admitted", "ok")] == sum(
        p["admitted"] for s in live for p in s["policies"] if p["name"] == "standard")
    assert mine[("other", "denied", "no_policy")] >= 1
    tokens = {a["tollgate.policy"]: v for v, a in fake_otel.instruments["tollgate.tokens.admitted"].observe()}
    assert tokens["standard"] == sum(p["admitted_tokens"] for s in live for p in s["policies"]
                                     if p["name"] == "standard")
    assert tokens["standard"] >= 1

    text = lim.prometheus_text()
    assert tenant not in text
    assert 'tollgate_decisions_total{tollgate_result="admitted",tollgate_reason="ok",tollgate_policy="standard"}' in text

import gc
import json
import os
import pathlib

import pytest

import tollgate
from conftest import exhaust, redis_config, wait_until, warm


def test_package_is_typed_and_private_native_module():
    pkg = pathlib.Path(tollgate.__file__).parent
    assert (pkg / "py.typed").exists()
    assert (pkg / "_native.pyi").exists()
    assert set(tollgate.__all__) >= {"Limiter", "Decision", "RateLimitExceeded", "ConfigError",
                                     "WSGIMiddleware", "ASGIMiddleware"}
    for name in tollgate.__all__:
        assert hasattr(tollgate, name), name
    assert tollgate._native.version == tollgate.__version__


def test_decisions_over_redis(make_limiter, key):
    lim = make_limiter(rate=1, burst=5)
    warm(lim, key)
    d = lim.try_acquire(key)
    assert isinstance(d, tollgate.Decision)
    over = exhaust(lim, key)
    assert not over and over.allowed is False
    assert over.reason == "over_limit"
    assert over.retry_after > 0.0
    assert isinstance(over.retry_after, float)
    assert over.reason in tollgate.REASONS
    assert "over_limit" in repr(over)
    assert lim.stats()["denied"]["over_limit"] >= 1


def test_cold_key_no_policy_and_invalid_cost(make_limiter, key):
    lim = make_limiter()
    # Deny mode: no lease yet. (The first sight asks for the lease before spending, so on
    # a loaded machine the lease may already be there: then it is admitted.)
    assert lim.try_acquire(key).reason in ("cold_key", "ok")
    assert lim.try_acquire("nobody:matches").reason == "no_policy"
    assert lim.try_acquire(key, 0).reason == "invalid_argument"
    assert lim.try_acquire(key, 10_000).reason == "invalid_argument"  # above burst
    with pytest.raises(ValueError):
        lim.try_acquire(key, -1)
    with pytest.raises(TypeError):
        lim.try_acquire(42)


def test_over_long_and_unmatched_keys_create_no_state(make_limiter, redis_url, key):
    lim = make_limiter(config={**redis_config(redis_url), "max_key_length": 64})
    long = (key + ":" + "x" * 64)[:65]
    assert lim.try_acquire(long).reason == "invalid_argument"
    assert lim.acquire(long, 1, timeout=0.01).reason == "invalid_argument"
    assert lim.try_acquire("tenant:" + "y" * 600).reason == "invalid_argument"
    for i in range(1000):
        assert lim.try_acquire(f"nobody:{i}").reason == "no_policy"
    assert lim.stats()["keys_tracked"] == 0
    # Any string within the bound is a key of its own.
    odd = (key + ":{}\r\n\x00\u00ff")[:60]
    assert lim.try_acquire(odd).reason in ("cold_key", "ok")
    assert lim.stats()["keys_tracked"] == 1


def test_decision_values(make_limiter, key):
    lim = make_limiter()
    warm(lim, key)
    d = lim.try_acquire(key=key, cost=2)
    assert d and d.allowed and d.reason == "ok" and d.retry_after == 0.0
    assert isinstance(d.remaining, int)
    assert d == d and hash(d) == hash(d)
    with pytest.raises(TypeError):
        tollgate.Decision()
    assert lim.try_acquire(key.encode()).allowed  # bytes keys too


def test_config_forms(tmp_path, redis_url, key):
    cfg = redis_config(redis_url)
    path = tmp_path / "tollgate.json"
    path.write_text(json.dumps(cfg))
    for source in (cfg, json.dumps(cfg), str(path), path, json.dumps(cfg).encode()):
        with tollgate.Limiter.from_config(source) as lim:
            assert lim.acquire(key, 1, timeout=20).allowed
        assert lim.closed


@pytest.mark.parametrize("config, field", [
    ({"policies": [{"match": "tenant:*", "type": "token_bucket", "rate": -1}]}, "policies[0].rate"),
    ({"policies": [{"match": "tenant:*", "type": "token_bucket", "rat": 1}]}, "policies[0].rat"),
    ({"leases": {"ttl_ms": "2s"}, "policies": [{"match": "*", "type": "token_bucket", "rate": 1}]},
     "leases.ttl_ms"),
    ({"store": {"type": "redis"}, "policies": [{"match": "*", "type": "token_bucket", "rate": 1}]},
     "store.shards"),
    ({"store": {"type": "redis_cluster"},
      "policies": [{"match": "*", "type": "token_bucket", "rate": 1}]}, "store.nodes"),
    ({"store": {"type": "redis_cluster", "nodes": ["redis://h:7000/1"]},
      "policies": [{"match": "*", "type": "token_bucket", "rate": 1}]}, "store.nodes[0]"),
    ('{"policies": [}', "$"),
])
def test_bad_config_raises_value_error_naming_the_field(config, field):
    with pytest.raises(ValueError) as info:
        tollgate.Limiter.from_config(config)
    assert isinstance(info.value, tollgate.ConfigError)
    assert info.value.field == field
    assert field in str(info.value)
    assert info.value.reason


def test_a_cluster_store_from_a_dict():
    # Nothing listens on the node: the limiter is made all the same (the slot map is read
    # in the background) and its keys fall back.
    cfg = {"store": {"type": "redis_cluster", "nodes": ["redis://127.0.0.1:1"],
                     "wait_replicas": 1, "connect_timeout_ms": 100},
           "policies": [{"match": "*", "type": "token_bucket", "rate": 1}]}
    with tollgate.Limiter.from_config(cfg) as lim:
        assert not lim.closed


def test_unreadable_config_file(tmp_path):
    with pytest.raises(tollgate.ConfigError) as info:
        tollgate.Limiter.from_config(tmp_path / "missing.json")
    assert info.value.field == "config_file"
    with pytest.raises(TypeError):
        tollgate.Limiter.from_config(42)


def test_stats_is_a_dict(make_limiter, key):
    lim = make_limiter()
    warm(lim, key)
    s = lim.stats()
    assert s["admitted"] >= 1 and s["leases_granted"] >= 1 and s["keys_tracked"] >= 1
    assert set(s["denied"]) == set(tollgate.REASONS)
    assert s["breakers"] == ["closed"]
    assert s["denied_total"] == sum(s["denied"].values())


def test_closed_limiter(make_limiter, key):
    lim = make_limiter()
    lim.close()
    lim.close()  # idempotent
    assert lim.closed and "closed" in repr(lim)
    for call in (lambda: lim.try_acquire(key), lambda: lim.acquire(key), lim.stats,
                 lambda: lim.acquire_permit(key)):
        with pytest.raises(tollgate.LimiterClosedError):
            call()
    assert lim.cancel(1) is False


def test_permits_as_context_managers(redis_url):
    lim = tollgate.Limiter({
        "store": {"type": "redis", "shards": [redis_url]},
        "leases": {"max_fraction": 1},
        "policies": [{"match": "gpu:*", "type": "concurrency", "limit": 4}]})
    try:
        key = "gpu:" + os.urandom(6).hex()
        wait_until(lambda: lim.acquire_permit(key, 4))  # first sight is cold; then leased
        with lim.permit(key, 3) as p:
            assert p.held and p.count == 3 and p.key == key and p.decision.allowed
            with pytest.raises(tollgate.RateLimitExceeded) as info:
                with lim.permit(key, 2):
                    pytest.fail("ran without permits")
            assert info.value.key == key
            assert info.value.reason != "ok"
        assert not p.held  # returned on leaving the block
        with lim.permit(key, 4):
            pass
        held = lim.acquire_permit(key, 1)
        assert held and held.held
        held.release()
        held.release()  # idempotent
        assert not held.held
        dropped = lim.acquire_permit(key, 4)
        assert dropped.held
        del dropped  # collected: the permits go back
        gc.collect()
        assert lim.acquire_permit(key, 4).allowed
        lim.close()
        assert held.decision.allowed  # a permit outlives its closed limiter harmlessly
    finally:
        lim.close()


def test_a_key_resolved_once_shares_the_keys_quota(make_limiter, key):
    lim = make_limiter(rate=1, burst=5)
    k = lim.key(key)
    assert isinstance(k, tollgate.Key)
    assert k.key == key and not k.closed and key in repr(k)
    warm(lim, key)
    admitted = lim.stats()["admitted"]
    by_key = wait_until(lambda: [d] if (d := k.try_acquire(cost=1)) else None)[0]
    assert by_key.allowed and lim.stats()["admitted"] == admitted + 1
    over = exhaust(lim, key)  # by name: the Key sees the same spent quota
    assert not over
    spent = k.try_acquire()
    assert not spent and spent.reason == "over_limit"
    assert k.try_acquire(0).reason == "invalid_argument"
    with pytest.raises(TypeError):
        k.try_acquire("1")
    with pytest.raises(TypeError):
        k.try_acquire(1, 2)
    with pytest.raises(TypeError):
        k.try_acquire(price=1)
    lim.close()
    assert k.closed
    with pytest.raises(tollgate.LimiterClosedError):
        k.try_acquire()

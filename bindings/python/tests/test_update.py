import uuid

import pytest

import tollgate
from conftest import redis_config, wait_until


def drain(lim: tollgate.Limiter, key: str) -> int:
    n = 0
    while lim.acquire(key, 1, timeout=0.3):
        n += 1
    return n


def test_update_config_applies_a_new_limit_and_refuses_a_bad_one(make_limiter, redis_url, key):
    name = "update-" + uuid.uuid4().hex[:8]
    cfg = redis_config(redis_url, name=name + "-a", rate=0.001, burst=20)
    lim = make_limiter(config=cfg)
    assert drain(lim, key) == 20

    lim.update_config(redis_config(redis_url, name=name + "-b", rate=0.001, burst=35))
    assert lim.stats()["config_updates"] == 1
    wait_until(lambda: lim.stats()["keys_moved"] >= 1)
    assert drain(lim, key) == 35

    with pytest.raises(tollgate.ConfigError) as e:
        lim.update_config(redis_config(redis_url, name=name + "-c", rate=-1))
    assert "policies[0].rate" in str(e.value)
    with pytest.raises(tollgate.ConfigError) as e:
        lim.update_config(redis_config("redis://127.0.0.1:1", name=name + "-c"))
    assert "store" in str(e.value)
    s = lim.stats()
    assert s["config_updates"] == 1 and s["config_rejected"] == 2
    assert not lim.try_acquire(key)  # still the 35 of "-b", all spent

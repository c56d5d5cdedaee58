import asyncio

import pytest

import tollgate
from conftest import exhaust, warm


def test_decorator_spends_from_the_templated_key(make_limiter, key):
    lim = make_limiter()
    tenant = key.split(":", 1)[1]
    warm(lim, key)
    calls = []

    @lim.limit("tenant:{tenant_id}", cost=lambda tenant_id, prompt, units=1: units)
    def infer(tenant_id: str, prompt: str, units: int = 1) -> str:
        calls.append((tenant_id, units))
        return prompt.upper()

    assert infer.__name__ == "infer"
    assert infer(tenant, "hi") == "HI"
    assert infer(tenant_id=tenant, prompt="x", units=3) == "X"
    assert calls == [(tenant, 1), (tenant, 3)]
    assert lim.stats()["admitted_tokens"] >= 1 + 1 + 3


def test_decorator_raises_rate_limit_exceeded(make_limiter, key):
    lim = make_limiter(rate=0.001, burst=1)
    warm(lim, key)
    exhaust(lim, key)
    ran = []

    @lim.limit(key)
    def work() -> None:
        ran.append(1)

    with pytest.raises(tollgate.RateLimitExceeded) as info:
        work()
    assert not ran
    assert info.value.key == key
    assert info.value.reason == "over_limit"
    assert info.value.retry_after > 0
    assert isinstance(info.value, tollgate.TollgateError)


def test_decorator_on_coroutines_and_kwargs(make_limiter, key):
    lim = make_limiter()
    tenant = key.split(":", 1)[1]

    @lim.limit("tenant:{tenant}", timeout=20)  # waits for the first lease
    async def handler(**kwargs: str) -> str:
        return kwargs["tenant"]

    assert asyncio.run(handler(tenant=tenant)) == tenant

    lim2 = make_limiter(rate=0.001, burst=1)
    key2 = key + "-2"
    warm(lim2, key2)
    exhaust(lim2, key2)

    @lim2.limit(key2)
    async def denied() -> None:
        pytest.fail("ran although denied")

    with pytest.raises(tollgate.RateLimitExceeded):
        asyncio.run(denied())

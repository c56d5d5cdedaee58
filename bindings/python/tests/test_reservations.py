"""Reservations (Limiter.reserve, reserve_async, Reservation.settle) against a real
redis-server, through the installed package: refunds, extra charges and debt, `with`,
bad input that changes nothing, and the asyncio form."""

import asyncio

import pytest

import tollgate
from conftest import warm


def test_settling_under_the_estimate_refunds_the_rest(make_limiter, key):
    lim = make_limiter(rate=100, burst=100)
    warm(lim, key)
    with lim.reserve(key, 50, timeout=20) as r:
        assert isinstance(r, tollgate.Reservation)
        assert r.allowed and r.pending and r.estimate == 50
        s = r.settle(10)
        assert s["charged"] == 10
        assert s["refunded"] + s["dropped"] == 40
        assert s["debt"] == 0 and s["uncharged"] == 0
        assert not r.pending
    st = lim.stats()
    assert st["reserved"] == 1 and st["settled_under"] == 1 and st["settled_over"] == 0


def test_a_with_block_left_unsettled_settles_at_the_estimate(make_limiter, key):
    lim = make_limiter(rate=100, burst=100)
    warm(lim, key)
    with lim.reserve(key, 20, timeout=20) as r:
        pass
    assert not r.pending
    st = lim.stats()
    assert st["reserved"] == 1 and st["settled_under"] == 0 and st["settled_over"] == 0


def test_bad_estimates_are_denied_and_bad_actuals_change_nothing(make_limiter, key):
    lim = make_limiter(rate=100, burst=100)
    warm(lim, key)
    for estimate in (0, 101):
        r = lim.reserve(key, estimate)
        assert not r and not r.pending
        assert r.decision.reason == "invalid_argument"
        with pytest.raises(tollgate.RateLimitExceeded):
            with lim.reserve(key, estimate):
                pytest.fail("the body runs only with the estimate held")
    with pytest.raises(TypeError):
        lim.reserve(key, -1)
    r = lim.reserve(key, 5, timeout=20)
    assert r.pending
    with pytest.raises(ValueError):
        r.settle(2**60)
    assert r.pending, "a refused settle leaves the reservation as it was"
    assert r.settle(5)["charged"] == 5
    with pytest.raises(ValueError):
        r.settle(5)
    assert lim.stats()["reserved"] == 1


def test_an_over_settle_beyond_the_bucket_leaves_the_key_in_debt(make_limiter, key):
    # The bucket holds 100 in all (it refills 1 token in 1000 s): an extra of 1000 is debt
    # that no lease can pay, so the key stays in_debt.
    lim = make_limiter(rate=0.001, burst=100, max_overage=1000)
    warm(lim, key)
    r = lim.reserve(key, 5, timeout=20)
    assert r
    s = r.settle(2000)
    assert s["charged"] == 1005 and s["uncharged"] == 995
    assert s["debt"] >= 900
    d = lim.try_acquire(key)
    assert not d.allowed and d.reason == "in_debt" and d.retry_after > 0
    st = lim.stats()
    assert st["settled_over"] == 1 and st["debt_tokens"] >= 900
    assert st["denied"]["in_debt"] >= 1


def test_reserve_async_waits_without_blocking_the_loop(make_limiter, key):
    lim = make_limiter(rate=100, burst=100)

    async def main() -> list[dict[str, int]]:
        # Cold key: the first completes on the SDK thread when the lease arrives.
        first = await lim.reserve_async(key, 10, timeout=20)
        rest = await asyncio.gather(*(lim.reserve_async(key, 1, timeout=20) for _ in range(5)))
        assert first and all(rest)
        return [r.settle(0) for r in (first, *rest)]

    settled = asyncio.run(main())
    assert [s["charged"] for s in settled] == [0] * 6
    assert lim.stats()["reserved"] == 6

"""Reservations (Limiter.reserve, reserve_async, Reservation.settle) against a real
redis-server, through the installed package: refunds, extra charges and debt, `with`,
bad input that changes nothing, and the asyncio form."""

import asyncio
import time

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


def test_the_middleware_reserves_an_estimate_and_settles_what_the_response_names(make_limiter, key):
    lim = make_limiter(rate=100, burst=1000)
    warm(lim, key)

    def app(environ, start_response):
        used = environ.get("QUERY_STRING", "")
        headers = [("Content-Type", "text/plain")]
        if used.startswith("used="):
            headers.append((tollgate.middleware.ACTUAL_COST_HEADER, used[5:]))
        assert environ["tollgate.reservation"].pending
        start_response("200 OK", headers)
        return [b"ok"]

    wsgi = tollgate.WSGIMiddleware(app, lim, key=lambda environ: key, estimate=50)

    def call(query: str) -> str:
        seen: list[str] = []
        body = b"".join(wsgi({"QUERY_STRING": query}, lambda status, headers, *exc: seen.append(status)))
        assert body in (b"ok", b"Too Many Requests\n")
        return seen[0]

    def served(query: str) -> str:  # reserving never waits: retry while the lease is on its way
        for _ in range(2000):
            status = call(query)
            if not status.startswith("429"):
                return status
            time.sleep(0.005)
        return status

    assert served("used=5").startswith("200")    # settled under: 45 back
    assert served("used=80").startswith("200")   # settled over
    assert served("").startswith("200")          # no header: at the estimate
    st = lim.stats()
    assert st["reserved"] == 3 and st["settled_under"] == 1 and st["settled_over"] == 1

    async def asgi_app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"tollgate-actual-cost", b"7")]})
        await send({"type": "http.response.body", "body": b"ok"})

    asgi = tollgate.ASGIMiddleware(asgi_app, lim, key=lambda scope: key, estimate=lambda scope: 20)
    sent: list[dict] = []

    async def main() -> None:
        async def send(message):
            sent.append(message)

        async def receive():
            return {"type": "http.request"}
        for _ in range(2000):
            sent.clear()
            await asgi({"type": "http", "headers": []}, receive, send)
            if sent[0]["status"] == 200:
                return
            await asyncio.sleep(0.005)

    asyncio.run(main())
    assert sent[0]["status"] == 200
    assert lim.stats()["settled_under"] == 2

import asyncio
import gc
import logging

import pytest

import tollgate
from conftest import exhaust, redis_config, warm


def test_acquire_async_admits(make_limiter, key):
    lim = make_limiter()

    async def main() -> list[tollgate.Decision]:
        # Cold key: the first completes on the SDK thread when the lease arrives.
        first = await lim.acquire_async(key, 1, timeout=20)
        rest = await asyncio.gather(*(lim.acquire_async(key, 1, timeout=20) for _ in range(20)))
        return [first, *rest]

    decisions = asyncio.run(main())
    assert all(d.allowed for d in decisions), decisions


def test_acquire_async_decided_at_once_does_not_wake_the_loop(make_limiter, key):
    lim = make_limiter(rate=1000, burst=1000)
    warm(lim, key)

    async def main() -> tuple[list[tollgate.Decision], int]:
        loop = asyncio.get_running_loop()
        wakeups = 0
        real = loop.call_soon_threadsafe

        def counting(*args, **kwargs):  # noqa: ANN002, ANN003
            nonlocal wakeups
            wakeups += 1
            return real(*args, **kwargs)

        loop.call_soon_threadsafe = counting  # type: ignore[method-assign]
        decisions = [await lim.acquire_async(key, 1, timeout=20) for _ in range(50)]
        return decisions, wakeups

    decisions, wakeups = asyncio.run(main())
    allowed = [d for d in decisions if d.allowed]
    assert allowed, decisions
    # An admission decided at once comes back without a trip through the loop's self-pipe;
    # only a wait for a refill takes one (before: one for every call).
    assert wakeups < len(allowed) // 2, (wakeups, decisions)


def test_acquire_async_times_out(make_limiter, key):
    lim = make_limiter(rate=0.001, burst=1)
    warm(lim, key)
    exhaust(lim, key)
    d = asyncio.run(lim.acquire_async(key, 1, timeout=0.05))
    assert not d.allowed and d.reason == "timeout"


class SpyLimiter(tollgate.Limiter):
    def __init__(self, config):
        super().__init__(config)
        self.cancelled: list[bool] = []

    def cancel(self, wait_id: int) -> bool:
        ok = super().cancel(wait_id)
        self.cancelled.append(ok)
        return ok


def test_cancelling_the_task_cancels_the_native_wait(redis_url, key):
    config = redis_config(redis_url, rate=0.001, burst=1)
    config["max_waiters_per_key"] = 1
    with SpyLimiter(config) as lim:
        warm(lim, key)
        exhaust(lim, key)

        async def main() -> tollgate.Decision:
            task = asyncio.create_task(lim.acquire_async(key, 1, timeout=600))
            await asyncio.sleep(0)  # the task runs up to its await: the wait is queued
            assert not task.done()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            # The one waiter slot is free again: a new wait times out instead of queue_full.
            return await lim.acquire_async(key, 1, timeout=0.05)

        d = asyncio.run(main())
        assert lim.cancelled == [True]
        assert d.reason == "timeout"


def test_wait_for_timeout_cancels_too(redis_url, key):
    with SpyLimiter(redis_config(redis_url, rate=0.001, burst=1)) as lim:
        warm(lim, key)
        exhaust(lim, key)

        async def main() -> None:
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(lim.acquire_async(key, 1), 0.05)

        asyncio.run(main())
        assert lim.cancelled == [True]


def test_close_completes_pending_async_waits(make_limiter, key):
    lim = make_limiter(rate=0.001, burst=1)
    warm(lim, key)
    exhaust(lim, key)

    async def main() -> tollgate.Decision:
        task = asyncio.create_task(lim.acquire_async(key, 1, timeout=600))
        await asyncio.sleep(0)
        lim.close()
        return await task

    d = asyncio.run(main())
    assert d.reason == "shutdown"


def test_completion_after_the_loop_closed_is_harmless(make_limiter, key):
    lim = make_limiter(rate=0.001, burst=1)
    warm(lim, key)
    exhaust(lim, key)
    loop = asyncio.new_event_loop()
    task = loop.create_task(lim.acquire_async(key, 1, timeout=0.2))
    loop.run_until_complete(asyncio.sleep(0))
    loop.close()  # the task never completes; the SDK's completion must not crash
    lim.close()
    quiet = logging.getLogger("asyncio")
    quiet.disabled = True  # "Task was destroyed but it is pending!" is expected here
    try:
        del task
        gc.collect()
    finally:
        quiet.disabled = False

"""The Limiter: the native one, plus what makes it feel like Python (configs from dicts,
files or JSON text, asyncio, the decorator, context managers, closing at exit)."""

from __future__ import annotations

import asyncio
import atexit
import functools
import inspect
import json
import os
import string
import weakref
from typing import Any, Awaitable, Callable, Mapping, Optional, TypeVar, Union, cast

from . import _native, _telemetry
from ._errors import RateLimitExceeded
from ._native import Decision

__all__ = ["Limiter", "ConfigSource"]

ConfigSource = Union[Mapping[str, Any], str, bytes, "os.PathLike[str]"]
F = TypeVar("F", bound=Callable[..., Any])

# Every open limiter, so that the atexit hook can stop their threads before the
# interpreter finalizes (an SDK thread waiting for the GIL then would never return).
_open: "weakref.WeakSet[Limiter]" = weakref.WeakSet()


def _config_source(config: ConfigSource) -> tuple[str, bool]:
    """(JSON text or path, is_path) for any of the accepted config forms."""
    if isinstance(config, Mapping):
        return json.dumps(config), False
    if isinstance(config, os.PathLike):
        return os.fspath(config), True
    if isinstance(config, (bytes, bytearray)):
        return bytes(config).decode("utf-8"), False
    if isinstance(config, str):
        # JSON text is an object; anything else is a path to a JSON file.
        return (config, False) if config.lstrip().startswith("{") else (config, True)
    raise TypeError(f"config must be a dict, a path or JSON text, not {type(config).__name__}")


def _resolve(fut: "asyncio.Future[Any]", result: Any,
             orphan: Optional[Callable[[Any], Any]] = None) -> None:
    if not fut.done():
        fut.set_result(result)
    elif orphan is not None:  # cancelled meanwhile: nobody takes it
        orphan(result)


class Limiter(_native.Limiter):
    """Admits or denies requests against global quotas from locally held leases.

    Thread-safe. ``try_acquire`` never blocks; ``acquire`` waits with the GIL released;
    ``acquire_async`` waits without blocking the event loop. Close it (or use it as a
    context manager) to give unspent tokens back at once; it is closed at exit anyway.
    """

    def __init__(self, config: ConfigSource) -> None:
        text, is_path = _config_source(config)
        otel = _telemetry.otel()
        super().__init__(text, is_path, _telemetry.Sink(otel), otel is not None)
        _open.add(self)
        _telemetry.track(self)

    @classmethod
    def from_config(cls, config: ConfigSource) -> "Limiter":
        """A limiter from a dict, a path to a JSON file, or JSON text.
        Raises ``ConfigError`` (a ``ValueError``) naming the first invalid field."""
        return cls(config)

    def update_config(self, config: ConfigSource) -> None:
        """Swaps in another config while the limiter runs (a dict, a path or JSON text):
        policies, groups, cold keys, leases and fallbacks may change; ``store``, ``max_keys``
        and ``instance_id`` may not. Raises ``ConfigError`` naming the field, and the running
        config stays. Keys move to their new policies on the SDK's thread."""
        text, is_path = _config_source(config)
        self._update(text, is_path)

    def __enter__(self) -> "Limiter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"instance_id={self.instance_id!r}"
        return f"<tollgate.Limiter {state}>"

    def prometheus_text(self) -> str:
        """The limiter's metrics in the Prometheus text format 0.0.4, in the metric
        vocabulary of every binding (docs/observability.md): the native exposition, the
        same text as C++'s ``tollgate::prometheus_text``. ``tollgate.prometheus`` serves it."""
        return self._prometheus_text()

    def permit(self, key: str, count: int = 1) -> _native.Permit:
        """Takes ``count`` concurrency permits without waiting. As a context manager it
        raises ``RateLimitExceeded`` when they were not granted, and returns them on exit."""
        return self.acquire_permit(key, count)

    def acquire(self, key: str, cost: int = 1, timeout: Optional[float] = None) -> Decision:
        """Waits up to ``timeout`` seconds (None: until decided) for tokens, first in first
        out per key, with the GIL released. Ctrl-C cancels the wait."""
        if _telemetry.otel() is None:
            return super().acquire(key, cost, timeout)
        with _telemetry.span("tollgate.acquire", cost) as span:
            decision = super().acquire(key, cost, timeout)
            _telemetry.end_span(span, decision)
        return decision

    async def acquire_async(self, key: str, cost: int = 1,
                            timeout: Optional[float] = None) -> Decision:
        """Waits up to ``timeout`` seconds (None: until decided) without blocking the loop.
        Cancelling the awaiting task cancels the wait in the SDK."""
        with _telemetry.span("tollgate.acquire", cost) as span:
            decision = await self._wait(
                lambda done: self._acquire_async(key, cost, timeout, done))
            _telemetry.end_span(span, decision)
        return decision

    def reserve(self, key: str, estimate: int,
                timeout: Optional[float] = None) -> _native.Reservation:
        """Holds ``estimate`` tokens for a request whose cost is known only when it ends
        (docs/quotas.md, "Estimated costs"); ``r.settle(actual)`` charges the actual cost.
        ``timeout`` None never blocks; else waits that long at most, with the GIL released.
        As a context manager it raises ``RateLimitExceeded`` when denied, and settles an
        unsettled reservation at the estimate on exit."""
        return super().reserve(key, estimate, timeout)

    async def reserve_async(self, key: str, estimate: int,
                            timeout: Optional[float] = None) -> _native.Reservation:
        """``reserve`` waiting up to ``timeout`` seconds (None: until decided) without
        blocking the loop. Cancelling the awaiting task cancels the wait; a reservation
        granted as it is cancelled is settled at 0."""
        return await self._wait(
            lambda done: self._reserve_async(key, estimate, timeout, done),
            orphan=lambda r: r.settle(0) if r.pending else None)

    async def _wait(self, start: Callable[[Callable[[Any], None]], int],
                    orphan: Optional[Callable[[Any], Any]] = None) -> Any:
        """Runs a native wait (``start(done)`` returns its id, 0 when done already) and
        returns what ``done`` was given; ``orphan`` gets a result nobody awaits any more."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        # Until start() has returned, a result is handed over here rather than through the
        # loop: decided at once (the usual case, a warm key) it needs no wake-up of the loop
        # (call_soon_threadsafe writes to its self-pipe: tens of microseconds). Both sides run
        # with the GIL held, and `pending` is cleared before `early` is looked at, so the
        # hand-over cannot be missed.
        early: list[Any] = []
        pending = True

        def done(result: Any) -> None:  # on this thread or the SDK's, with the GIL
            if pending:
                early.append(result)
                return
            try:
                loop.call_soon_threadsafe(_resolve, fut, result, orphan)
            except RuntimeError:  # the loop is closed: nobody is waiting any more
                if orphan is not None:
                    orphan(result)

        wait_id = start(done)
        pending = False  # first: a thread switch before the check below must not lose it
        if early:
            return early[0]
        try:
            return await fut
        except BaseException:  # cancelled, or the coroutine closed unfinished
            if wait_id:
                self.cancel(wait_id)
            raise

    def limit(self, key: str, cost: Union[int, Callable[..., int]] = 1, *,
              timeout: Optional[float] = None) -> Callable[[F], F]:
        """Decorates a function (sync or async) so that each call spends ``cost`` from the
        key; ``key`` is a ``str.format`` template over the call's arguments
        (``"tenant:{tenant_id}"``), ``cost`` an int or a function called with the same
        arguments as the decorated one.
        Without ``timeout`` a call never waits; with it, it waits that long at most. A
        denied call raises ``RateLimitExceeded`` and the function does not run."""
        fields = {f for _, f, _, _ in string.Formatter().parse(key) if f}

        def decorate(fn: F) -> F:
            sig = inspect.signature(fn)
            var_kw = next((p.name for p in sig.parameters.values()
                           if p.kind is inspect.Parameter.VAR_KEYWORD), None)

            def resolve(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[str, int]:
                c = cost(*args, **kwargs) if callable(cost) else cost
                if not fields:
                    return key, c
                bound = sig.bind(*args, **kwargs)
                bound.apply_defaults()
                values = dict(bound.arguments)
                if var_kw is not None:
                    values.update(values.pop(var_kw, {}))
                return key.format(**values), c

            def check(k: str, d: Decision) -> None:
                if not d.allowed:
                    raise RateLimitExceeded(k, d.retry_after, d.reason, d)

            if inspect.iscoroutinefunction(fn):
                @functools.wraps(fn)
                async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                    k, c = resolve(args, kwargs)
                    if timeout is None:
                        d = self.try_acquire(k, c)
                    else:
                        d = await self.acquire_async(k, c, timeout)
                    check(k, d)
                    return await cast(Callable[..., Awaitable[Any]], fn)(*args, **kwargs)
                return cast(F, async_wrapper)

            @functools.wraps(fn)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                k, c = resolve(args, kwargs)
                d = self.try_acquire(k, c) if timeout is None else self.acquire(k, c, timeout)
                check(k, d)
                return fn(*args, **kwargs)
            return cast(F, wrapper)

        return decorate


@atexit.register
def _close_all() -> None:
    for limiter in list(_open):
        limiter.close()
    _native._shutdown()

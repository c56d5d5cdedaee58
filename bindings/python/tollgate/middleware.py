"""WSGI and ASGI middleware: a request whose key is denied gets ``429 Too Many Requests``
with ``Retry-After`` (whole seconds, at least 1) and ``Tollgate-Reason`` (the decision's
reason); an admitted one goes on to the app, with the decision in
``environ["tollgate.decision"]`` (WSGI) or ``scope["tollgate.decision"]`` (ASGI).
Decisions made under a store outage (reasons ``fallback_*``) are tagged on the response
with ``Tollgate-Reason`` too.

With ``estimate`` (costs known only afterwards, docs/quotas.md "Estimated costs") a request
reserves ``estimate(request)`` instead of spending ``cost``, without waiting; the reservation
is in ``environ["tollgate.reservation"]`` / ``scope["tollgate.reservation"]``. The app settles
it (``r.settle(used)``) or names its cost in the ``Tollgate-Actual-Cost`` response header;
otherwise it is settled at the estimate when the response ends."""

from __future__ import annotations

import math
from typing import Any, Awaitable, Callable, Iterable, MutableMapping, Optional, Union

from ._native import Decision

__all__ = ["WSGIMiddleware", "ASGIMiddleware", "retry_after_header", "ACTUAL_COST_HEADER"]

_BODY = b"Too Many Requests\n"
ACTUAL_COST_HEADER = "Tollgate-Actual-Cost"
_FALLBACKS = frozenset({"fallback_local", "fallback_deny", "fallback_allow"})

Environ = dict[str, Any]
Scope = MutableMapping[str, Any]


def retry_after_header(decision: Decision) -> str:
    """Retry-After in delay-seconds: rounded up, and at least 1 (0 means "unknown" in
    a decision, and a client told 0 would retry at once)."""
    return str(max(1, math.ceil(decision.retry_after)))


class _Middleware:
    """What both middlewares are configured with; `request` is a WSGI environ or an ASGI scope."""

    def __init__(self, app: Callable[..., Any], limiter: Any,
                 key: Callable[[Any], Optional[str]],
                 cost: Union[int, Callable[[Any], int]] = 1, *,
                 timeout: Optional[float] = None,
                 estimate: Union[None, int, Callable[[Any], int]] = None) -> None:
        self.app = app
        self.limiter = limiter
        self.key = key
        self.cost = cost
        self.timeout = timeout
        self.estimate = estimate

    def _cost(self, request: Any) -> int:
        return self.cost(request) if callable(self.cost) else self.cost

    def _reserve(self, request: Any, key: str) -> Any:
        """The request's reservation (estimate given), in the request; else None."""
        if self.estimate is None:
            return None
        n = self.estimate(request) if callable(self.estimate) else self.estimate
        r = self.limiter.reserve(key, n)
        request["tollgate.reservation"] = r
        return r


def _settle_from(reservation: Any, value: Optional[str]) -> None:
    """Settles a pending reservation with the cost a response header named (if it parses)."""
    if reservation is None or not reservation.pending or value is None:
        return
    try:
        reservation.settle(int(value))
    except ValueError:
        pass  # not a cost: settled at the estimate when the response ends


class WSGIMiddleware(_Middleware):
    """``app.wsgi_app = WSGIMiddleware(app.wsgi_app, limiter, key=lambda environ: ...)``.

    ``key(environ)`` names the quota key of a request, or returns None to let it through
    unlimited; ``cost`` is an int or a function of the environ. With ``timeout`` (seconds) a
    request waits that long for tokens (holding its worker thread; the GIL is released),
    otherwise it is decided at once.
    """

    def __call__(self, environ: Environ, start_response: Callable[..., Any]) -> Iterable[bytes]:
        key = self.key(environ)
        if key is None:
            return self.app(environ, start_response)
        reservation = self._reserve(environ, key)
        if reservation is not None:
            d = reservation.decision
        elif self.timeout is None:
            d = self.limiter.try_acquire(key, self._cost(environ))
        else:
            d = self.limiter.acquire(key, self._cost(environ), self.timeout)
        environ["tollgate.decision"] = d
        if d.allowed:
            if d.reason not in _FALLBACKS and reservation is None:
                return self.app(environ, start_response)

            def tagged(status: str, headers: list[tuple[str, str]], *exc: Any) -> Any:
                if reservation is not None:
                    named = [v for k, v in headers if k.lower() == ACTUAL_COST_HEADER.lower()]
                    _settle_from(reservation, named[0] if named else None)
                if d.reason in _FALLBACKS:
                    headers = [*headers, ("Tollgate-Reason", d.reason)]
                return start_response(status, headers, *exc)
            if reservation is None:
                return self.app(environ, tagged)
            return _settled_when_done(self.app(environ, tagged), reservation)
        start_response("429 Too Many Requests", [
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Content-Length", str(len(_BODY))),
            ("Retry-After", retry_after_header(d)),
            ("Tollgate-Reason", d.reason),
        ])
        return [_BODY]


def _settled_when_done(body: Iterable[bytes], reservation: Any) -> Iterable[bytes]:
    """The app's response body; once it is sent (or the server closes it), an unsettled
    reservation is settled at its estimate."""
    try:
        yield from body
    finally:
        close = getattr(body, "close", None)
        if close is not None:
            close()
        reservation.release()


class ASGIMiddleware(_Middleware):
    """``app = ASGIMiddleware(app, limiter, key=lambda scope: ...)`` for HTTP requests
    (other scope types pass through). ``key(scope)``, ``cost`` and ``timeout`` as in
    :class:`WSGIMiddleware`; with ``timeout`` a request waits on the event loop, not on a
    thread."""

    async def __call__(self, scope: Scope, receive: Callable[..., Awaitable[Any]],
                       send: Callable[..., Awaitable[None]]) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        key = self.key(scope)
        if key is None:
            await self.app(scope, receive, send)
            return
        reservation = self._reserve(scope, key)
        if reservation is not None:
            d = reservation.decision
        elif self.timeout is None:
            d = self.limiter.try_acquire(key, self._cost(scope))
        else:
            d = await self.limiter.acquire_async(key, self._cost(scope), self.timeout)
        scope["tollgate.decision"] = d
        if d.allowed:
            if d.reason not in _FALLBACKS and reservation is None:
                await self.app(scope, receive, send)
                return

            async def tagged(message: MutableMapping[str, Any]) -> None:
                if message["type"] == "http.response.start":
                    if reservation is not None:
                        named = [v for k, v in message.get("headers", [])
                                 if k.lower() == ACTUAL_COST_HEADER.lower().encode()]
                        _settle_from(reservation, named[0].decode() if named else None)
                    if d.reason in _FALLBACKS:
                        message = dict(message)
                        message["headers"] = [*message.get("headers", []),
                                              (b"tollgate-reason", d.reason.encode())]
                await send(message)
            try:
                await self.app(scope, receive, tagged)
            finally:
                if reservation is not None:
                    reservation.release()  # unsettled: at the estimate
            return
        await send({
            "type": "http.response.start",
            "status": 429,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(_BODY)).encode()),
                (b"retry-after", retry_after_header(d).encode()),
                (b"tollgate-reason", d.reason.encode()),
            ],
        })
        await send({"type": "http.response.body", "body": _BODY})

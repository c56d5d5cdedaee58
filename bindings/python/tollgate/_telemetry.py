"""Where the SDK's telemetry goes: log lines to ``logging.getLogger("tollgate")``, and,
when the ``opentelemetry`` API is importable, metrics (lease round trips, breaker changes)
and spans (waiting acquires). OpenTelemetry is optional: without it nothing is recorded
beyond the log lines, and nothing is imported."""

from __future__ import annotations

import contextlib
import logging
from typing import Any, Iterator, Optional

logger = logging.getLogger("tollgate")

# The SDK's LogLevel (debug, info, warn, error) as logging levels.
_LEVELS = (logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR)


def _load_otel() -> Optional[Any]:
    try:
        from opentelemetry import metrics, trace  # type: ignore[import-not-found]
    except ImportError:
        return None
    return _Otel(metrics, trace)


class _Otel:
    """Instruments made once per process. Attributes are low-cardinality: never a key."""

    def __init__(self, metrics: Any, trace: Any) -> None:
        from . import __version__

        meter = metrics.get_meter("tollgate", __version__)
        self.tracer = trace.get_tracer("tollgate", __version__)
        self.lease_requests = meter.create_counter(
            "tollgate.lease.requests", unit="{request}", description="Lease round trips to the quota store")
        self.lease_duration = meter.create_histogram(
            "tollgate.lease.duration", unit="s", description="Lease round trip time")
        self.tokens_granted = meter.create_counter(
            "tollgate.lease.tokens_granted", unit="{token}", description="Tokens granted by the store")
        self.breaker_transitions = meter.create_counter(
            "tollgate.breaker.transitions", unit="{transition}", description="Circuit breaker state changes")
        self.decisions = meter.create_counter(
            "tollgate.decisions", unit="{decision}",
            description="Decisions made by tollgate's middleware, decorator and waiting acquires")


_otel: Optional[_Otel] = None
_otel_loaded = False


def otel() -> Optional[_Otel]:
    """The OpenTelemetry instruments, or None when ``opentelemetry`` is not importable."""
    global _otel, _otel_loaded
    if not _otel_loaded:
        _otel = _load_otel()
        _otel_loaded = True
    return _otel


def _reset_for_tests() -> None:
    global _otel, _otel_loaded
    _otel, _otel_loaded = None, False


class Sink:
    """Receives the native Observer's calls, on the SDK's threads (with the GIL)."""

    def __init__(self, otel_instruments: Optional[_Otel]) -> None:
        self._otel = otel_instruments

    def log(self, level: int, message: str) -> None:
        py_level = _LEVELS[level] if 0 <= level < len(_LEVELS) else logging.ERROR
        if logger.isEnabledFor(py_level):
            logger.log(py_level, message)

    def lease(self, keys: int, tokens_asked: int, tokens_granted: int, failed_keys: int,
              duration: float, ok: bool) -> None:
        o = self._otel
        if o is None:
            return
        attrs = {"outcome": "ok" if ok else "failed"}
        o.lease_requests.add(1, attrs)
        o.lease_duration.record(duration, attrs)
        if tokens_granted:
            o.tokens_granted.add(tokens_granted)

    def breaker(self, shard: int, from_state: str, to_state: str) -> None:
        o = self._otel
        if o is not None:
            o.breaker_transitions.add(1, {"shard": shard, "to": to_state})


def record_decision(decision: Any, source: str) -> None:
    o = otel()
    if o is not None:
        o.decisions.add(1, {"allowed": bool(decision.allowed), "reason": decision.reason,
                            "source": source})


@contextlib.contextmanager
def span(name: str, cost: int) -> Iterator[Optional[Any]]:
    o = otel()
    if o is None:
        yield None
        return
    with o.tracer.start_as_current_span(name, attributes={"tollgate.cost": cost}) as s:
        yield s


def end_span(s: Optional[Any], decision: Any) -> None:
    if s is not None:
        s.set_attribute("tollgate.allowed", bool(decision.allowed))
        s.set_attribute("tollgate.reason", decision.reason)

"""Where the SDK's telemetry goes: log lines to ``logging.getLogger("tollgate")``, and,
when the ``opentelemetry`` API is importable, metrics and spans in the metric vocabulary
every binding shares (sdk/src/telemetry/metrics.json, docs/observability.md).
OpenTelemetry is optional: without it nothing is recorded beyond the log lines, and
nothing is imported. The counters are observable: read from the native counters of every
live limiter when metrics are collected, so they count what C++ and .NET count and the
hot path pays nothing."""

from __future__ import annotations

import contextlib
import logging
import weakref
from typing import Any, Callable, Iterable, Iterator, Optional

logger = logging.getLogger("tollgate")

# The SDK's LogLevel (debug, info, warn, error) as logging levels.
_LEVELS = (logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR)

# The meter's and tracer's name, as .NET's Meter and ActivitySource are named.
NAME = "Tollgate"

# The counters of the vocabulary that are one native counter each (metrics.json, in order):
# (name, unit, description, key of Limiter.stats()). tests/test_vocabulary.py compares them.
# tollgate.decisions and tollgate.tokens.admitted are by policy (_Otel below).
COUNTERS = (
    ("tollgate.lease.requests", "{request}", "Lease requests sent to the store, one per key", "leases_asked"),
    ("tollgate.lease.grants", "{lease}", "Lease answers that granted tokens", "leases_granted"),
    ("tollgate.lease.failures", "{request}", "Lease requests that failed (shard unavailable)", "lease_failures"),
    ("tollgate.lease.tokens.granted", "{token}", "Tokens received in leases", "tokens_leased"),
    ("tollgate.lease.tokens.returned", "{token}", "Unspent leased tokens given back to the store", "tokens_given_back"),
    ("tollgate.lease.tokens.expired", "{token}", "Leased tokens that expired unspent before they could go back", "tokens_expired"),
    ("tollgate.fallback.tokens", "{token}", "Tokens the local fallback buckets handed out while a shard was unavailable", "fallback_tokens"),
    ("tollgate.fallback.tokens.dropped", "{token}", "Fallback tokens unspent when the shard came back", "fallback_dropped"),
    ("tollgate.lease.overdue", "{key}", "Keys whose refill was overdue and went to the fallback", "refills_overdue"),
    ("tollgate.keys.evicted", "{key}", "Keys evicted from the key table", "keys_evicted"),
    ("tollgate.breaker.transitions", "{transition}", "Circuit breaker state changes, all shards", "breaker_transitions"),
    ("tollgate.breaker.openings", "{transition}", "Circuit breaker changes to open, all shards", "breakers_opened"),
    ("tollgate.store.bulkhead.rejections", "{request}", "Lease requests refused at once because their shard's bulkhead was full", "bulkhead_rejected"),
    ("tollgate.store.short_circuits", "{request}", "Lease requests failed at once because their shard's circuit breaker was open", "short_circuited"),
    ("tollgate.store.retries", "{batch}", "Lease batches sent again after a transport failure", "store_retries"),
    ("tollgate.config.updates", "{update}", "Config updates applied to the running limiter", "config_updates"),
    ("tollgate.config.rejections", "{update}", "Config updates refused (the running config stayed)", "config_rejected"),
    ("tollgate.keys.moved", "{key}", "Keys moved to another policy by a config update", "keys_moved"),
    ("tollgate.shadow.admissions", "{decision}", "Denials of shadow policies, admitted anyway (also counted as denied)", "shadow_admitted"),
    ("tollgate.reservations", "{reservation}", "Reservations of an estimated cost admitted (also counted as decisions)", "reserved"),
    ("tollgate.reservations.settled.under", "{reservation}", "Reservations settled below their estimate (the rest went back to the local balance)", "settled_under"),
    ("tollgate.reservations.settled.over", "{reservation}", "Reservations settled above their estimate (the extra charged)", "settled_over"),
    ("tollgate.debt.tokens", "{token}", "Tokens over-settled reservations charged beyond the local balance, carried as debt", "debt_tokens"),
)

# The gauges that are one native value each.
GAUGES = (
    ("tollgate.keys.tracked", "{key}", "Keys in the key table now", "keys_tracked"),
    ("tollgate.memory.usage", "By", "Bytes held by the key table, its entries, wait queues and timers", "bytes_used"),
)

_BREAKER_STATES = ("closed", "open", "half_open")

# Every live limiter, for the observable instruments.
_live: "weakref.WeakSet[Any]" = weakref.WeakSet()


def track(limiter: Any) -> None:
    _live.add(limiter)


def _live_stats() -> list[dict[str, Any]]:
    out = []
    for limiter in list(_live):
        try:
            out.append(limiter.stats())
        except Exception:  # closed meanwhile
            pass
    return out


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
        from ._native import REASONS

        observation = metrics.Observation
        meter = metrics.get_meter(NAME, __version__)
        self.tracer = trace.get_tracer(NAME, __version__)

        def decisions(_options: Any) -> Iterable[Any]:
            # By policy value (summed over limiters by name) and reason; "ok" is admitted.
            by_policy: dict[str, dict[str, int]] = {"other": {}}
            for s in _live_stats():
                for p in s["policies"]:
                    counts = by_policy.setdefault(p["name"], {})
                    counts["ok"] = counts.get("ok", 0) + p["admitted"]
                    for reason, n in p["denied"].items():
                        counts[reason] = counts.get(reason, 0) + n
            for policy, counts in by_policy.items():
                yield observation(counts.get("ok", 0), {"tollgate.result": "admitted", "tollgate.reason": "ok",
                                                        "tollgate.policy": policy})
                for reason in REASONS[1:]:
                    yield observation(counts.get(reason, 0), {"tollgate.result": "denied", "tollgate.reason": reason,
                                                              "tollgate.policy": policy})

        def admitted_tokens(_options: Any) -> Iterable[Any]:
            by_policy: dict[str, int] = {"other": 0}
            for s in _live_stats():
                for p in s["policies"]:
                    by_policy[p["name"]] = by_policy.get(p["name"], 0) + p["admitted_tokens"]
            for policy, n in by_policy.items():
                yield observation(n, {"tollgate.policy": policy})

        def one(key: str) -> Callable[[Any], Iterable[Any]]:
            def observe(_options: Any) -> Iterable[Any]:
                yield observation(sum(s[key] for s in _live_stats()))
            return observe

        def breakers(_options: Any) -> Iterable[Any]:
            counts: list[list[int]] = []
            for s in _live_stats():
                for shard, state in enumerate(s["breakers"]):
                    while len(counts) <= shard:
                        counts.append([0, 0, 0])
                    counts[shard][_BREAKER_STATES.index(state)] += 1
            for shard, per_state in enumerate(counts):
                for state, n in zip(_BREAKER_STATES, per_state):
                    yield observation(n, {"tollgate.shard": shard, "tollgate.breaker.state": state})

        meter.create_observable_counter("tollgate.decisions", callbacks=[decisions],
                                        unit="{decision}", description="Decisions, by result, reason and policy")
        meter.create_observable_counter("tollgate.tokens.admitted", callbacks=[admitted_tokens], unit="{token}",
                                        description="Tokens (summed cost) of the decisions that admitted")
        for name, unit, description, key in COUNTERS:
            meter.create_observable_counter(name, callbacks=[one(key)], unit=unit, description=description)
        for name, unit, description, key in GAUGES:
            meter.create_observable_up_down_counter(name, callbacks=[one(key)], unit=unit,
                                                    description=description)
        meter.create_observable_up_down_counter(
            "tollgate.breaker.state", callbacks=[breakers], unit="{shard}",
            description="1 for each shard's circuit breaker state now, 0 for the states it is not in")
        self.lease_duration = meter.create_histogram(
            "tollgate.lease.duration", unit="s",
            description="Duration of lease round trips to the store, by outcome")


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
        if o is not None:
            o.lease_duration.record(duration, {"tollgate.outcome": "ok" if ok else "failed"})

    def breaker(self, shard: int, from_state: str, to_state: str) -> None:
        """Breaker changes are logged by the SDK itself and counted natively
        (tollgate.breaker.transitions, tollgate.breaker.state)."""


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

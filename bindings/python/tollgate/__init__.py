"""Tollgate: distributed quotas from locally held leases.

    import tollgate
    limiter = tollgate.Limiter.from_config({"policies": [
        {"match": "tenant:*", "type": "token_bucket", "rate": 100, "burst": 200}]})
    if not limiter.try_acquire("tenant:acme", cost=4):
        ...  # answer 429

See docs/python.md in the repository.
"""

from __future__ import annotations

__version__ = "0.1.0"

from ._errors import ConfigError, LimiterClosedError, RateLimitExceeded, TollgateError
from . import _native

if _native.compiled_version != __version__:  # pragma: no cover - a broken install
    raise ImportError(
        f"tollgate {__version__} found a native module built from {_native.compiled_version}")

from ._native import REASONS, Decision, Key, Permit, Reservation
from ._limiter import ConfigSource, Limiter
from .middleware import ASGIMiddleware, WSGIMiddleware

__all__ = [
    "ASGIMiddleware",
    "ConfigError",
    "ConfigSource",
    "Decision",
    "Key",
    "Limiter",
    "LimiterClosedError",
    "Permit",
    "REASONS",
    "Reservation",
    "RateLimitExceeded",
    "TollgateError",
    "WSGIMiddleware",
    "__version__",
]

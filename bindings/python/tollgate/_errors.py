"""The exceptions tollgate raises. Pure Python: the native module imports it to map
C++ errors onto these classes, so they are registered in one place."""

from __future__ import annotations

from typing import Optional

__all__ = ["TollgateError", "ConfigError", "LimiterClosedError", "RateLimitExceeded"]


class TollgateError(Exception):
    """Base class of every error tollgate raises."""


class ConfigError(TollgateError, ValueError):
    """The config is invalid. ``field`` is the JSON path of the first bad field
    (``"policies[0].rate"``, ``"$"`` for unparsable JSON, ``"config_file"`` for an
    unreadable file) and ``reason`` says what is wrong with it."""

    def __init__(self, message: str, field: str = "", reason: str = "") -> None:
        super().__init__(message)
        self.field = field
        self.reason = reason


class LimiterClosedError(TollgateError, RuntimeError):
    """The limiter was closed; it admits nothing any more."""


class RateLimitExceeded(TollgateError):
    """A request was denied. ``retry_after`` is in seconds (0.0 when unknown)."""

    def __init__(
        self,
        key: str,
        retry_after: float = 0.0,
        reason: str = "over_limit",
        decision: Optional[object] = None,
    ) -> None:
        super().__init__(f"rate limit exceeded for {key!r} ({reason}); retry after {retry_after:.3f}s")
        self.key = key
        self.retry_after = retry_after
        self.reason = reason
        self.decision = decision

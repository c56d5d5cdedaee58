# Hand-written stubs of the private native module (src/native.cpp).
from typing import Any, Callable, Optional

version: str
compiled_version: str
# Every reason in the SDK's numeric order: ("ok", "over_limit", ..., "over_group_limit", "in_debt").
REASONS: tuple[str, ...]

class Decision:
    """The answer to one acquire. Immutable."""

    @property
    def allowed(self) -> bool: ...
    @property
    def reason(self) -> str:
        """One of REASONS: "ok", "over_limit", "cold_key", "lease_pending", ...,
        "over_group_limit" (the key's group budget, or its fair share of it, is spent),
        "in_debt" (an over-settled reservation's debt is not paid yet)."""
    @property
    def remaining(self) -> int:
        """Tokens (or permits) left in the key's local lease after this decision."""
    @property
    def retry_after(self) -> float:
        """Seconds until a retry may succeed; 0.0 when allowed or unknown."""
    def __bool__(self) -> bool: ...
    def __eq__(self, other: object) -> bool: ...
    def __hash__(self) -> int: ...

class Permit:
    """Concurrency permits; returned on release(), on leaving a `with` block, or when
    collected."""

    @property
    def allowed(self) -> bool: ...
    @property
    def decision(self) -> Decision: ...
    @property
    def count(self) -> int: ...
    @property
    def key(self) -> str: ...
    @property
    def held(self) -> bool:
        """True while the permits are out (granted and not yet released)."""
    def release(self) -> None: ...
    def __bool__(self) -> bool: ...
    def __enter__(self) -> "Permit":
        """Raises RateLimitExceeded when the permits were not granted."""
    def __exit__(self, *exc: object) -> bool: ...

class Reservation:
    """An estimate held for a request whose cost is known only when it ends
    (Limiter.reserve): settle(actual) once; leaving a `with` block or being collected
    unsettled settles it at the estimate."""

    @property
    def allowed(self) -> bool: ...
    @property
    def decision(self) -> Decision: ...
    @property
    def estimate(self) -> int: ...
    @property
    def key(self) -> str: ...
    @property
    def pending(self) -> bool:
        """True while the estimate is held (granted and not yet settled)."""
    def settle(self, actual: int) -> dict[str, int]:
        """Charges the actual cost: {"charged", "refunded", "dropped", "debt", "uncharged"}
        (docs/quotas.md, "Estimated costs"). Raises ValueError, changing nothing, when not
        pending or `actual` is above 2^53."""
    def release(self) -> None:
        """Settles at the estimate if still pending."""
    def __bool__(self) -> bool: ...
    def __enter__(self) -> "Reservation":
        """Raises RateLimitExceeded when the estimate was not granted."""
    def __exit__(self, *exc: object) -> bool: ...

class Key:
    """A key resolved once (Limiter.key): try_acquire without encoding, hashing or looking the
    key up again; found again after the limiter evicted it. Keeps its Limiter alive."""

    @property
    def key(self) -> str: ...
    @property
    def closed(self) -> bool:
        """True once its Limiter is closed (try_acquire then raises LimiterClosedError)."""
    def try_acquire(self, cost: int = 1) -> Decision:
        """Never blocks."""

class Limiter:
    def __init__(self, config: str, is_path: bool, sink: Any, leases: bool) -> None: ...
    def try_acquire(self, key: str, cost: int = 1) -> Decision:
        """Never blocks."""
    def key(self, key: str) -> Key:
        """The key resolved once, for a caller that decides on it again and again."""
    def acquire(self, key: str, cost: int = 1, timeout: Optional[float] = None) -> Decision:
        """Waits up to `timeout` seconds (None: until decided) with the GIL released."""
    def _acquire_async(self, key: str, cost: int, timeout: Optional[float],
                       callback: Callable[[Decision], None]) -> int: ...
    def cancel(self, wait_id: int) -> bool: ...
    def acquire_permit(self, key: str, count: int = 1) -> Permit: ...
    def reserve(self, key: str, estimate: int, timeout: Optional[float] = None) -> Reservation:
        """timeout None: never blocks; else waits that long with the GIL released."""
    def _reserve_async(self, key: str, estimate: int, timeout: Optional[float],
                       callback: Callable[[Reservation], None]) -> int: ...
    def stats(self) -> dict[str, Any]: ...
    def _update(self, config: str, is_path: bool) -> None: ...
    def _prometheus_text(self) -> str: ...
    @property
    def instance_id(self) -> str: ...
    @property
    def closed(self) -> bool: ...
    def close(self) -> None:
        """Stops the SDK thread, completes pending waits with reason "shutdown" and gives
        unspent tokens back. Idempotent."""

def _shutdown() -> None: ...

using System;

namespace Tollgate;

/// <summary>What <see cref="TollgateReservation.Settle"/> did with the actual cost.</summary>
/// <param name="Charged">Tokens charged in all: min(actual, estimate + max_overage).</param>
/// <param name="Refunded">Held - actual (a reservation holds part of its estimate), back in the key's local balance.</param>
/// <param name="Dropped">Of the refund, its lease had ended meanwhile: given back to the store's bucket, not the local balance.</param>
/// <param name="Debt">Charged beyond the local balance: the key's debt (<see cref="Reason.InDebt"/> until paid).</param>
/// <param name="Uncharged">Actual - estimate - max_overage: reported, not charged.</param>
public readonly record struct Settlement(long Charged, long Refunded, long Dropped, long Debt, long Uncharged);

/// <summary>
/// An estimate held for a request whose cost is known only when it ends
/// (<see cref="TollgateLimiter.Reserve"/>). <see cref="Settle"/> charges the actual cost, once;
/// disposing an unsettled reservation settles it at the estimate. Not thread-safe: settle it
/// from one thread (any thread).
/// </summary>
public sealed class TollgateReservation : IDisposable
{
    private readonly ReservationHandle _handle;

    internal TollgateReservation(ReservationHandle handle, Decision decision, long estimate)
    {
        _handle = handle;
        Decision = decision;
        Estimate = estimate;
        IsPending = decision.Allowed && !handle.IsInvalid;
    }

    /// <summary>Whether the estimate was granted.</summary>
    public bool IsAcquired => Decision.Allowed;

    /// <summary>The decision.</summary>
    public Decision Decision { get; }

    /// <summary>The estimate asked for.</summary>
    public long Estimate { get; }

    /// <summary>Whether the estimate is held: granted, not settled, not disposed.</summary>
    public bool IsPending { get; private set; }

    /// <summary>
    /// Charges <paramref name="actualCost"/> instead of the estimate: under it, the rest goes back
    /// to the key's local balance; over it, the extra (at most the policy's max_overage) is
    /// charged, and what the balance lacks is the key's debt. Throws
    /// <see cref="ArgumentOutOfRangeException"/> for a negative cost or one above 2^53, and
    /// <see cref="InvalidOperationException"/> when nothing is held (denied, settled, disposed);
    /// either way nothing changes.
    /// </summary>
    public unsafe Settlement Settle(long actualCost)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(actualCost);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(actualCost, 1L << 53);
        if (!IsAcquired || !IsPending || _handle.IsInvalid || _handle.IsClosed)
            throw new InvalidOperationException("Tollgate: the reservation holds nothing to settle");
        NativeSettlement s;
        bool added = false;
        try
        {
            _handle.DangerousAddRef(ref added);
            Status status = Native.Settle(&s, _handle.DangerousGetHandle(), (ulong)actualCost);
            if (status != Status.Ok) throw new InvalidOperationException($"Tollgate: tg_settle failed ({status})");
        }
        finally
        {
            if (added) _handle.DangerousRelease();
        }
        IsPending = false;
        return new Settlement((long)s.Charged, (long)s.Refunded, (long)s.Dropped, (long)s.Debt, (long)s.Uncharged);
    }

    /// <summary>Settles at the estimate if not settled yet, and frees the native handle; idempotent.</summary>
    public void Dispose()
    {
        IsPending = false;
        _handle.Dispose();
    }
}

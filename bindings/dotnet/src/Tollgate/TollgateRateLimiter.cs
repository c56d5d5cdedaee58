using System;
using System.Collections.Generic;
using System.Runtime.CompilerServices;
using System.Text;
using System.Threading;
using System.Threading.RateLimiting;
using System.Threading.Tasks;

namespace Tollgate;

/// <summary>
/// A <see cref="RateLimiter"/> for one key of a <see cref="TollgateLimiter"/>: a light view, so
/// that <c>PartitionedRateLimiter</c> may create and drop one per tenant as partitions go idle.
/// <see cref="AttemptAcquireCore"/> spends from the local lease and never does I/O;
/// <see cref="AcquireAsyncCore"/> waits for the native async acquire without blocking a thread.
/// Disposing the view leaves the <see cref="TollgateLimiter"/> running.
/// </summary>
public sealed class TollgateRateLimiter : RateLimiter
{
    private static readonly RateLimitLease s_admitted = new TollgateLease(true, default, TimeSpan.Zero, null, null);

    private readonly TollgateLimiter _owner;
    private readonly byte[] _key;  // pinned for the view's life: no fixed on the hot path
    private readonly nint _keyPtr;
    // The key resolved once natively (not for permit views). Never disposed here: see KeyHandle.
    private readonly KeyHandle? _nativeKey;
    private readonly nint _nativeKeyPtr;
    private readonly bool _permits;
    // IdleDuration without a clock read per acquire: the getter (PartitionedRateLimiter polls
    // it about every 100 ms) notices when the call counters moved and restarts the idle time.
    private long _idleSinceMs;
    private long _idleSeenCalls;
    private long _remaining;
    private long _successful;
    private long _failed;
    private int _queued;
    private int _held;
    private int _disposed;

    internal TollgateRateLimiter(TollgateLimiter owner, string key, bool permits)
    {
        ArgumentNullException.ThrowIfNull(owner);
        ArgumentNullException.ThrowIfNull(key);
        _owner = owner;
        int n = Encoding.UTF8.GetByteCount(key);
        _key = GC.AllocateArray<byte>(Math.Max(n, 1), pinned: true);
        Encoding.UTF8.GetBytes(key, _key);
        unsafe { _keyPtr = (nint)Unsafe.AsPointer(ref _key[0]); }
        KeyLength = n;
        Key = key;
        _permits = permits;
        if (!permits)
        {
            unsafe { _nativeKey = owner.CreateKey((byte*)_keyPtr, n); }
            _nativeKeyPtr = _nativeKey.DangerousGetHandle();
        }
        _idleSinceMs = Environment.TickCount64;
    }

    /// <summary>The key this view acquires for.</summary>
    public string Key { get; }

    private int KeyLength { get; }

    internal KeyHandle? NativeKey => _nativeKey;  // for tests

    /// <inheritdoc />
    public override TimeSpan? IdleDuration
    {
        get
        {
            if (Volatile.Read(ref _queued) > 0 || Volatile.Read(ref _held) > 0) return null;
            long calls = Interlocked.Read(ref _successful) + Interlocked.Read(ref _failed);
            long now = Environment.TickCount64;
            if (calls != Interlocked.Exchange(ref _idleSeenCalls, calls))
            {
                Volatile.Write(ref _idleSinceMs, now);
                return TimeSpan.Zero;
            }
            return TimeSpan.FromMilliseconds(Math.Max(0, now - Volatile.Read(ref _idleSinceMs)));
        }
    }

    /// <inheritdoc />
    public override RateLimiterStatistics? GetStatistics() => new()
    {
        CurrentAvailablePermits = Math.Max(0, Volatile.Read(ref _remaining)),
        CurrentQueuedCount = Volatile.Read(ref _queued),
        TotalSuccessfulLeases = Interlocked.Read(ref _successful),
        TotalFailedLeases = Interlocked.Read(ref _failed),
    };

    /// <inheritdoc />
    protected override unsafe RateLimitLease AttemptAcquireCore(int permitCount)
    {
        ThrowIfDisposed();
        if (permitCount == 0) return Probe();
        if (_permits) return TakePermits(permitCount);
        // The limiter's handle is not add-ref'd per call: the native key keeps the limiter's
        // core alive (KeyHandle), so only a closed limiter needs noticing. Admissions touch
        // only the raw decision: no TimeSpan, no allocation.
        if (_owner.Handle.IsClosed) throw new ObjectDisposedException(nameof(TollgateLimiter));
        NativeDecision d;
        Native.TryAcquireKey(&d, _nativeKeyPtr, TollgateLimiter.Cost(permitCount));
        GC.KeepAlive(this);  // and with it _nativeKey, until the call has returned
        _remaining = d.Remaining;
        if (d.Allowed != 0)
        {
            Interlocked.Increment(ref _successful);
            return s_admitted;
        }
        return ToLease(Native.ToDecision(d));
    }

    /// <inheritdoc />
    protected override async ValueTask<RateLimitLease> AcquireAsyncCore(int permitCount,
        CancellationToken cancellationToken)
    {
        ThrowIfDisposed();
        cancellationToken.ThrowIfCancellationRequested();
        if (permitCount == 0) return Probe();
        if (_permits) return TakePermits(permitCount);  // permits are never queued natively
        // Wait only while a lease is on its way; a spent global quota is refused at once with
        // Retry-After, so rejected requests do not hold connections for the queue timeout.
        Decision now = TryNow(permitCount);
        if (now.Allowed || !(now.Reason is Reason.ColdKey or Reason.LeasePending || _owner.Options.QueueWhenOverLimit))
            return ToLease(now);
        Interlocked.Increment(ref _queued);
        try
        {
            return ToLease(await StartWait(permitCount, cancellationToken).ConfigureAwait(false));
        }
        finally
        {
            Interlocked.Decrement(ref _queued);
        }
    }

    private unsafe Decision TryNow(int permitCount) => _owner.TryAcquire((byte*)_keyPtr, KeyLength, permitCount);

    private unsafe Task<Decision> StartWait(int permitCount, CancellationToken cancellationToken) =>
        _owner.AcquireAsync((byte*)_keyPtr, KeyLength, permitCount, _owner.Options.QueueTimeout,
            cancellationToken);

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        Interlocked.Exchange(ref _disposed, 1);
        base.Dispose(disposing);
    }

    private void ThrowIfDisposed()
    {
        if (Volatile.Read(ref _disposed) != 0) throw new ObjectDisposedException(nameof(TollgateRateLimiter));
    }

    private RateLimitLease Probe() =>
        Volatile.Read(ref _remaining) > 0
            ? s_admitted
            : new TollgateLease(false, new Decision(false, Reason.OverLimit, 0, TimeSpan.Zero),
                _owner.Options.DefaultRetryAfter, null, null);

    private unsafe RateLimitLease TakePermits(int count)
    {
        TollgatePermit p = _owner.AcquirePermit((byte*)_keyPtr, KeyLength, count);
        Volatile.Write(ref _remaining, p.Decision.Remaining);
        if (!p.IsAcquired)
        {
            Interlocked.Increment(ref _failed);
            return new TollgateLease(false, p.Decision, _owner.Options.DefaultRetryAfter, null, null);
        }
        Interlocked.Increment(ref _successful);
        Interlocked.Increment(ref _held);
        return new TollgateLease(true, p.Decision, TimeSpan.Zero, p, this);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private RateLimitLease ToLease(in Decision d)
    {
        Volatile.Write(ref _remaining, d.Remaining);
        if (d.Allowed)
        {
            Interlocked.Increment(ref _successful);
            return s_admitted;
        }
        Interlocked.Increment(ref _failed);
        return new TollgateLease(false, d, _owner.Options.DefaultRetryAfter, null, null);
    }

    internal void Returned() => Interlocked.Decrement(ref _held);

    /// <summary>The lease: RetryAfter (a TimeSpan) and ReasonPhrase in its metadata when denied.</summary>
    private sealed class TollgateLease : RateLimitLease
    {
        private static readonly string[] s_deniedNames = { MetadataName.RetryAfter.Name, MetadataName.ReasonPhrase.Name };
        private readonly bool _acquired;
        private readonly Decision _decision;
        private readonly TimeSpan _retryAfter;
        private TollgatePermit? _permit;
        private TollgateRateLimiter? _view;

        public TollgateLease(bool acquired, Decision decision, TimeSpan defaultRetryAfter,
            TollgatePermit? permit, TollgateRateLimiter? view)
        {
            _acquired = acquired;
            _decision = decision;
            _retryAfter = decision.RetryAfter > TimeSpan.Zero ? decision.RetryAfter : defaultRetryAfter;
            _permit = permit;
            _view = view;
        }

        public override bool IsAcquired => _acquired;

        public override IEnumerable<string> MetadataNames =>
            _acquired ? Array.Empty<string>() : s_deniedNames;

        public override bool TryGetMetadata(string metadataName, out object? metadata)
        {
            if (!_acquired && metadataName == MetadataName.RetryAfter.Name)
            {
                metadata = _retryAfter;
                return true;
            }
            if (!_acquired && metadataName == MetadataName.ReasonPhrase.Name)
            {
                metadata = ReasonNames.Of(_decision.Reason);
                return true;
            }
            metadata = null;
            return false;
        }

        protected override void Dispose(bool disposing)
        {
            // The shared admitted lease has no permit: no interlocked write on every dispose.
            if (Volatile.Read(ref _permit) is null) return;
            TollgatePermit? p = Interlocked.Exchange(ref _permit, null);
            if (p != null)
            {
                p.Dispose();
                Interlocked.Exchange(ref _view, null)?.Returned();
            }
        }
    }
}

/// <summary>The stable names of reasons ("over_limit", …), as the C API and logs spell them.</summary>
public static class ReasonNames
{
    private static readonly string[] s_names =
    {
        "ok", "over_limit", "cold_key", "lease_pending", "penalty_box", "queue_full", "timeout",
        "cancelled", "key_table_full", "no_policy", "invalid_argument", "fallback_local",
        "fallback_deny", "fallback_allow", "shutdown", "over_group_limit", "in_debt",
    };

    /// <summary>The name of <paramref name="reason"/>.</summary>
    public static string Of(Reason reason) => (int)reason < s_names.Length ? s_names[(int)reason] : "unknown";
}

using System;
using System.Collections.Generic;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text;
using System.Threading;
using System.Threading.RateLimiting;
using System.Threading.Tasks;

namespace Tollgate;

/// <summary>Options of a <see cref="TollgateLimiter"/> beyond its JSON config.</summary>
public sealed class TollgateLimiterOptions
{
    /// <summary>Native log lines (called on the SDK's threads; must be quick and must not call the limiter).</summary>
    public Action<TollgateLogLevel, string>? Log { get; set; }

    /// <summary>Lines below this level are not passed to <see cref="Log"/>.</summary>
    public TollgateLogLevel MinimumLogLevel { get; set; } = TollgateLogLevel.Information;

    /// <summary>How long <c>AcquireAsync</c> of a <see cref="TollgateRateLimiter"/> waits for tokens.</summary>
    public TimeSpan QueueTimeout { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// Whether <c>AcquireAsync</c> of a <see cref="TollgateRateLimiter"/> also waits when the global
    /// quota is spent (false: only while a lease is on its way, for a cold key or a pending refill).
    /// </summary>
    public bool QueueWhenOverLimit { get; set; }

    /// <summary>Retry-after given when the native decision has none (a cold key, a pending lease).</summary>
    public TimeSpan DefaultRetryAfter { get; set; } = TimeSpan.FromSeconds(1);
}

/// <summary>
/// A native Tollgate limiter: global quotas, answered from locally held leases. Thread-safe.
/// Dispose it to stop its SDK thread and give unspent tokens back; calls after that throw
/// <see cref="ObjectDisposedException"/>.
/// </summary>
public sealed unsafe class TollgateLimiter : IDisposable
{
    internal readonly LimiterHandle Handle;
    internal readonly TollgateLimiterOptions Options;
    // Lease activities, started and ended by the observer's lease events.
    internal readonly LeaseSpans Spans = new();
    private readonly Action<TollgateLogLevel, string>? _log;
    private static long s_pendingWaits;

    /// <summary>Async acquires whose completion has not run yet, across all limiters.</summary>
    internal static long PendingWaits => Interlocked.Read(ref s_pendingWaits);

    private TollgateLimiter(LimiterHandle handle, TollgateLimiterOptions options)
    {
        Handle = handle;
        Options = options;
        _log = options.Log;
    }

    /// <summary>The loaded native library's version.</summary>
    public static string NativeVersion
    {
        get
        {
            Native.EnsureCompatible();
            return Native.NativeVersion;
        }
    }

    /// <summary>Checks a JSON config; throws <see cref="TollgateConfigException"/> naming the bad field.</summary>
    public static void Validate(string configJson)
    {
        ArgumentNullException.ThrowIfNull(configJson);
        Native.EnsureCompatible();
        byte[] json = NullTerminated(configJson);
        byte* err = stackalloc byte[512];
        Status s;
        fixed (byte* j = json) s = Native.ConfigValidate(j, err, 512);
        if (s != Status.Ok) throw Failure(s, err);
    }

    /// <summary>Creates a limiter from a JSON config (docs/configuration.md).</summary>
    public static TollgateLimiter Create(string configJson, TollgateLimiterOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(configJson);
        Native.EnsureCompatible();
        options ??= new TollgateLimiterOptions();
        var handle = new LimiterHandle();
        var limiter = new TollgateLimiter(handle, options);
        // The observer's user_data: a GCHandle the native side holds until destroy returns.
        GCHandle self = GCHandle.Alloc(new WeakReference<TollgateLimiter>(limiter));
        NativeLimiterOptions o = default;
        o.Version = Native.LimiterOptionsVersion;
        o.OnLease = &OnLease;
        o.OnLeaseStart = &OnLeaseStart;
        o.OnLog = &OnLog;
        o.MinLogLevel = (int)options.MinimumLogLevel;
        o.ObserverUserData = GCHandle.ToIntPtr(self);
        byte[] json = NullTerminated(configJson);
        byte* err = stackalloc byte[512];
        nint h = 0;
        Status s;
        fixed (byte* j = json) s = Native.LimiterCreate(&h, j, &o, err, 512);
        if (s != Status.Ok)
        {
            self.Free();
            throw Failure(s, err);
        }
        handle.Adopt(h);
        handle.Observer = self;
        TollgateTelemetry.Track(limiter);
        return limiter;
    }

    /// <summary>
    /// Swaps in another JSON config while the limiter runs (docs/configuration.md, "Live
    /// updates"): policies, groups, cold keys, leases and fallbacks may change; store, max_keys
    /// and instance_id may not. Throws <see cref="TollgateConfigException"/> naming the field,
    /// and the running config stays.
    /// </summary>
    public void Update(string configJson)
    {
        ArgumentNullException.ThrowIfNull(configJson);
        byte[] json = NullTerminated(configJson);
        byte* err = stackalloc byte[512];
        bool added = false;
        Handle.DangerousAddRef(ref added);  // throws ObjectDisposedException once disposed
        try
        {
            Status s;
            fixed (byte* j = json) s = Native.LimiterUpdate(Handle.DangerousGetHandle(), j, err, 512);
            if (s != Status.Ok) throw Failure(s, err);
        }
        finally
        {
            if (added) Handle.DangerousRelease();
        }
    }

    // What stops with the limiter (an options-change subscription of the ASP.NET Core integration).
    internal IDisposable? Subscription { get; set; }

    /// <summary>Stops the limiter: pending waits complete (shutdown), unspent tokens go back.</summary>
    public void Dispose()
    {
        Subscription?.Dispose();
        TollgateTelemetry.Untrack(this);
        Handle.Dispose();
        Spans.EndAll();
    }

    /// <summary>Whether <see cref="Dispose"/> has run.</summary>
    public bool IsDisposed => Handle.IsClosed;

    /// <summary>Never blocks, never does I/O: spends from the key's local lease.</summary>
    public Decision TryAcquire(string key, long cost = 1)
    {
        ArgumentNullException.ThrowIfNull(key);
        Span<byte> buffer = stackalloc byte[256];
        ReadOnlySpan<byte> utf8 = Utf8(key, buffer, out byte[]? rented);
        fixed (byte* k = utf8) return TryAcquire(k, utf8.Length, cost);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal Decision TryAcquire(byte* key, int keyLength, long cost) =>
        Native.ToDecision(TryAcquireRaw(key, keyLength, cost));

    /// <summary>A native key resolved once, for a view's AttemptAcquire (Native.TryAcquireKey).</summary>
    internal KeyHandle CreateKey(byte* key, int keyLength)
    {
        var handle = new KeyHandle();
        bool added = false;
        try
        {
            Handle.DangerousAddRef(ref added);  // throws ObjectDisposedException once disposed
            nint k;
            Status s = Native.KeyCreate(&k, Handle.DangerousGetHandle(), key, (nuint)keyLength);
            if (s != Status.Ok) throw new InvalidOperationException($"Tollgate: tg_key_create failed ({s})");
            handle.Adopt(k);
        }
        finally
        {
            if (added) Handle.DangerousRelease();
        }
        return handle;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal NativeDecision TryAcquireRaw(byte* key, int keyLength, long cost)
    {
        NativeDecision d;
        bool added = false;
        Handle.DangerousAddRef(ref added);  // throws ObjectDisposedException once disposed
        try
        {
            Native.TryAcquire(&d, Handle.DangerousGetHandle(), key, (nuint)keyLength, Cost(cost));
        }
        finally
        {
            if (added) Handle.DangerousRelease();
        }
        return d;
    }

    /// <summary>
    /// Waits up to <paramref name="timeout"/> for tokens without blocking a thread. Cancelling
    /// <paramref name="cancellationToken"/> ends the wait with <see cref="OperationCanceledException"/>.
    /// </summary>
    public Task<Decision> AcquireAsync(string key, long cost, TimeSpan timeout,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(key);
        byte[] utf8 = Encoding.UTF8.GetBytes(key);
        fixed (byte* k = utf8) return AcquireAsync(k, utf8.Length, cost, timeout, cancellationToken);
    }

    internal Task<Decision> AcquireAsync(byte* key, int keyLength, long cost, TimeSpan timeout,
        CancellationToken cancellationToken)
    {
        if (cancellationToken.IsCancellationRequested)
            return Task.FromCanceled<Decision>(cancellationToken);
        var wait = new PendingWait(this, cancellationToken);
        Start(wait, "tg_acquire_async", (nint limiter, ulong* id, nint userData) =>
            Native.AcquireAsync(id, limiter, key, (nuint)keyLength, Cost(cost), TimeoutNs(timeout),
                &OnCompletion, userData));
        return wait.Task;
    }

    private static long TimeoutNs(TimeSpan timeout) =>
        timeout <= TimeSpan.Zero ? 0 : (long)Math.Min(timeout.Ticks * 100.0, long.MaxValue);

    private delegate Status StartCall(nint limiter, ulong* waitId, nint userData);

    // Starts a native wait whose completion gets `wait` back through a GCHandle (freed by the
    // completion, or here when the call fails: then the completion never runs).
    private void Start(PendingBase wait, string what, StartCall call)
    {
        // The lease this wait causes is linked to the caller's activity (the waiting path only).
        bool linked = Spans.Waiting();
        GCHandle gch = GCHandle.Alloc(wait);
        Interlocked.Increment(ref s_pendingWaits);
        ulong id = 0;
        Status s;
        bool added = false;
        try
        {
            Handle.DangerousAddRef(ref added);
            s = call(Handle.DangerousGetHandle(), &id, GCHandle.ToIntPtr(gch));
        }
        catch
        {
            gch.Free();
            Interlocked.Decrement(ref s_pendingWaits);
            throw;
        }
        finally
        {
            if (added) Handle.DangerousRelease();
        }
        if (s != Status.Ok)
        {
            gch.Free();
            Interlocked.Decrement(ref s_pendingWaits);
            throw new InvalidOperationException($"Tollgate: {what} failed ({s})");
        }
        if (id == 0 && linked) Spans.NotWaiting();
        if (id != 0) wait.Watch(id);
    }

    /// <summary>Takes <paramref name="count"/> permits of a concurrency policy without waiting.</summary>
    public TollgatePermit AcquirePermit(string key, int count = 1)
    {
        ArgumentNullException.ThrowIfNull(key);
        byte[] utf8 = Encoding.UTF8.GetBytes(key);
        fixed (byte* k = utf8) return AcquirePermit(k, utf8.Length, count);
    }

    internal TollgatePermit AcquirePermit(byte* key, int keyLength, int count)
    {
        var permit = new PermitHandle();
        NativeDecision d;
        nint p = 0;
        bool added = false;
        try
        {
            Handle.DangerousAddRef(ref added);
            Status s = Native.AcquirePermit(&p, &d, Handle.DangerousGetHandle(), key, (nuint)keyLength,
                count <= 0 ? 0u : (uint)count);
            if (s != Status.Ok) throw new InvalidOperationException($"Tollgate: tg_acquire_permit failed ({s})");
            if (p != 0) permit.Adopt(p);
        }
        finally
        {
            if (added) Handle.DangerousRelease();
        }
        return new TollgatePermit(permit, Native.ToDecision(d));
    }

    /// <summary>
    /// Holds <paramref name="estimate"/> tokens of a token-bucket or window policy for a request
    /// whose cost is known only when it ends (docs/quotas.md, "Estimated costs"): settle the
    /// actual cost with <see cref="TollgateReservation.Settle"/>; disposing an unsettled one
    /// settles it at the estimate. Never blocks, never does I/O (decided like
    /// <see cref="TryAcquire(string, long)"/>); an estimate of 0 or above the policy's capacity is denied
    /// with <see cref="Reason.InvalidArgument"/>.
    /// </summary>
    public TollgateReservation Reserve(string key, long estimate)
    {
        ArgumentNullException.ThrowIfNull(key);
        byte[] utf8 = Encoding.UTF8.GetBytes(key);
        var reservation = new ReservationHandle();
        NativeDecision d;
        nint r = 0;
        bool added = false;
        try
        {
            Handle.DangerousAddRef(ref added);
            fixed (byte* k = utf8)
            {
                Status s = Native.Reserve(&r, &d, Handle.DangerousGetHandle(), k, (nuint)utf8.Length,
                    estimate <= 0 ? 0ul : (ulong)estimate, 0);
                if (s != Status.Ok) throw new InvalidOperationException($"Tollgate: tg_reserve failed ({s})");
            }
            if (r != 0) reservation.Adopt(r);
        }
        finally
        {
            if (added) Handle.DangerousRelease();
        }
        return new TollgateReservation(reservation, Native.ToDecision(d), estimate);
    }

    /// <summary>
    /// <see cref="Reserve"/>'s waiting form: waits up to <paramref name="timeout"/> for the estimate
    /// without blocking a thread (a cold key's first lease, a refill on its way, and — as
    /// <see cref="AcquireAsync(string, long, TimeSpan, CancellationToken)"/> — a spent quota). The
    /// result's <see cref="TollgateReservation.Decision"/> says why when nothing was reserved
    /// (timeout, shutdown, ...). Cancelling <paramref name="cancellationToken"/> ends the wait with
    /// <see cref="OperationCanceledException"/>, nothing reserved.
    /// </summary>
    public Task<TollgateReservation> ReserveAsync(string key, long estimate, TimeSpan timeout,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(key);
        if (cancellationToken.IsCancellationRequested)
            return Task.FromCanceled<TollgateReservation>(cancellationToken);
        byte[] utf8 = Encoding.UTF8.GetBytes(key);
        var wait = new PendingReservation(this, cancellationToken, estimate);
        fixed (byte* k = utf8)
        {
            byte* kp = k;
            Start(wait, "tg_reserve_async", (nint limiter, ulong* id, nint userData) =>
                Native.ReserveAsync(id, limiter, kp, (nuint)utf8.Length, estimate <= 0 ? 0ul : (ulong)estimate,
                    TimeoutNs(timeout), &OnReserved, userData));
        }
        return wait.Task;
    }

    /// <summary>Counters since the limiter started, and each shard's breaker state.</summary>
    public TollgateStats GetStats()
    {
        NativeStats s = default;
        s.Version = Native.StatsVersion;
        BreakerState[] breakers;
        TollgatePolicyStats[] policies;
        bool added = false;
        try
        {
            Handle.DangerousAddRef(ref added);
            if (Native.LimiterStats(&s, Handle.DangerousGetHandle()) != Status.Ok)
                throw new InvalidOperationException("Tollgate: tg_limiter_stats failed");
            // Every shard's breaker (a store's shard list does not change while it runs).
            var states = new int[s.Shards];
            nuint count = 0;
            fixed (int* p = states)
                Native.LimiterBreakers(p, (nuint)states.Length, &count, Handle.DangerousGetHandle());
            breakers = new BreakerState[(int)Math.Min(count, (nuint)states.Length)];
            for (int i = 0; i < breakers.Length; i++) breakers[i] = (BreakerState)states[i];
            policies = PolicyStats(Handle.DangerousGetHandle());
        }
        finally
        {
            if (added) Handle.DangerousRelease();
        }
        return TollgateStats.From(s, breakers, policies);
    }

    // A label keeps its name for the limiter's life: each is read once.
    private readonly string?[] _policyNames = new string?[Native.PolicyValuesMax];

    private TollgatePolicyStats[] PolicyStats(nint h)
    {
        NativePolicyStats* native = stackalloc NativePolicyStats[Native.PolicyValuesMax];
        nuint count = 0;
        if (Native.LimiterPolicyStats(native, Native.PolicyValuesMax, &count, h) != Status.Ok)
            throw new InvalidOperationException("Tollgate: tg_limiter_policy_stats failed");
        var policies = new TollgatePolicyStats[(int)Math.Min(count, (nuint)Native.PolicyValuesMax)];
        for (int i = 0; i < policies.Length; i++)
            policies[i] = TollgatePolicyStats.From(PolicyName(h, i), native[i]);
        return policies;
    }

    private string PolicyName(nint h, int label)
    {
        string? name = Volatile.Read(ref _policyNames[label]);
        if (name != null) return name;
        nuint length = 0;
        if (Native.LimiterPolicyName(null, 0, &length, h, (nuint)label) != Status.Ok)
            throw new InvalidOperationException("Tollgate: tg_limiter_policy_name failed");
        byte[] buffer = new byte[(int)length + 1];
        fixed (byte* p = buffer)
            if (Native.LimiterPolicyName(p, (nuint)buffer.Length, &length, h, (nuint)label) != Status.Ok)
                throw new InvalidOperationException("Tollgate: tg_limiter_policy_name failed");
        name = Encoding.UTF8.GetString(buffer, 0, (int)length);
        Volatile.Write(ref _policyNames[label], name);
        return name;
    }

    /// <summary>
    /// The limiter's metrics in the Prometheus text format 0.0.4, in the metric vocabulary of every
    /// binding (docs/observability.md): the native exposition, the same text C++'s
    /// <c>tollgate::prometheus_text</c> gives. Serve it as "text/plain; version=0.0.4; charset=utf-8".
    /// </summary>
    public string GetPrometheusText()
    {
        bool added = false;
        try
        {
            Handle.DangerousAddRef(ref added);
            nint h = Handle.DangerousGetHandle();
            nuint length = 0;
            for (int capacity = 16 * 1024; ; )
            {
                byte[] buffer = new byte[capacity];
                Status s;
                fixed (byte* p = buffer) s = Native.LimiterPrometheusText(p, (nuint)buffer.Length, &length, h);
                if (s != Status.Ok) throw new InvalidOperationException($"Tollgate: tg_limiter_prometheus_text failed ({s})");
                if (length < (nuint)buffer.Length) return Encoding.UTF8.GetString(buffer, 0, (int)length);
                capacity = (int)length + 1024;  // the counters may grow between the two calls
            }
        }
        finally
        {
            if (added) Handle.DangerousRelease();
        }
    }

    /// <summary>A <see cref="RateLimiter"/> for one key (a tenant): a light view over this limiter.</summary>
    public TollgateRateLimiter ForKey(string key) => new(this, key, permits: false);

    /// <summary>A <see cref="RateLimiter"/> for one key of a concurrency policy: leases hold permits until disposed.</summary>
    public TollgateRateLimiter ForConcurrencyKey(string key) => new(this, key, permits: true);

    /// <summary>A partition for <c>AddRateLimiter</c> policies and <c>GlobalLimiter</c>: one key per partition.</summary>
    public RateLimitPartition<string> Partition(string key) =>
        RateLimitPartition.Get(key, k => ForKey(k));

    /// <summary>A partitioned limiter keyed by <paramref name="keyOf"/> (for example the tenant of a request).</summary>
    public PartitionedRateLimiter<TResource> CreatePartitioned<TResource>(Func<TResource, string> keyOf)
    {
        ArgumentNullException.ThrowIfNull(keyOf);
        return PartitionedRateLimiter.Create<TResource, string>(r => Partition(keyOf(r)));
    }

    // ---- native callbacks ----------------------------------------------------------------------

    // A native wait in progress: its cancellation token cancels it natively (tg_cancel).
    private abstract class PendingBase
    {
        private readonly TollgateLimiter _owner;
        protected readonly CancellationToken Token;
        private CancellationTokenRegistration _registration;
        private ulong _id;

        protected PendingBase(TollgateLimiter owner, CancellationToken token)
        {
            _owner = owner;
            Token = token;
        }

        protected abstract bool IsCompleted { get; }

        public void Watch(ulong id)
        {
            if (!Token.CanBeCanceled) return;
            _id = id;
            _registration = Token.UnsafeRegister(static s => ((PendingBase)s!).Cancel(), this);
            if (IsCompleted) _registration.Unregister();
        }

        // Never Dispose the registration: it would wait for Cancel, which may be the caller.
        protected void Unregister() => _registration.Unregister();

        // Whether the wait ended by this token's cancellation (else: a result).
        protected bool CancelledByToken(in Decision d) =>
            d.Reason == Reason.Cancelled && Token.IsCancellationRequested;

        private void Cancel()
        {
            LimiterHandle h = _owner.Handle;
            bool added = false;
            try
            {
                h.DangerousAddRef(ref added);
                int cancelled;
                Native.Cancel(&cancelled, h.DangerousGetHandle(), _id);
            }
            catch (ObjectDisposedException)
            {
                // Disposing completed the wait already (shutdown).
            }
            finally
            {
                if (added) h.DangerousRelease();
            }
        }
    }

    private sealed class PendingWait : PendingBase
    {
        private readonly TaskCompletionSource<Decision> _tcs =
            new(TaskCreationOptions.RunContinuationsAsynchronously);

        public PendingWait(TollgateLimiter owner, CancellationToken token) : base(owner, token) { }

        public Task<Decision> Task => _tcs.Task;
        protected override bool IsCompleted => _tcs.Task.IsCompleted;

        public void Complete(in NativeDecision d)
        {
            Decision decision = Native.ToDecision(d);
            Unregister();
            if (CancelledByToken(decision)) _tcs.TrySetCanceled(Token);
            else _tcs.TrySetResult(decision);
        }
    }

    private sealed class PendingReservation : PendingBase
    {
        private readonly TaskCompletionSource<TollgateReservation> _tcs =
            new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly long _estimate;

        public PendingReservation(TollgateLimiter owner, CancellationToken token, long estimate)
            : base(owner, token) => _estimate = estimate;

        public Task<TollgateReservation> Task => _tcs.Task;
        protected override bool IsCompleted => _tcs.Task.IsCompleted;

        // Owns `reservation` (0 when denied) from here on: adopted, or destroyed (settled at the
        // estimate) if that fails.
        public void Complete(nint reservation, in NativeDecision d)
        {
            ReservationHandle handle;
            try
            {
                handle = new ReservationHandle();
            }
            catch
            {
                if (reservation != 0) Native.ReservationDestroy(&reservation);
                throw;
            }
            if (reservation != 0) handle.Adopt(reservation);
            Decision decision = Native.ToDecision(d);
            Unregister();
            if (CancelledByToken(decision)) _tcs.TrySetCanceled(Token);
            else _tcs.TrySetResult(new TollgateReservation(handle, decision, _estimate));
        }
    }

    [UnmanagedCallersOnly(CallConvs = new[] { typeof(CallConvCdecl) })]
    private static void OnCompletion(NativeDecision* decision, nint userData)
    {
        GCHandle h = GCHandle.FromIntPtr(userData);
        var wait = (PendingWait)h.Target!;
        h.Free();
        Interlocked.Decrement(ref s_pendingWaits);
        try
        {
            wait.Complete(*decision);
        }
        catch
        {
            // Nothing may unwind into native code; TrySet* does not throw.
        }
    }

    [UnmanagedCallersOnly(CallConvs = new[] { typeof(CallConvCdecl) })]
    private static void OnReserved(nint reservation, NativeDecision* decision, nint userData)
    {
        GCHandle h = GCHandle.FromIntPtr(userData);
        var wait = (PendingReservation)h.Target!;
        h.Free();
        Interlocked.Decrement(ref s_pendingWaits);
        try
        {
            wait.Complete(reservation, *decision);
        }
        catch
        {
            // Nothing may unwind into native code; Complete freed what it did not adopt.
        }
    }

    private static TollgateLimiter? Owner(nint userData) =>
        GCHandle.FromIntPtr(userData).Target is WeakReference<TollgateLimiter> w && w.TryGetTarget(out var l)
            ? l
            : null;

    [UnmanagedCallersOnly(CallConvs = new[] { typeof(CallConvCdecl) })]
    private static void OnLease(NativeLeaseEvent* e, nint userData)
    {
        try
        {
            TollgateTelemetry.Lease(Owner(userData), e->Id, new LeaseEvent((int)e->Keys, (int)e->FailedKeys,
                e->TokensAsked, e->TokensGranted, TimeSpan.FromTicks(e->DurationNs / 100), e->Outcome != 0));
        }
        catch
        {
            // A listener's exception must not unwind into the SDK thread.
        }
    }

    [UnmanagedCallersOnly(CallConvs = new[] { typeof(CallConvCdecl) })]
    private static void OnLeaseStart(NativeLeaseStartEvent* e, nint userData)
    {
        try
        {
            Owner(userData)?.Spans.Start(e->Id, e->Keys, e->TokensAsked);
        }
        catch
        {
            // A listener's exception must not unwind into the SDK thread.
        }
    }

    [UnmanagedCallersOnly(CallConvs = new[] { typeof(CallConvCdecl) })]
    private static void OnLog(int level, byte* message, nuint length, nint userData)
    {
        try
        {
            Owner(userData)?._log?.Invoke((TollgateLogLevel)level,
                Encoding.UTF8.GetString(message, (int)length));
        }
        catch
        {
        }
    }

    // ---- helpers -------------------------------------------------------------------------------

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static ulong Cost(long cost) => cost <= 0 ? 0 : (ulong)cost;

    private static ReadOnlySpan<byte> Utf8(string key, Span<byte> buffer, out byte[]? heap)
    {
        heap = null;
        if (Encoding.UTF8.TryGetBytes(key, buffer, out int n)) return buffer[..n];
        heap = Encoding.UTF8.GetBytes(key);
        return heap;
    }

    private static byte[] NullTerminated(string s)
    {
        byte[] b = new byte[Encoding.UTF8.GetByteCount(s) + 1];
        Encoding.UTF8.GetBytes(s, 0, s.Length, b, 0);
        return b;
    }

    private static Exception Failure(Status s, byte* err)
    {
        string message = Marshal.PtrToStringUTF8((nint)err) ?? s.ToString();
        return s == Status.Config
            ? new TollgateConfigException($"Tollgate config: {message}")
            : new InvalidOperationException($"Tollgate: {message} ({s})");
    }
}

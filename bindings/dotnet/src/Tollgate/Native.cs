// The C API (sdk/include/tollgate/tollgate.h) through source-generated P/Invoke.
using System;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Threading;

namespace Tollgate;

internal enum Status
{
    Ok = 0,
    InvalidArgument = 1,
    Config = 2,
    NoMemory = 3,
    Internal = 4,
}

[StructLayout(LayoutKind.Sequential)]
internal struct NativeDecision
{
    public int Allowed;
    public int Reason;
    public long Remaining;
    public long RetryAfterNs;
}

[StructLayout(LayoutKind.Sequential)]
internal struct NativeLeaseEvent
{
    public uint Keys;
    public uint FailedKeys;
    public ulong TokensAsked;
    public ulong TokensGranted;
    public long DurationNs;
    public int Outcome;
    public ulong Id;
}

[StructLayout(LayoutKind.Sequential)]
internal struct NativeLeaseStartEvent
{
    public ulong Id;
    public uint Keys;
    public ulong TokensAsked;
}

[StructLayout(LayoutKind.Sequential)]
internal struct NativeBreakerEvent
{
    public uint Shard;
    public int From;
    public int To;
}

[StructLayout(LayoutKind.Sequential)]
internal unsafe struct NativeLimiterOptions
{
    public uint Version;
    public delegate* unmanaged[Cdecl]<NativeLeaseEvent*, nint, void> OnLease;
    public delegate* unmanaged[Cdecl]<NativeBreakerEvent*, nint, void> OnBreaker;
    public delegate* unmanaged[Cdecl]<int, byte*, nuint, nint, void> OnLog;
    public int MinLogLevel;
    public nint ObserverUserData;
    public delegate* unmanaged[Cdecl]<NativeLeaseStartEvent*, nint, void> OnLeaseStart;
}

// tg_stats. StatsLayoutTests checks every field against the loaded library's tg_stats_field
// (names and offsets), so a field added there and not here fails a test.
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct NativeStats
{
    public uint Version;
    public ulong Admitted;
    public ulong AdmittedTokens;
    public ulong DeniedTotal;
    public fixed ulong Denied[Native.StatsDeniedSlots];  // TG_STATS_DENIED_SLOTS
    public ulong LeasesAsked;
    public ulong LeasesGranted;
    public ulong TokensLeased;
    public ulong TokensGivenBack;
    public ulong TokensExpired;
    public ulong KeysTracked;
    public ulong KeysEvicted;
    public ulong BytesUsed;
    public ulong LeaseFailures;
    public ulong BreakerTransitions;
    public ulong BreakersOpened;
    public uint Shards;
    public uint BreakersClosed;
    public uint BreakersOpen;
    public uint BreakersHalfOpen;
    public ulong FallbackTokens;
    public ulong FallbackDropped;
    public ulong DeniedOverGroupLimit;  // version 2
    public ulong BulkheadRejected;      // version 3
    public ulong ShortCircuited;
    public ulong StoreRetries;
    public ulong RefillsOverdue;  // version 4
    public ulong ConfigUpdates;
    public ulong ConfigRejected;
    public ulong KeysMoved;
    public ulong ShadowAdmitted;
    public ulong Reserved;  // version 5
    public ulong SettledUnder;
    public ulong SettledOver;
    public ulong DebtTokens;
    public ulong DeniedInDebt;
}

// tg_policy_stats: one policy value's decisions (tg_limiter_policy_stats).
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct NativePolicyStats
{
    public ulong Admitted;
    public ulong AdmittedTokens;
    public fixed ulong Denied[Native.PolicyStatsReasons];  // TG_POLICY_STATS_REASONS, by tg_reason
}

internal static unsafe partial class Native
{
    private const string Library = "tollgate";

    // The binding needs at least this library version (TG_VERSION_NUM), and the same major.
    internal const int MinimumVersionNum = 100;
    internal const uint LimiterOptionsVersion = 1;
    internal const uint StatsVersion = 5;
    // TG_STATS_DENIED_SLOTS: tg_stats.denied[] counts the reasons of version 1; later ones
    // have fields of their own at the end.
    internal const int StatsDeniedSlots = 15;
    // TG_REASON_COUNT (GroupTests checks it against the loaded library: tg_reason_str knows
    // exactly this many reasons).
    internal const int ReasonCount = 17;
    // TG_POLICY_STATS_REASONS and TG_POLICY_VALUES_MAX (tollgate.h).
    internal const int PolicyStatsReasons = 32;
    internal const int PolicyValuesMax = 16;

    [LibraryImport(Library, EntryPoint = "tg_version_num")]
    internal static partial int VersionNum();

    [LibraryImport(Library, EntryPoint = "tg_version")]
    internal static partial byte* Version();

    [LibraryImport(Library, EntryPoint = "tg_reason_str")]
    internal static partial byte* ReasonStr(int reason);

    [LibraryImport(Library, EntryPoint = "tg_config_validate")]
    internal static partial Status ConfigValidate(byte* configJson, byte* errstr, nuint errstrSize);

    [LibraryImport(Library, EntryPoint = "tg_limiter_create")]
    internal static partial Status LimiterCreate(nint* outLimiter, byte* configJson,
        NativeLimiterOptions* options, byte* errstr, nuint errstrSize);

    [LibraryImport(Library, EntryPoint = "tg_limiter_update")]
    internal static partial Status LimiterUpdate(nint limiter, byte* configJson, byte* errstr,
        nuint errstrSize);

    [LibraryImport(Library, EntryPoint = "tg_limiter_destroy")]
    internal static partial void LimiterDestroy(nint* limiter);

    // Never blocks and never calls back into the runtime: no GC transition needed.
    [LibraryImport(Library, EntryPoint = "tg_try_acquire")]
    [SuppressGCTransition]
    internal static partial Status TryAcquire(NativeDecision* outDecision, nint limiter, byte* key,
        nuint keyLen, ulong cost);

    [LibraryImport(Library, EntryPoint = "tg_key_create")]
    internal static partial Status KeyCreate(nint* outKey, nint limiter, byte* key, nuint keyLen);

    [LibraryImport(Library, EntryPoint = "tg_key_destroy")]
    internal static partial void KeyDestroy(nint* key);

    // The hot call of a view: as tg_try_acquire, through a key resolved once (no hashing).
    [LibraryImport(Library, EntryPoint = "tg_try_acquire_key")]
    [SuppressGCTransition]
    internal static partial Status TryAcquireKey(NativeDecision* outDecision, nint key, ulong cost);

    [LibraryImport(Library, EntryPoint = "tg_acquire_async")]
    internal static partial Status AcquireAsync(ulong* outWaitId, nint limiter, byte* key,
        nuint keyLen, ulong cost, long timeoutNs,
        delegate* unmanaged[Cdecl]<NativeDecision*, nint, void> done, nint userData);

    [LibraryImport(Library, EntryPoint = "tg_cancel")]
    internal static partial Status Cancel(int* outCancelled, nint limiter, ulong waitId);

    [LibraryImport(Library, EntryPoint = "tg_acquire_permit")]
    internal static partial Status AcquirePermit(nint* outPermit, NativeDecision* outDecision,
        nint limiter, byte* key, nuint keyLen, uint count);

    [LibraryImport(Library, EntryPoint = "tg_permit_destroy")]
    internal static partial void PermitDestroy(nint* permit);

    [LibraryImport(Library, EntryPoint = "tg_reserve")]
    internal static partial Status Reserve(nint* outReservation, NativeDecision* outDecision,
        nint limiter, byte* key, nuint keyLen, ulong estimate, long timeoutNs);

    [LibraryImport(Library, EntryPoint = "tg_reserve_async")]
    internal static partial Status ReserveAsync(ulong* outWaitId, nint limiter, byte* key,
        nuint keyLen, ulong estimate, long timeoutNs,
        delegate* unmanaged[Cdecl]<nint, NativeDecision*, nint, void> done, nint userData);

    [LibraryImport(Library, EntryPoint = "tg_settle")]
    internal static partial Status Settle(NativeSettlement* outSettlement, nint reservation, ulong actual);

    [LibraryImport(Library, EntryPoint = "tg_reservation_destroy")]
    internal static partial void ReservationDestroy(nint* reservation);

    [LibraryImport(Library, EntryPoint = "tg_limiter_stats")]
    internal static partial Status LimiterStats(NativeStats* outStats, nint limiter);

    [LibraryImport(Library, EntryPoint = "tg_stats_field")]
    internal static partial byte* StatsField(nuint* outOffset, nuint index);

    [LibraryImport(Library, EntryPoint = "tg_limiter_prometheus_text")]
    internal static partial Status LimiterPrometheusText(byte* outText, nuint capacity, nuint* outLength,
        nint limiter);

    [LibraryImport(Library, EntryPoint = "tg_limiter_policy_stats")]
    internal static partial Status LimiterPolicyStats(NativePolicyStats* outStats, nuint capacity, nuint* outCount,
        nint limiter);

    [LibraryImport(Library, EntryPoint = "tg_limiter_policy_name")]
    internal static partial Status LimiterPolicyName(byte* outName, nuint capacity, nuint* outLength,
        nint limiter, nuint label);

    [LibraryImport(Library, EntryPoint = "tg_limiter_breakers")]
    internal static partial Status LimiterBreakers(int* outStates, nuint capacity, nuint* outCount,
        nint limiter);

    private static int s_checked;

    /// <summary>Refuses a native library older than this binding was built for (once).</summary>
    internal static void EnsureCompatible()
    {
        if (Volatile.Read(ref s_checked) != 0) return;
        int loaded;
        try
        {
            loaded = VersionNum();
        }
        catch (DllNotFoundException e)
        {
            throw new DllNotFoundException(
                "Tollgate: the native library libtollgate.so was not found. The Tollgate package " +
                "carries it under runtimes/linux-x64/native/; other platforms need it on the " +
                "library path.", e);
        }
        if (loaded < MinimumVersionNum || loaded / 10000 != MinimumVersionNum / 10000)
        {
            throw new InvalidOperationException(
                $"Tollgate: the native library is version {Marshal.PtrToStringUTF8((nint)Version())}, " +
                $"but this binding needs {MinimumVersionNum / 10000}.{MinimumVersionNum / 100 % 100}." +
                $"{MinimumVersionNum % 100} or newer with the same major version.");
        }
        Volatile.Write(ref s_checked, 1);
    }

    internal static string NativeVersion => Marshal.PtrToStringUTF8((nint)Version()) ?? "";

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Decision ToDecision(in NativeDecision d) =>
        new(d.Allowed != 0, (Reason)d.Reason, d.Remaining,
            d.RetryAfterNs > 0 ? TimeSpan.FromTicks(d.RetryAfterNs / 100) : TimeSpan.Zero);
}

/// <summary>A native object behind a SafeHandle; counts the open ones (the tests check for leaks).</summary>
internal abstract class NativeHandle : SafeHandle
{
    protected NativeHandle() : base(IntPtr.Zero, ownsHandle: true) { }

    public override bool IsInvalid => handle == IntPtr.Zero;

    protected abstract ref long OpenCount { get; }

    internal void Adopt(nint h)
    {
        SetHandle(h);
        Interlocked.Increment(ref OpenCount);
    }

    protected sealed override bool ReleaseHandle()
    {
        Destroy(handle);
        Interlocked.Decrement(ref OpenCount);
        return true;
    }

    protected abstract void Destroy(nint h);
}

/// <summary>Owns a native tg_limiter; destroying it completes pending waits (shutdown).</summary>
internal sealed class LimiterHandle : NativeHandle
{
    private static long s_open;
    internal static long Open => Interlocked.Read(ref s_open);
    protected override ref long OpenCount => ref s_open;

    // The observer's GCHandle: freed after tg_limiter_destroy, which promises no callback after.
    internal GCHandle Observer;

    protected override unsafe void Destroy(nint h)
    {
        Native.LimiterDestroy(&h);
        if (Observer.IsAllocated) Observer.Free();
    }
}

/// <summary>Owns permits taken from a concurrency policy; releasing returns them.</summary>
// tg_settlement.
[StructLayout(LayoutKind.Sequential)]
internal struct NativeSettlement
{
    public int Reason;
    public ulong Charged;
    public ulong Refunded;
    public ulong Dropped;
    public ulong Debt;
    public ulong Uncharged;
}

/// <summary>Owns a native tg_reservation; releasing it settles an unsettled one at the estimate.</summary>
internal sealed class ReservationHandle : NativeHandle
{
    private static long s_open;
    internal static long Open => Interlocked.Read(ref s_open);
    protected override ref long OpenCount => ref s_open;

    protected override unsafe void Destroy(nint h) => Native.ReservationDestroy(&h);
}

internal sealed class PermitHandle : NativeHandle
{
    private static long s_open;
    internal static long Open => Interlocked.Read(ref s_open);
    protected override ref long OpenCount => ref s_open;

    protected override unsafe void Destroy(nint h) => Native.PermitDestroy(&h);
}

/// <summary>
/// Owns a native tg_key (a key resolved once). Never disposed while its view lives: a view's
/// AttemptAcquire calls tg_try_acquire_key without a reference on this handle, so the native
/// key is freed only when the view, and with it every call through it, is gone (the
/// finalizer). The tg_key keeps the native limiter's core alive, so a call racing
/// TollgateLimiter.Dispose spends from memory that is still there.
/// </summary>
internal sealed class KeyHandle : NativeHandle
{
    private static long s_open;
    internal static long Open => Interlocked.Read(ref s_open);
    protected override ref long OpenCount => ref s_open;

    protected override unsafe void Destroy(nint h) => Native.KeyDestroy(&h);
}

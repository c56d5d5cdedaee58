using System;
using System.Collections.Generic;

namespace Tollgate;

/// <summary>Why a decision came out as it did. Same values as the C API's tg_reason.</summary>
public enum Reason : byte
{
    /// <summary>Admitted from a locally held lease.</summary>
    Ok = 0,
    /// <summary>The global quota is spent; RetryAfter says when it refills.</summary>
    OverLimit = 1,
    /// <summary>First sight of the key; no lease yet.</summary>
    ColdKey = 2,
    /// <summary>The local lease was spent faster than the refill arrived.</summary>
    LeasePending = 3,
    /// <summary>Denied too often recently; refused without asking the store.</summary>
    PenaltyBox = 4,
    /// <summary>Async acquire: the key's wait queue is full.</summary>
    QueueFull = 5,
    /// <summary>Async acquire: no tokens within the timeout.</summary>
    Timeout = 6,
    /// <summary>Async acquire: cancelled.</summary>
    Cancelled = 7,
    /// <summary>max_keys reached and nothing could be evicted.</summary>
    KeyTableFull = 8,
    /// <summary>No policy matches the key.</summary>
    NoPolicy = 9,
    /// <summary>Empty or too long key, cost 0, or cost above the policy's capacity.</summary>
    InvalidArgument = 10,
    /// <summary>Store unavailable; decided by the local fallback bucket.</summary>
    FallbackLocal = 11,
    /// <summary>Store unavailable; fallback = deny.</summary>
    FallbackDeny = 12,
    /// <summary>Store unavailable; fallback = allow.</summary>
    FallbackAllow = 13,
    /// <summary>The limiter is being disposed.</summary>
    Shutdown = 14,
    /// <summary>
    /// The key's group budget is spent, or the key's fair share of it (docs/quotas.md);
    /// <see cref="OverLimit"/> is the key's own quota. RetryAfter says when its share refills.
    /// </summary>
    OverGroupLimit = 15,
    /// <summary>
    /// An over-settled reservation left the key owing more than its local balance held; the
    /// debt is paid first out of its next leases. RetryAfter says when that is expected.
    /// </summary>
    InDebt = 16,
}

/// <summary>The answer to one acquire.</summary>
/// <param name="Allowed">Admitted or not.</param>
/// <param name="Reason">Why.</param>
/// <param name="Remaining">Tokens (permits) left in the key's local lease.</param>
/// <param name="RetryAfter">When denied: how long until a retry may succeed (zero: unknown).</param>
public readonly record struct Decision(bool Allowed, Reason Reason, long Remaining, TimeSpan RetryAfter);

/// <summary>A Redis shard's circuit breaker.</summary>
public enum BreakerState
{
    /// <summary>Calls go through.</summary>
    Closed = 0,
    /// <summary>Calls are refused until the break duration has passed.</summary>
    Open = 1,
    /// <summary>A few probe calls decide whether to close again.</summary>
    HalfOpen = 2,
}

/// <summary>Level of a native log line.</summary>
public enum TollgateLogLevel
{
    /// <summary>Detail.</summary>
    Debug = 0,
    /// <summary>Normal events.</summary>
    Information = 1,
    /// <summary>Something went wrong and was handled.</summary>
    Warning = 2,
    /// <summary>Something failed.</summary>
    Error = 3,
}

/// <summary>Counters of one limiter since it started (the native library declares them once, in
/// tollgate/stats_list.h; StatsLayoutTests fails when one is missing here).</summary>
public sealed class TollgateStats
{
    /// <summary>Decisions that admitted.</summary>
    public ulong Admitted { get; init; }
    /// <summary>Their summed cost.</summary>
    public ulong AdmittedTokens { get; init; }
    /// <summary>All denials.</summary>
    public ulong Denied { get; init; }
    /// <summary>Denials by reason.</summary>
    public IReadOnlyDictionary<Reason, ulong> DeniedByReason { get; init; } = new Dictionary<Reason, ulong>();
    /// <summary>Lease requests sent.</summary>
    public ulong LeasesAsked { get; init; }
    /// <summary>Lease answers that granted something.</summary>
    public ulong LeasesGranted { get; init; }
    /// <summary>Tokens received in leases.</summary>
    public ulong TokensLeased { get; init; }
    /// <summary>Unspent tokens given back.</summary>
    public ulong TokensGivenBack { get; init; }
    /// <summary>Leased, unspent, expired before they could go back.</summary>
    public ulong TokensExpired { get; init; }
    /// <summary>Keys evicted from the key table.</summary>
    public ulong KeysEvicted { get; init; }
    /// <summary>Keys whose lease request failed.</summary>
    public ulong LeaseFailures { get; init; }
    /// <summary>Tokens the local fallback buckets handed out while a shard was unavailable.</summary>
    public ulong FallbackTokens { get; init; }
    /// <summary>Of which unspent when the shard came back.</summary>
    public ulong FallbackDropped { get; init; }
    /// <summary>Keys tracked now.</summary>
    public ulong KeysTracked { get; init; }
    /// <summary>Bytes the key table, its entries and the wait queues use now.</summary>
    public ulong BytesUsed { get; init; }
    /// <summary>Circuit breaker state changes, all shards.</summary>
    public ulong BreakerTransitions { get; init; }
    /// <summary>Of which to open.</summary>
    public ulong BreakersOpened { get; init; }
    /// <summary>Keys refused at once: their shard's bulkhead was full.</summary>
    public ulong BulkheadRejected { get; init; }
    /// <summary>Keys failed at once: their shard's circuit breaker was open.</summary>
    public ulong ShortCircuited { get; init; }
    /// <summary>Lease batches sent again after a transport failure.</summary>
    public ulong StoreRetries { get; init; }
    /// <summary>Keys whose refill was overdue: they went to the fallback.</summary>
    public ulong RefillsOverdue { get; init; }
    /// <summary>Config updates applied (<see cref="TollgateLimiter.Update"/>).</summary>
    public ulong ConfigUpdates { get; init; }
    /// <summary>Config updates refused; the running config stayed.</summary>
    public ulong ConfigRejected { get; init; }
    /// <summary>Keys moved to another policy by an update.</summary>
    public ulong KeysMoved { get; init; }
    /// <summary>Denials of shadow policies, admitted anyway (also counted as denied).</summary>
    public ulong ShadowAdmitted { get; init; }
    /// <summary>Reservations admitted (also counted in Admitted).</summary>
    public ulong Reserved { get; init; }
    /// <summary>Reservations settled below their estimate.</summary>
    public ulong SettledUnder { get; init; }
    /// <summary>Reservations settled above their estimate.</summary>
    public ulong SettledOver { get; init; }
    /// <summary>Tokens over-settles charged beyond the local balance, carried as debt.</summary>
    public ulong DebtTokens { get; init; }
    /// <summary>Each shard's breaker now (empty for the in-process store).</summary>
    public IReadOnlyList<BreakerState> Breakers { get; init; } = Array.Empty<BreakerState>();
    /// <summary>
    /// Decisions by policy value, "other" first (the <c>tollgate.policy</c> attribute; they sum to
    /// <see cref="Admitted"/>, <see cref="AdmittedTokens"/> and <see cref="DeniedByReason"/>).
    /// </summary>
    public IReadOnlyList<TollgatePolicyStats> Policies { get; init; } = Array.Empty<TollgatePolicyStats>();

    internal static unsafe TollgateStats From(NativeStats s, BreakerState[] breakers,
        TollgatePolicyStats[]? policies = null)
    {
        var byReason = new Dictionary<Reason, ulong>();
        for (int i = 0; i < Native.StatsDeniedSlots; i++)
        {
            ulong n = s.Denied[i];
            if (n != 0) byReason[(Reason)i] = n;
        }
        if (s.DeniedOverGroupLimit != 0) byReason[Reason.OverGroupLimit] = s.DeniedOverGroupLimit;
        if (s.DeniedInDebt != 0) byReason[Reason.InDebt] = s.DeniedInDebt;
        return new TollgateStats
        {
            Admitted = s.Admitted,
            AdmittedTokens = s.AdmittedTokens,
            Denied = s.DeniedTotal,
            DeniedByReason = byReason,
            LeasesAsked = s.LeasesAsked,
            LeasesGranted = s.LeasesGranted,
            TokensLeased = s.TokensLeased,
            TokensGivenBack = s.TokensGivenBack,
            TokensExpired = s.TokensExpired,
            KeysEvicted = s.KeysEvicted,
            LeaseFailures = s.LeaseFailures,
            FallbackTokens = s.FallbackTokens,
            FallbackDropped = s.FallbackDropped,
            KeysTracked = s.KeysTracked,
            BytesUsed = s.BytesUsed,
            BreakerTransitions = s.BreakerTransitions,
            BreakersOpened = s.BreakersOpened,
            BulkheadRejected = s.BulkheadRejected,
            ShortCircuited = s.ShortCircuited,
            StoreRetries = s.StoreRetries,
            RefillsOverdue = s.RefillsOverdue,
            ConfigUpdates = s.ConfigUpdates,
            ConfigRejected = s.ConfigRejected,
            KeysMoved = s.KeysMoved,
            ShadowAdmitted = s.ShadowAdmitted,
            Reserved = s.Reserved,
            SettledUnder = s.SettledUnder,
            SettledOver = s.SettledOver,
            DebtTokens = s.DebtTokens,
            Breakers = breakers,
            Policies = policies ?? Array.Empty<TollgatePolicyStats>(),
        };
    }
}

/// <summary>
/// The decisions under one value of the <c>tollgate.policy</c> attribute (docs/observability.md,
/// "Decisions per policy"): a policy's configured name, or "other" for the policies without a name
/// of their own (none, or their match), the decisions no policy made, and the names past the first
/// 15 a limiter has seen. Never a key.
/// </summary>
public sealed class TollgatePolicyStats
{
    /// <summary>The attribute's value.</summary>
    public string Name { get; init; } = "";
    /// <summary>Decisions that admitted.</summary>
    public ulong Admitted { get; init; }
    /// <summary>Their summed cost.</summary>
    public ulong AdmittedTokens { get; init; }
    /// <summary>Denials by reason.</summary>
    public IReadOnlyDictionary<Reason, ulong> DeniedByReason { get; init; } = new Dictionary<Reason, ulong>();

    internal static unsafe TollgatePolicyStats From(string name, in NativePolicyStats s)
    {
        var byReason = new Dictionary<Reason, ulong>();
        for (int i = 1; i < Native.ReasonCount; i++)
            if (s.Denied[i] != 0) byReason[(Reason)i] = s.Denied[i];
        return new TollgatePolicyStats
        {
            Name = name,
            Admitted = s.Admitted,
            AdmittedTokens = s.AdmittedTokens,
            DeniedByReason = byReason,
        };
    }
}

/// <summary>A configuration the native library refused; the message names the field.</summary>
public sealed class TollgateConfigException : ArgumentException
{
    /// <summary>Creates the exception.</summary>
    public TollgateConfigException(string message) : base(message) { }
}

/// <summary>One lease round trip (a batch of keys sent to the store together), reported when it ended.</summary>
public readonly record struct LeaseEvent(int Keys, int FailedKeys, ulong TokensAsked, ulong TokensGranted,
    TimeSpan Duration, bool Failed);

/// <summary>A shard's circuit breaker changed state.</summary>
public readonly record struct BreakerEvent(int Shard, BreakerState From, BreakerState To);

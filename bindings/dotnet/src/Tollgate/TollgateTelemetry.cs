using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Runtime.CompilerServices;

namespace Tollgate;

/// <summary>
/// The <see cref="Meter"/> and <see cref="ActivitySource"/> named "Tollgate", in the metric
/// vocabulary every binding shares (sdk/src/telemetry/metrics.json, docs/observability.md).
/// Counters are read from the native counters when metrics are collected, so the hot path pays
/// nothing for them and they count what the C++ and Python bindings count. No tag carries a key
/// or tenant id.
/// </summary>
public static class TollgateTelemetry
{
    /// <summary>"Tollgate": the name of the meter and the activity source.</summary>
    public const string Name = "Tollgate";

    private static readonly string s_version = typeof(TollgateTelemetry).Assembly.GetName().Version?.ToString(3) ?? "0.0.0";

    /// <summary>Lease round trips as activities ("tollgate.lease").</summary>
    public static readonly ActivitySource ActivitySource = new(Name, s_version);

    /// <summary>Decisions, leases, keys and breakers as instruments.</summary>
    public static readonly Meter Meter = new(Name, s_version);

    private static readonly ConditionalWeakTable<TollgateLimiter, object> s_limiters = new();
    private static readonly object s_tag = new();

    // The counters of the vocabulary that are one native counter each (metrics.json, in order;
    // tollgate.decisions and tollgate.tokens.admitted are by policy, below).
    private static readonly (string Name, string Unit, string Description, Func<TollgateStats, ulong> Value)[] s_counters =
    {
        ("tollgate.lease.requests", "{request}", "Lease requests sent to the store, one per key", s => s.LeasesAsked),
        ("tollgate.lease.grants", "{lease}", "Lease answers that granted tokens", s => s.LeasesGranted),
        ("tollgate.lease.failures", "{request}", "Lease requests that failed (shard unavailable)", s => s.LeaseFailures),
        ("tollgate.lease.tokens.granted", "{token}", "Tokens received in leases", s => s.TokensLeased),
        ("tollgate.lease.tokens.returned", "{token}", "Unspent leased tokens given back to the store", s => s.TokensGivenBack),
        ("tollgate.lease.tokens.expired", "{token}", "Leased tokens that expired unspent before they could go back", s => s.TokensExpired),
        ("tollgate.fallback.tokens", "{token}", "Tokens the local fallback buckets handed out while a shard was unavailable", s => s.FallbackTokens),
        ("tollgate.fallback.tokens.dropped", "{token}", "Fallback tokens unspent when the shard came back", s => s.FallbackDropped),
        ("tollgate.lease.overdue", "{key}", "Keys whose refill was overdue and went to the fallback", s => s.RefillsOverdue),
        ("tollgate.keys.evicted", "{key}", "Keys evicted from the key table", s => s.KeysEvicted),
        ("tollgate.breaker.transitions", "{transition}", "Circuit breaker state changes, all shards", s => s.BreakerTransitions),
        ("tollgate.breaker.openings", "{transition}", "Circuit breaker changes to open, all shards", s => s.BreakersOpened),
        ("tollgate.store.bulkhead.rejections", "{request}", "Lease requests refused at once because their shard's bulkhead was full", s => s.BulkheadRejected),
        ("tollgate.store.short_circuits", "{request}", "Lease requests failed at once because their shard's circuit breaker was open", s => s.ShortCircuited),
        ("tollgate.store.retries", "{batch}", "Lease batches sent again after a transport failure", s => s.StoreRetries),
        ("tollgate.config.updates", "{update}", "Config updates applied to the running limiter", s => s.ConfigUpdates),
        ("tollgate.config.rejections", "{update}", "Config updates refused (the running config stayed)", s => s.ConfigRejected),
        ("tollgate.keys.moved", "{key}", "Keys moved to another policy by a config update", s => s.KeysMoved),
        ("tollgate.shadow.admissions", "{decision}", "Denials of shadow policies, admitted anyway (also counted as denied)", s => s.ShadowAdmitted),
        ("tollgate.reservations", "{reservation}", "Reservations of an estimated cost admitted (also counted as decisions)", s => s.Reserved),
        ("tollgate.reservations.settled.under", "{reservation}", "Reservations settled below their estimate (the rest went back to the local balance)", s => s.SettledUnder),
        ("tollgate.reservations.settled.over", "{reservation}", "Reservations settled above their estimate (the extra charged)", s => s.SettledOver),
        ("tollgate.debt.tokens", "{token}", "Tokens over-settled reservations charged beyond the local balance, carried as debt", s => s.DebtTokens),
    };

    // The gauges that are one native value each.
    private static readonly (string Name, string Unit, string Description, Func<TollgateStats, ulong> Value)[] s_gauges =
    {
        ("tollgate.keys.tracked", "{key}", "Keys in the key table now", s => s.KeysTracked),
        ("tollgate.memory.usage", "By", "Bytes held by the key table, its entries, wait queues and timers", s => s.BytesUsed),
    };

    private static readonly Histogram<double> s_leaseDuration = CreateLeaseDuration();

    static TollgateTelemetry()
    {
        Meter.CreateObservableCounter("tollgate.decisions", ObserveDecisions, "{decision}",
            "Decisions, by result, reason and policy");
        Meter.CreateObservableCounter("tollgate.tokens.admitted", ObserveAdmittedTokens, "{token}",
            "Tokens (summed cost) of the decisions that admitted");
        foreach (var c in s_counters)
        {
            Func<TollgateStats, ulong> value = c.Value;
            Meter.CreateObservableCounter(c.Name, () => Sum(value), c.Unit, c.Description);
        }
        foreach (var g in s_gauges)
        {
            Func<TollgateStats, ulong> value = g.Value;
            Meter.CreateObservableUpDownCounter(g.Name, () => Sum(value), g.Unit, g.Description);
        }
        Meter.CreateObservableUpDownCounter("tollgate.breaker.state", ObserveBreakers, "{shard}",
            "1 for each shard's circuit breaker state now, 0 for the states it is not in");
    }

    private static Histogram<double> CreateLeaseDuration()
    {
        const string name = "tollgate.lease.duration", description = "Duration of lease round trips to the store, by outcome";
#if NET9_0_OR_GREATER
        // The buckets of metrics.json (histogram_buckets_seconds), as the C++ exposition has them.
        return Meter.CreateHistogram<double>(name, "s", description, tags: null, new InstrumentAdvice<double>
        {
            HistogramBucketBoundaries = new[] { 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5 },
        });
#else
        return Meter.CreateHistogram<double>(name, "s", description);
#endif
    }

    internal static void Track(TollgateLimiter limiter) => s_limiters.AddOrUpdate(limiter, s_tag);

    internal static void Untrack(TollgateLimiter limiter) => s_limiters.Remove(limiter);

    internal static void Lease(TollgateLimiter? limiter, ulong id, in LeaseEvent e)
    {
        string outcome = e.Failed ? "failed" : "ok";
        s_leaseDuration.Record(e.Duration.TotalSeconds, new KeyValuePair<string, object?>("tollgate.outcome", outcome));
        limiter?.Spans.End(id, e, outcome);
    }

    internal static string StateName(BreakerState s) => s switch
    {
        BreakerState.Open => "open",
        BreakerState.HalfOpen => "half_open",
        _ => "closed",
    };

    private static List<TollgateStats> LiveStats()
    {
        var all = new List<TollgateStats>();
        foreach (var (limiter, _) in s_limiters)
        {
            try
            {
                all.Add(limiter.GetStats());
            }
            catch (ObjectDisposedException)
            {
            }
        }
        return all;
    }

    private static long Sum(Func<TollgateStats, ulong> value)
    {
        long n = 0;
        foreach (TollgateStats s in LiveStats()) n += (long)value(s);
        return n;
    }

    // By policy value, summed over limiters by name ("other" from the start).
    private static IEnumerable<Measurement<long>> ObserveAdmittedTokens()
    {
        var byPolicy = new Dictionary<string, long>(StringComparer.Ordinal) { ["other"] = 0 };
        foreach (TollgateStats s in LiveStats())
            foreach (TollgatePolicyStats p in s.Policies)
                byPolicy[p.Name] = byPolicy.GetValueOrDefault(p.Name) + (long)p.AdmittedTokens;
        var result = new List<Measurement<long>>(byPolicy.Count);
        foreach (var (policy, n) in byPolicy)
            result.Add(new(n, new KeyValuePair<string, object?>("tollgate.policy", policy)));
        return result;
    }

    // By policy value (summed over limiters by name) and reason; [0] is admitted.
    private static IEnumerable<Measurement<long>> ObserveDecisions()
    {
        var byPolicy = new Dictionary<string, long[]>(StringComparer.Ordinal) { ["other"] = new long[Native.ReasonCount] };
        foreach (TollgateStats s in LiveStats())
        {
            foreach (TollgatePolicyStats p in s.Policies)
            {
                if (!byPolicy.TryGetValue(p.Name, out long[]? counts))
                    byPolicy[p.Name] = counts = new long[Native.ReasonCount];
                counts[0] += (long)p.Admitted;
                foreach (var (reason, n) in p.DeniedByReason) counts[(int)reason] += (long)n;
            }
        }
        // Every series from the start, as the C++ exposition has them.
        var result = new List<Measurement<long>>(byPolicy.Count * Native.ReasonCount);
        foreach (var (policy, counts) in byPolicy)
        {
            var tag = new KeyValuePair<string, object?>("tollgate.policy", policy);
            result.Add(new(counts[0], new KeyValuePair<string, object?>("tollgate.result", "admitted"),
                new KeyValuePair<string, object?>("tollgate.reason", "ok"), tag));
            for (int i = 1; i < counts.Length; i++)
                result.Add(new(counts[i], new KeyValuePair<string, object?>("tollgate.result", "denied"),
                    new KeyValuePair<string, object?>("tollgate.reason", ReasonNames.Of((Reason)i)), tag));
        }
        return result;
    }

    // A state set per shard: 1 on the state it is in, 0 on the others (summed over limiters).
    private static IEnumerable<Measurement<long>> ObserveBreakers()
    {
        var counts = new List<long[]>();
        foreach (TollgateStats s in LiveStats())
        {
            for (int shard = 0; shard < s.Breakers.Count; shard++)
            {
                if (counts.Count <= shard) counts.Add(new long[3]);
                counts[shard][(int)s.Breakers[shard]]++;
            }
        }
        for (int shard = 0; shard < counts.Count; shard++)
            for (int state = 0; state < 3; state++)
                yield return new(counts[shard][state],
                    new KeyValuePair<string, object?>("tollgate.shard", shard),
                    new KeyValuePair<string, object?>("tollgate.breaker.state", StateName((BreakerState)state)));
    }
}

/// <summary>
/// A limiter's lease activities: each starts when its round trip starts (the native lease start
/// event) and stops when it ends, and is linked to the waiting acquires queued since the previous
/// one. Nothing here runs on the hot path: TryAcquire never touches it.
/// </summary>
internal sealed class LeaseSpans
{
    // Links kept for the next lease at most: waits whose lease never starts must not pile up.
    internal const int MaxLinks = 32;

    private readonly ConcurrentDictionary<ulong, Activity> _open = new();
    private readonly object _gate = new();
    private List<ActivityLink>? _waiting;

    // The waiting path, before the wait is queued (so the lease it causes finds it): the
    // caller's activity, when there is one and someone listens. Returns whether one was added.
    internal bool Waiting()
    {
        Activity? current = Activity.Current;
        if (current == null || !TollgateTelemetry.ActivitySource.HasListeners()) return false;
        lock (_gate)
        {
            _waiting ??= new List<ActivityLink>();
            if (_waiting.Count >= MaxLinks) return false;
            _waiting.Add(new ActivityLink(current.Context));
            return true;
        }
    }

    // The acquire was decided at once after all: it waited for no lease.
    internal void NotWaiting()
    {
        Activity? current = Activity.Current;
        if (current == null) return;
        lock (_gate)
        {
            int i = _waiting?.FindLastIndex(l => l.Context == current.Context) ?? -1;
            if (i >= 0) _waiting!.RemoveAt(i);
        }
    }

    // On the SDK's thread, before the request goes to the store.
    internal void Start(ulong id, uint keys, ulong tokensAsked)
    {
        if (!TollgateTelemetry.ActivitySource.HasListeners()) return;
        List<ActivityLink>? links;
        lock (_gate)
        {
            links = _waiting;
            _waiting = null;
        }
        Activity? previous = Activity.Current;
        Activity.Current = null;  // a root: the SDK thread's work belongs to no request
        Activity? a = TollgateTelemetry.ActivitySource.StartActivity("tollgate.lease", ActivityKind.Client,
            default(ActivityContext), null, links);
        Activity.Current = previous;  // the SDK thread's later work must not become its child
        if (a == null) return;
        a.SetTag("tollgate.keys", (int)keys);
        a.SetTag("tollgate.tokens.asked", (long)tokensAsked);
        if (!_open.TryAdd(id, a)) a.Dispose();
    }

    internal void End(ulong id, in LeaseEvent e, string outcome)
    {
        if (!_open.TryRemove(id, out Activity? a)) return;  // no listener when it started
        a.SetTag("tollgate.failed_keys", e.FailedKeys);
        a.SetTag("tollgate.tokens.granted", (long)e.TokensGranted);
        a.SetTag("tollgate.outcome", outcome);
        if (e.Failed) a.SetStatus(ActivityStatusCode.Error, "some keys failed");
        Activity? previous = Activity.Current;
        a.Stop();
        Activity.Current = previous;
    }

    // When the limiter is disposed: a round trip that never ended still ends its activity.
    internal void EndAll()
    {
        foreach (var id in _open.Keys)
            if (_open.TryRemove(id, out Activity? a))
            {
                a.SetStatus(ActivityStatusCode.Error, "limiter disposed");
                a.Stop();
            }
    }
}

using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Runtime.CompilerServices;

namespace Tollgate;

/// <summary>
/// The <see cref="Meter"/> and <see cref="ActivitySource"/> named "Tollgate". No tag carries a
/// key or tenant id: decisions are read from the native counters when metrics are collected, so
/// the hot path pays nothing for them.
/// </summary>
public static class TollgateTelemetry
{
    /// <summary>"Tollgate": the name of the meter and the activity source.</summary>
    public const string Name = "Tollgate";

    private static readonly string s_version = typeof(TollgateTelemetry).Assembly.GetName().Version?.ToString(3) ?? "0.0.0";

    /// <summary>Lease fetches as activities ("tollgate.lease").</summary>
    public static readonly ActivitySource ActivitySource = new(Name, s_version);

    /// <summary>Decisions, leases and breaker transitions as instruments.</summary>
    public static readonly Meter Meter = new(Name, s_version);

    private static readonly ConditionalWeakTable<TollgateLimiter, object> s_limiters = new();
    private static readonly object s_tag = new();

    private static readonly Counter<long> s_leases =
        Meter.CreateCounter<long>("tollgate.leases", "{round_trip}", "Lease round trips to the store, by outcome");
    private static readonly Histogram<double> s_leaseDuration =
        Meter.CreateHistogram<double>("tollgate.lease.duration", "s", "Duration of lease round trips");
    private static readonly Counter<long> s_leaseTokens =
        Meter.CreateCounter<long>("tollgate.lease.tokens", "{token}", "Tokens asked for and granted in leases");
    private static readonly Counter<long> s_breakerTransitions =
        Meter.CreateCounter<long>("tollgate.breaker.transitions", "{transition}", "Circuit breaker state changes");

    static TollgateTelemetry()
    {
        Meter.CreateObservableCounter("tollgate.decisions", ObserveDecisions, "{decision}",
            "Decisions of all live limiters, by result and reason");
        Meter.CreateObservableUpDownCounter("tollgate.breakers", ObserveBreakers, "{shard}",
            "Shards by circuit breaker state");
    }

    internal static void Track(TollgateLimiter limiter) => s_limiters.AddOrUpdate(limiter, s_tag);

    internal static void Untrack(TollgateLimiter limiter) => s_limiters.Remove(limiter);

    internal static void Lease(in LeaseEvent e)
    {
        string outcome = e.Failed ? "failed" : "ok";
        var tag = new KeyValuePair<string, object?>("tollgate.outcome", outcome);
        s_leases.Add(1, tag);
        s_leaseDuration.Record(e.Duration.TotalSeconds, tag);
        s_leaseTokens.Add((long)e.TokensAsked, new KeyValuePair<string, object?>("tollgate.tokens", "asked"));
        s_leaseTokens.Add((long)e.TokensGranted, new KeyValuePair<string, object?>("tollgate.tokens", "granted"));
        if (ActivitySource.HasListeners())
        {
            // Reported when the round trip ended: the activity starts `Duration` ago.
            DateTimeOffset end = DateTimeOffset.UtcNow;
            using Activity? a = ActivitySource.StartActivity("tollgate.lease", ActivityKind.Client,
                default(ActivityContext), null, null, end - e.Duration);
            if (a != null)
            {
                a.SetTag("tollgate.keys", e.Keys);
                a.SetTag("tollgate.failed_keys", e.FailedKeys);
                a.SetTag("tollgate.tokens.asked", (long)e.TokensAsked);
                a.SetTag("tollgate.tokens.granted", (long)e.TokensGranted);
                a.SetTag("tollgate.outcome", outcome);
                if (e.Failed) a.SetStatus(ActivityStatusCode.Error, "some keys failed");
                a.SetEndTime(end.UtcDateTime);
            }
        }
    }

    internal static void Breaker(in BreakerEvent e)
    {
        s_breakerTransitions.Add(1,
            new KeyValuePair<string, object?>("tollgate.shard", e.Shard),
            new KeyValuePair<string, object?>("tollgate.breaker.state", StateName(e.To)));
    }

    internal static string StateName(BreakerState s) => s switch
    {
        BreakerState.Open => "open",
        BreakerState.HalfOpen => "half_open",
        _ => "closed",
    };

    private static IEnumerable<TollgateStats> LiveStats()
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

    private static IEnumerable<Measurement<long>> ObserveDecisions()
    {
        long admitted = 0;
        var denied = new long[Native.ReasonCount];
        foreach (TollgateStats s in LiveStats())
        {
            admitted += (long)s.Admitted;
            foreach (var (reason, n) in s.DeniedByReason) denied[(int)reason] += (long)n;
        }
        var result = new List<Measurement<long>>
        {
            new(admitted, new KeyValuePair<string, object?>("tollgate.result", "admitted"),
                new KeyValuePair<string, object?>("tollgate.reason", "ok")),
        };
        for (int i = 1; i < denied.Length; i++)
        {
            if (denied[i] == 0) continue;
            result.Add(new(denied[i], new KeyValuePair<string, object?>("tollgate.result", "denied"),
                new KeyValuePair<string, object?>("tollgate.reason", ReasonNames.Of((Reason)i))));
        }
        return result;
    }

    private static IEnumerable<Measurement<long>> ObserveBreakers()
    {
        var counts = new long[3];
        foreach (TollgateStats s in LiveStats())
            foreach (BreakerState b in s.Breakers) counts[(int)b]++;
        for (int i = 0; i < counts.Length; i++)
            yield return new(counts[i],
                new KeyValuePair<string, object?>("tollgate.breaker.state", StateName((BreakerState)i)));
    }
}

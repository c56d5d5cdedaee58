using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Linq;
using System.Threading;
using System.Threading.RateLimiting;
using System.Threading.Tasks;
using Xunit;

namespace Tollgate.Tests;

// Every test uses its own keys (the Redis server is shared by the collection). Waits are bounded
// (30 s) but no assertion depends on how long anything takes.
[Collection("redis")]
public sealed class LimiterTests
{
    private static readonly TimeSpan Long = TimeSpan.FromSeconds(30);
    private readonly RedisServer _redis;

    public LimiterTests(RedisServer redis) => _redis = redis;

    // Burst 10, refilling one token per 1000 s: at most 10 admissions per key, whatever the timing.
    private string Config(string extraPolicy = "") => $$"""
        {"store": {"type": "redis", "shards": ["{{_redis.Url}}"]},
         "leases": {"max_fraction": 1},
         "policies": [{"match": "tenant:*", "type": "token_bucket", "rate": 0.001, "burst": 10}{{extraPolicy}}]}
        """;

    private static string NewKey() => "tenant:" + Guid.NewGuid().ToString("N");

    private TollgateLimiter Create(TollgateLimiterOptions? options = null) =>
        TollgateLimiter.Create(Config(", {\"match\": \"gpu:*\", \"type\": \"concurrency\", \"limit\": 2}"), options);

    [Fact]
    public void NativeVersionIsTheOneBuiltFor()
    {
        Assert.Equal("0.1.0", TollgateLimiter.NativeVersion);
    }

    [Fact]
    public void OverLongAndUnmatchedKeysCreateNoState()
    {
        using TollgateLimiter limiter = Create();
        string tooLong = "tenant:" + new string('x', 600);  // max_key_length: 512 bytes
        Assert.Equal(Reason.InvalidArgument, limiter.TryAcquire(tooLong).Reason);
        for (int i = 0; i < 100; ++i)
            Assert.Equal(Reason.NoPolicy, limiter.TryAcquire("nobody:" + i).Reason);
        Assert.Equal(0UL, limiter.GetStats().KeysTracked);
        // Any string within the bound is a key of its own.
        Decision odd = limiter.TryAcquire(NewKey() + ":{}\r\n\0\u00ff");
        Assert.True(odd.Allowed || odd.Reason == Reason.ColdKey);
        Assert.Equal(1UL, limiter.GetStats().KeysTracked);
    }

    [Fact]
    public void BadConfigNamesTheField()
    {
        var e = Assert.Throws<TollgateConfigException>(() => TollgateLimiter.Create(
            """{"policies": [{"match": "*", "type": "token_bucket", "rate": -1}]}"""));
        Assert.Contains("policies[0].rate", e.Message);
        e = Assert.Throws<TollgateConfigException>(() => TollgateLimiter.Validate("""{"policies": []}"""));
        Assert.Contains("policies", e.Message);
        TollgateLimiter.Validate(Config());
    }

    [Fact]
    public async Task DecisionsStayWithinTheBurstAndCarryRetryAfter()
    {
        using TollgateLimiter limiter = Create();
        string key = NewKey();
        using TollgateRateLimiter view = limiter.ForKey(key);

        Decision first = await limiter.AcquireAsync(key, 1, Long);
        Assert.True(first.Allowed);
        int admitted = 1;
        RateLimitLease last = view.AttemptAcquire();
        if (last.IsAcquired) admitted++;
        for (int i = 0; i < 50; i++)
        {
            last.Dispose();
            last = view.AttemptAcquire();
            if (last.IsAcquired) admitted++;
        }
        Assert.InRange(admitted, 1, 10);
        Assert.False(last.IsAcquired);
        Assert.True(last.TryGetMetadata(MetadataName.RetryAfter, out TimeSpan after));
        Assert.True(after > TimeSpan.Zero);
        Assert.True(last.TryGetMetadata(MetadataName.ReasonPhrase, out string? reason));
        Assert.Contains(reason, new[] { "over_limit", "lease_pending" });
        Assert.Contains(MetadataName.RetryAfter.Name, last.MetadataNames);
        last.Dispose();

        RateLimiterStatistics? stats = view.GetStatistics();
        Assert.NotNull(stats);
        Assert.Equal(admitted - 1, stats!.TotalSuccessfulLeases);  // the first came through limiter.AcquireAsync
        Assert.Equal(51 - (admitted - 1), stats.TotalFailedLeases);
        Assert.Equal(0, stats.CurrentQueuedCount);
        Assert.NotNull(view.IdleDuration);

        TollgateStats native = limiter.GetStats();
        Assert.Equal((ulong)admitted, native.Admitted);
        Assert.Equal(new[] { BreakerState.Closed }, native.Breakers);
    }

    [Fact]
    public async Task TwoInstancesShareOneQuotaThroughRedis()
    {
        using TollgateLimiter a = Create();
        using TollgateLimiter b = Create();
        string key = NewKey();
        int admitted = 0;
        for (int round = 0; round < 5; round++)
        {
            foreach (TollgateLimiter l in new[] { a, b })
            {
                if ((await l.AcquireAsync(key, 1, TimeSpan.FromMilliseconds(200))).Allowed) admitted++;
                for (int i = 0; i < 10; i++)
                    if (l.TryAcquire(key).Allowed) admitted++;
            }
        }
        Assert.InRange(admitted, 1, 10);
    }

    [Fact]
    public async Task AcquireAsyncWaitsForTheFirstLeaseWithoutBlocking()
    {
        using TollgateLimiter limiter = Create();
        using TollgateRateLimiter view = limiter.ForKey(NewKey());
        ValueTask<RateLimitLease> pending = view.AcquireAsync();
        using RateLimitLease lease = await pending.AsTask().WaitAsync(Long);
        Assert.True(lease.IsAcquired);
    }

    [Fact]
    public async Task CancellationEndsTheWaitWithOperationCanceled()
    {
        using TollgateLimiter limiter = Create(new TollgateLimiterOptions
        {
            QueueTimeout = TimeSpan.FromMinutes(10),
            QueueWhenOverLimit = true,
        });
        string key = NewKey();
        await Exhaust(limiter, key);
        using TollgateRateLimiter view = limiter.ForKey(key);
        using var cts = new CancellationTokenSource();
        ValueTask<RateLimitLease> wait = view.AcquireAsync(1, cts.Token);
        Assert.False(wait.IsCompleted);  // the quota is spent for ~1000 s: only cancel can end it
        Assert.Equal(1, view.GetStatistics()!.CurrentQueuedCount);
        Assert.Null(view.IdleDuration);
        cts.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => wait.AsTask().WaitAsync(Long));
        Assert.Equal(0, view.GetStatistics()!.CurrentQueuedCount);
        // a token cancelled before the call
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => view.AcquireAsync(1, cts.Token).AsTask());
    }

    [Fact]
    public async Task AcquireAsyncRefusesASpentQuotaAtOnceByDefault()
    {
        using TollgateLimiter limiter = Create(new TollgateLimiterOptions { QueueTimeout = TimeSpan.FromMinutes(10) });
        string key = NewKey();
        await Exhaust(limiter, key);
        using TollgateRateLimiter view = limiter.ForKey(key);
        ValueTask<RateLimitLease> wait = view.AcquireAsync();
        Assert.True(wait.IsCompleted);  // no queueing: the quota is spent for ~1000 s
        using RateLimitLease lease = await wait;
        Assert.False(lease.IsAcquired);
        Assert.True(lease.TryGetMetadata(MetadataName.RetryAfter, out TimeSpan _));
        Assert.Equal(1, view.GetStatistics()!.TotalFailedLeases);
    }

    [Fact]
    public async Task NoCallbackIsLostWhenWaitsAreCancelledAndTheLimiterDisposed()
    {
        long before = TollgateLimiter.PendingWaits;
        TollgateLimiter limiter = Create();
        string key = NewKey();
        await Exhaust(limiter, key);
        var sources = new List<CancellationTokenSource>();
        var waits = new List<Task<Decision>>();
        for (int i = 0; i < 200; i++)
        {
            var cts = new CancellationTokenSource();
            sources.Add(cts);
            waits.Add(limiter.AcquireAsync(key, 1, TimeSpan.FromMinutes(10), cts.Token));
        }
        Assert.Equal(before + 200, TollgateLimiter.PendingWaits);
        // cancel every other one from the thread pool, while the limiter is being disposed
        Task cancels = Task.Run(() =>
        {
            for (int i = 0; i < sources.Count; i += 2) sources[i].Cancel();
        });
        limiter.Dispose();
        await cancels;
        int cancelled = 0, shutdown = 0;
        foreach (Task<Decision> w in waits)
        {
            try
            {
                Decision d = await w.WaitAsync(Long);
                Assert.False(d.Allowed);
                Assert.Equal(Reason.Shutdown, d.Reason);
                shutdown++;
            }
            catch (OperationCanceledException)
            {
                cancelled++;
            }
        }
        Assert.Equal(200, cancelled + shutdown);
        Assert.InRange(cancelled, 0, 100);
        Assert.Equal(before, TollgateLimiter.PendingWaits);
        foreach (var s in sources) s.Dispose();
    }

    [Fact]
    public async Task UseAfterDisposeThrowsObjectDisposed()
    {
        TollgateLimiter limiter = Create();
        TollgateRateLimiter view = limiter.ForKey(NewKey());
        limiter.Dispose();
        limiter.Dispose();  // twice is fine
        Assert.True(limiter.IsDisposed);
        Assert.Throws<ObjectDisposedException>(() => limiter.TryAcquire("tenant:x"));
        Assert.Throws<ObjectDisposedException>(() => { _ = limiter.AcquireAsync("tenant:x", 1, Long); });
        Assert.Throws<ObjectDisposedException>(() => limiter.AcquirePermit("gpu:x"));
        Assert.Throws<ObjectDisposedException>(() => limiter.GetStats());
        Assert.Throws<ObjectDisposedException>(() => view.AttemptAcquire());
        Assert.NotNull(view.GetStatistics());  // never throws

        TollgateLimiter other = Create();
        TollgateRateLimiter disposedView = other.ForKey(NewKey());
        disposedView.Dispose();
        Assert.Throws<ObjectDisposedException>(() => disposedView.AttemptAcquire());
        await Assert.ThrowsAsync<ObjectDisposedException>(() => disposedView.AcquireAsync().AsTask());
        other.TryAcquire("tenant:y");  // the limiter itself still works
        other.Dispose();
    }

    [Fact]
    public async Task PermitsAreBoundedAndReturnedByTheLease()
    {
        using TollgateLimiter limiter = Create();
        using TollgateRateLimiter gpu = limiter.ForConcurrencyKey("gpu:" + Guid.NewGuid().ToString("N"));
        RateLimitLease first = await Eventually(() => gpu.AttemptAcquire());
        var held = new List<RateLimitLease> { first };
        for (int i = 0; i < 5; i++)
        {
            RateLimitLease l = gpu.AttemptAcquire();
            if (l.IsAcquired) held.Add(l);
            else l.Dispose();
        }
        Assert.InRange(held.Count, 1, 2);  // limit 2
        Assert.Null(gpu.IdleDuration);     // permits out: not idle
        foreach (RateLimitLease l in held) l.Dispose();
        Assert.NotNull(gpu.IdleDuration);
        using RateLimitLease again = await Eventually(() => gpu.AttemptAcquire());
        Assert.True(again.IsAcquired);
    }

    [Fact]
    public void NoHandleIsLeaked()
    {
        long limiters = LimiterHandle.Open, permits = PermitHandle.Open;
        for (int i = 0; i < 10; i++)
        {
            using TollgateLimiter l = Create();
            using TollgatePermit p = l.AcquirePermit("gpu:leak");
            l.TryAcquire(NewKey());
        }
        Assert.Throws<TollgateConfigException>(() => TollgateLimiter.Create("""{"policies": []}"""));
        Assert.Equal(limiters, LimiterHandle.Open);
        Assert.Equal(permits, PermitHandle.Open);
    }

    [Fact]
    public async Task PartitionedLimiterKeysByTenant()
    {
        using TollgateLimiter limiter = Create();
        string tenant = NewKey();
        using PartitionedRateLimiter<string> partitioned = limiter.CreatePartitioned<string>(t => t);
        await limiter.AcquireAsync(tenant, 1, Long);  // the first lease
        using RateLimitLease warm = partitioned.AttemptAcquire(tenant);
        Assert.True(warm.IsAcquired);
        using RateLimitLease other = await partitioned.AcquireAsync(NewKey()).AsTask().WaitAsync(Long);
        Assert.True(other.IsAcquired);
        RateLimitPartition<string> p = limiter.Partition(tenant);
        Assert.Equal(tenant, p.PartitionKey);
    }

    [Fact]
    public async Task TelemetryReachesMeterAndActivityListeners()
    {
        var activities = new List<Activity>();
        var measurements = new Dictionary<string, long>();
        using var activityListener = new ActivityListener
        {
            ShouldListenTo = s => s.Name == "Tollgate",
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = a => { lock (activities) activities.Add(a); },
        };
        ActivitySource.AddActivityListener(activityListener);
        using var meterListener = new MeterListener
        {
            InstrumentPublished = (i, l) => { if (i.Meter.Name == "Tollgate") l.EnableMeasurementEvents(i); },
        };
        var tags = new List<string>();
        meterListener.SetMeasurementEventCallback<long>((i, value, t, _) =>
        {
            lock (measurements)
            {
                measurements[i.Name] = measurements.GetValueOrDefault(i.Name) + value;
                foreach (var tag in t) tags.Add(tag.Key + "=" + tag.Value);
            }
        });
        meterListener.Start();

        var logs = new List<string>();
        string key = NewKey();
        using (TollgateLimiter limiter = Create(new TollgateLimiterOptions
               {
                   MinimumLogLevel = TollgateLogLevel.Debug,
                   Log = (_, m) => { lock (logs) logs.Add(m); },
               }))
        {
            Assert.True((await limiter.AcquireAsync(key, 1, Long)).Allowed);
            limiter.TryAcquire(key);
            meterListener.RecordObservableInstruments();
        }
        lock (measurements)
        {
            Assert.True(measurements.GetValueOrDefault("tollgate.lease.requests") >= 1);
            Assert.True(measurements.GetValueOrDefault("tollgate.decisions") >= 1);
            Assert.DoesNotContain(tags, t => t.Contains(key, StringComparison.Ordinal));
        }
        lock (activities)
        {
            Activity lease = Assert.Single(activities.Where(a => a.OperationName == "tollgate.lease").Take(1));
            Assert.DoesNotContain(lease.Tags, t => t.Value != null && t.Value.Contains(key, StringComparison.Ordinal));
        }
        lock (logs) Assert.DoesNotContain(logs, l => l.Contains(key, StringComparison.Ordinal));
    }

    // Spends the key's global quota: until a denial says over_limit (not just a local lease
    // spent while the refill is on its way). At most 10 admissions; bounded by 30 s.
    private static async Task Exhaust(TollgateLimiter limiter, string key)
    {
        Assert.True((await limiter.AcquireAsync(key, 1, Long)).Allowed);
        var deadline = DateTime.UtcNow + Long;
        while (DateTime.UtcNow < deadline)
        {
            Decision d = limiter.TryAcquire(key);
            if (!d.Allowed && d.Reason == Reason.OverLimit) return;
            if (!d.Allowed) await Task.Delay(1);
        }
        Assert.Fail("the quota was not spent within 30 s");
    }

    // Asks until admitted (a concurrency key has no waiting acquire), at most 30 s.
    private static async Task<RateLimitLease> Eventually(Func<RateLimitLease> attempt)
    {
        var deadline = DateTime.UtcNow + Long;
        while (true)
        {
            RateLimitLease l = attempt();
            if (l.IsAcquired || DateTime.UtcNow > deadline) return l;
            l.Dispose();
            await Task.Delay(5);
        }
    }
}

using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.IO;
using System.Linq;
using System.Text.Json;
using System.Threading;
using System.Threading.Tasks;
using OpenTelemetry;
using OpenTelemetry.Metrics;
using OpenTelemetry.Trace;
using Xunit;

namespace Tollgate.Tests;

// The meter sums over every live limiter of the process: these tests run alone (after the
// parallel ones), so that the values they compare move only by what they do.
[CollectionDefinition("telemetry", DisableParallelization = true)]
public sealed class TelemetryCollection
{
}

// The Meter and ActivitySource against the metric vocabulary (sdk/src/telemetry/metrics.json)
// and the real OpenTelemetry SDK with its in-memory exporter.
[Collection("telemetry")]
public sealed class TelemetryTests
{
    private static readonly TimeSpan Long = TimeSpan.FromSeconds(30);

    private const string InProcess = """
        {"policies": [{"name": "tenants", "match": "tenant:*", "type": "token_bucket", "rate": 1000, "burst": 1000}]}
        """;

    internal static JsonElement Vocabulary()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir != null; dir = dir.Parent)
        {
            string path = Path.Combine(dir.FullName, "sdk", "src", "telemetry", "metrics.json");
            if (File.Exists(path)) return JsonDocument.Parse(File.ReadAllText(path)).RootElement;
        }
        throw new FileNotFoundException("sdk/src/telemetry/metrics.json above " + AppContext.BaseDirectory);
    }

    private static IEnumerable<JsonElement> Metrics() => Vocabulary().GetProperty("metrics").EnumerateArray();

    private static string[] Attributes(JsonElement m) =>
        m.GetProperty("attributes").EnumerateArray().Select(a => a.GetString()!).ToArray();

    private static string KindOf(Instrument i) => i switch
    {
        ObservableCounter<long> or Counter<long> => "counter",
        ObservableUpDownCounter<long> or UpDownCounter<long> => "updowncounter",
        Histogram<double> => "histogram",
        _ => i.GetType().Name,
    };

    [Fact]
    public void TheMetersInstrumentsAreTheVocabularys()
    {
        _ = TollgateTelemetry.Meter;  // the instruments exist once the class is initialised
        var published = new List<Instrument>();
        using var listener = new MeterListener
        {
            InstrumentPublished = (i, _) => { if (i.Meter.Name == TollgateTelemetry.Name) lock (published) published.Add(i); },
        };
        listener.Start();
        var expected = Metrics().Select(m => string.Join(" | ", m.GetProperty("name").GetString(),
            m.GetProperty("instrument").GetString(), m.GetProperty("unit").GetString(),
            m.GetProperty("description").GetString())).OrderBy(s => s, StringComparer.Ordinal);
        List<string> actual;
        lock (published)
            actual = published.Select(i => string.Join(" | ", i.Name, KindOf(i), i.Unit, i.Description))
                .OrderBy(s => s, StringComparer.Ordinal).ToList();
        Assert.Equal(expected, actual);
        Assert.Equal(TollgateTelemetry.Name, Vocabulary().GetProperty("meter").GetString());
    }

    // Exports through a MeterProvider with the in-memory exporter; the snapshots of the last flush.
    private static Dictionary<string, MetricSnapshot> Flush(MeterProvider provider, List<MetricSnapshot> exported)
    {
        exported.Clear();
        Assert.True(provider.ForceFlush());
        return exported.GroupBy(m => m.Name).ToDictionary(g => g.Key, g => g.Last());
    }

    private static long Sum(MetricSnapshot m, Func<IReadOnlyDictionary<string, object?>, bool> where)
    {
        long n = 0;
        foreach (MetricPoint p in m.MetricPoints)
            if (where(Tags(p))) n += p.GetSumLong();
        return n;
    }

    private static Dictionary<string, object?> Tags(MetricPoint p)
    {
        var d = new Dictionary<string, object?>();
        foreach (var t in p.Tags) d[t.Key] = t.Value;
        return d;
    }

    private static long OkLeases(Dictionary<string, MetricSnapshot> metrics)
    {
        long n = 0;
        if (metrics.TryGetValue("tollgate.lease.duration", out MetricSnapshot? m))
            foreach (MetricPoint p in m.MetricPoints)
                if ((string?)Tags(p)["tollgate.outcome"] == "ok") n += p.GetHistogramCount();
        return n;
    }

    [Fact]
    public async Task OpenTelemetryExportsTheVocabularysNamesUnitsAndAttributes()
    {
        var exported = new List<MetricSnapshot>();
        using MeterProvider provider = Sdk.CreateMeterProviderBuilder()
            .AddMeter(TollgateTelemetry.Name)
            .AddInMemoryExporter(exported)
            .Build()!;
        using TollgateLimiter limiter = TollgateLimiter.Create(InProcess);
        string key = "tenant:" + Guid.NewGuid().ToString("N");
        Dictionary<string, MetricSnapshot> before = Flush(provider, exported);
        TollgateStats s0 = limiter.GetStats();

        Assert.True((await limiter.AcquireAsync(key, 1, Long)).Allowed);  // waits for the first lease
        for (int i = 0; i < 5; i++) limiter.TryAcquire(key);
        limiter.TryAcquire("nobody:" + key);  // no_policy
        TollgateStats s1 = limiter.GetStats();
        // The lease's end event may come a moment after the waiter was served: wait for it.
        Dictionary<string, MetricSnapshot> after = Flush(provider, exported);
        for (var deadline = DateTime.UtcNow + Long; OkLeases(after) == 0 && DateTime.UtcNow < deadline;)
        {
            await Task.Delay(10);
            after = Flush(provider, exported);
        }

        JsonElement attributes = Vocabulary().GetProperty("attributes");
        foreach (JsonElement m in Metrics())
        {
            string name = m.GetProperty("name").GetString()!;
            if (!after.TryGetValue(name, out MetricSnapshot? metric))
            {
                // Only a state set over shards may have no points: the in-process store has none.
                Assert.Equal("tollgate.breaker.state", name);
                continue;
            }
            Assert.Equal(m.GetProperty("unit").GetString(), metric.Unit);
            Assert.Equal(m.GetProperty("description").GetString(), metric.Description);
            MetricType type = m.GetProperty("instrument").GetString() switch
            {
                "counter" => MetricType.LongSum,
                "updowncounter" => MetricType.LongSumNonMonotonic,
                _ => MetricType.Histogram,
            };
            Assert.Equal(type, metric.MetricType);
            string[] expectedKeys = Attributes(m).OrderBy(a => a, StringComparer.Ordinal).ToArray();
            foreach (MetricPoint p in metric.MetricPoints)
            {
                Dictionary<string, object?> tags = Tags(p);
                Assert.Equal(expectedKeys, tags.Keys.OrderBy(k => k, StringComparer.Ordinal).ToArray());
                foreach (var (k, v) in tags)
                {
                    Assert.DoesNotContain(key["tenant:".Length..], v?.ToString() ?? "", StringComparison.Ordinal);
                    string[] values = attributes.GetProperty(k).GetProperty("values").EnumerateArray()
                        .Select(x => x.GetString()!).ToArray();
                    if (values.Length > 0) Assert.Contains(v?.ToString(), values);
                }
            }
        }
        Assert.Contains("tollgate.lease.duration", after.Keys);

        // tollgate.decisions counts what the native counters count (as the C++ exposition and
        // the Python binding read them): each decision once, by result and reason.
        static bool Admitted(IReadOnlyDictionary<string, object?> t) => (string?)t["tollgate.result"] == "admitted";
        static bool NoPolicy(IReadOnlyDictionary<string, object?> t) => (string?)t["tollgate.reason"] == "no_policy";
        long admitted = Sum(after["tollgate.decisions"], Admitted) - Sum(before["tollgate.decisions"], Admitted);
        Assert.Equal((long)(s1.Admitted - s0.Admitted), admitted);
        Assert.Equal(6, admitted);
        Assert.Equal(1, Sum(after["tollgate.decisions"], NoPolicy) - Sum(before["tollgate.decisions"], NoPolicy));
        // ... and by policy: the admissions under the policy's name, the key no policy matched
        // under "other".
        static bool Tenants(IReadOnlyDictionary<string, object?> t) => (string?)t["tollgate.policy"] == "tenants";
        static bool Other(IReadOnlyDictionary<string, object?> t) => (string?)t["tollgate.policy"] == "other";
        Assert.Equal(6, Sum(after["tollgate.decisions"], t => Admitted(t) && Tenants(t))
            - Sum(before["tollgate.decisions"], t => Admitted(t) && Tenants(t)));
        Assert.Equal(1, Sum(after["tollgate.decisions"], t => NoPolicy(t) && Other(t))
            - Sum(before["tollgate.decisions"], t => NoPolicy(t) && Other(t)));
        Assert.Equal(6, Sum(after["tollgate.tokens.admitted"], Tenants) - Sum(before["tollgate.tokens.admitted"], Tenants));
        Assert.Equal(0, Sum(after["tollgate.tokens.admitted"], Other) - Sum(before["tollgate.tokens.admitted"], Other));
        Assert.Equal(6L, (long)(s1.Policies.Single(p => p.Name == "tenants").Admitted
            - s0.Policies.Single(p => p.Name == "tenants").Admitted));
        long leased = Sum(after["tollgate.lease.tokens.granted"], _ => true) - Sum(before["tollgate.lease.tokens.granted"], _ => true);
        Assert.Equal((long)(s1.TokensLeased - s0.TokensLeased), leased);

        // The lease duration histogram: our round trip, by outcome.
        Assert.True(OkLeases(after) >= 1);
#if NET9_0_OR_GREATER
        double[] bounds = Vocabulary().GetProperty("histogram_buckets_seconds").EnumerateArray()
            .Select(b => b.GetDouble()).ToArray();
        foreach (MetricPoint p in after["tollgate.lease.duration"].MetricPoints)
        {
            var got = new List<double>();
            foreach (HistogramBucket b in p.GetHistogramBuckets()) got.Add(b.ExplicitBound);
            Assert.Equal(bounds.Append(double.PositiveInfinity), got);
        }
#endif
    }

    // A per-tenant override's name defaults to its match, a tenant key: its decisions are
    // exported under "other", and no tollgate.policy value carries the tenant id.
    [Fact]
    public void NoTenantIdReachesTheTollgatePolicyAttribute()
    {
        string tenant = "acme" + Guid.NewGuid().ToString("N");
        var exported = new List<MetricSnapshot>();
        using MeterProvider provider = Sdk.CreateMeterProviderBuilder()
            .AddMeter(TollgateTelemetry.Name)
            .AddInMemoryExporter(exported)
            .Build()!;
        using TollgateLimiter limiter = TollgateLimiter.Create($$"""
            {"policies": [{"name": "tenants", "match": "tenant:*", "type": "token_bucket", "rate": 10},
                          {"match": "tenant:{{tenant}}", "type": "token_bucket", "rate": 10},
                          {"name": "tenant:{{tenant}}x", "match": "tenant:{{tenant}}x", "type": "token_bucket", "rate": 10}]}
            """);
        for (int i = 0; i < 3; i++)
        {
            limiter.TryAcquire("tenant:" + tenant);
            limiter.TryAcquire("tenant:" + tenant + "x");
        }
        Assert.Equal(new[] { "other", "tenants" }, limiter.GetStats().Policies.Select(p => p.Name).ToArray());
        Dictionary<string, MetricSnapshot> metrics = Flush(provider, exported);
        var values = new HashSet<string>();
        foreach (MetricPoint p in metrics["tollgate.decisions"].MetricPoints)
            values.Add((string)Tags(p)["tollgate.policy"]!);
        Assert.Contains("other", values);
        Assert.Contains("tenants", values);
        Assert.DoesNotContain(values, v => v.Contains(tenant, StringComparison.Ordinal));
        Assert.DoesNotContain(tenant, limiter.GetPrometheusText(), StringComparison.Ordinal);
    }

    [Fact]
    public void ThePrometheusTextHasTheVocabularysFamilies()
    {
        using TollgateLimiter limiter = TollgateLimiter.Create(InProcess);
        limiter.TryAcquire("nobody:x");
        string text = limiter.GetPrometheusText();
        var families = text.Split('\n').Where(l => l.StartsWith("# TYPE ", StringComparison.Ordinal))
            .Select(l => l.Split(' ')[2]).OrderBy(n => n, StringComparer.Ordinal);
        var expected = Metrics().Select(m => m.GetProperty("prometheus").GetString()!).OrderBy(n => n, StringComparer.Ordinal);
        Assert.Equal(expected, families);
        Assert.Contains("tollgate_decisions_total{tollgate_result=\"denied\",tollgate_reason=\"no_policy\",tollgate_policy=\"other\"} 1\n", text);
        Assert.Contains("tollgate_decisions_total{tollgate_result=\"admitted\",tollgate_reason=\"ok\",tollgate_policy=\"tenants\"} 0\n", text);
        limiter.Dispose();
        Assert.Throws<ObjectDisposedException>(() => limiter.GetPrometheusText());
    }

    [Fact]
    public async Task LeaseActivitiesStartWithTheLeaseAndLinkTheRequestThatWaited()
    {
        using var redis = new RedisServer();
        var exported = new List<Activity>();
        using var requests = new ActivitySource("Tollgate.Tests.Requests");
        using TracerProvider tracing = Sdk.CreateTracerProviderBuilder()
            .AddSource(TollgateTelemetry.Name, requests.Name)
            .AddInMemoryExporter(exported)
            .Build()!;
        // Lease activities seen starting, each with whether it had ended by then.
        var started = new List<(Activity Activity, bool Stopped)>();
        using var listener = new ActivityListener
        {
            ShouldListenTo = s => s.Name == TollgateTelemetry.Name,
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStarted = a => { lock (started) started.Add((a, a.IsStopped)); },
        };
        ActivitySource.AddActivityListener(listener);

        using TollgateLimiter limiter = TollgateLimiter.Create($$"""
            {"store": {"type": "redis", "shards": ["{{redis.Url}}"], "command_timeout_ms": 120000},
             "policies": [{"match": "tenant:*", "type": "token_bucket", "rate": 1000, "burst": 1000}]}
            """);
        Assert.True((await limiter.AcquireAsync("tenant:warm-up", 1, Long)).Allowed);  // connected, scripts loaded

        // The hot path carries no link: a TryAcquire inside a request starts a lease too.
        ActivityContext hot;
        using (Activity hotRequest = requests.StartActivity("hot request")!)
        {
            hot = hotRequest.Context;
            limiter.TryAcquire("tenant:" + Guid.NewGuid().ToString("N"));
        }

        // With the store stopped, a waiting acquire's lease starts and cannot end.
        redis.Pause();
        Task<Decision> waiting;
        ActivityContext request;
        string key = "tenant:" + Guid.NewGuid().ToString("N");
        try
        {
            using (Activity waitingRequest = requests.StartActivity("waiting request")!)
            {
                request = waitingRequest.Context;
                waiting = limiter.AcquireAsync(key, 1, Long);
            }
            Activity? lease = null;
            var deadline = DateTime.UtcNow + Long;
            while (lease == null && DateTime.UtcNow < deadline)
            {
                lock (started)
                    lease = started.Select(s => s.Activity)
                        .FirstOrDefault(a => a.Links.Any(l => l.Context == request));
                if (lease == null) await Task.Delay(10);
            }
            Assert.NotNull(lease);  // started while its round trip is still on the way
            Assert.False(lease!.IsStopped);
            Assert.False(waiting.IsCompleted);
            lock (started) Assert.All(started, s => Assert.False(s.Stopped));
        }
        finally
        {
            redis.Resume();
        }
        Assert.True((await waiting).Allowed);
        // The lease ended (and was exported) once the answer came.
        var until = DateTime.UtcNow + Long;
        Activity? done = null;
        while (done == null && DateTime.UtcNow < until)
        {
            tracing.ForceFlush();
            lock (exported) done = exported.FirstOrDefault(a => a.OperationName == "tollgate.lease" && a.Links.Any(l => l.Context == request));
            if (done == null) await Task.Delay(10);
        }
        Assert.NotNull(done);
        Assert.Equal(ActivityKind.Client, done!.Kind);
        Assert.Equal(default, done.ParentSpanId);  // a root: the SDK's thread belongs to no request
        Assert.True(done.Duration > TimeSpan.Zero);
        string[] spanAttributes = Vocabulary().GetProperty("spans").EnumerateArray()
            .First(s => s.GetProperty("name").GetString() == "tollgate.lease")
            .GetProperty("attributes").EnumerateArray().Select(a => a.GetString()!).OrderBy(a => a, StringComparer.Ordinal).ToArray();
        Assert.Equal(spanAttributes, done.TagObjects.Select(t => t.Key).OrderBy(k => k, StringComparer.Ordinal).ToArray());
        Assert.Equal("ok", done.GetTagItem("tollgate.outcome"));
        Assert.DoesNotContain(done.TagObjects, t => (t.Value?.ToString() ?? "").Contains(key["tenant:".Length..], StringComparison.Ordinal));
        lock (exported)
            Assert.DoesNotContain(exported, a => a.OperationName == "tollgate.lease" && a.Links.Any(l => l.Context == hot));
    }
}

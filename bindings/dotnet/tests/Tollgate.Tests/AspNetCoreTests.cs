using System;
using System.Collections.Generic;
using System.Diagnostics.Metrics;
using System.Net;
using System.Net.Sockets;
using System.Threading;
using System.Threading.Tasks;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Tollgate.AspNetCore;
using Xunit;

namespace Tollgate.Tests;

[Collection("redis")]
public sealed class AspNetCoreTests
{
    private readonly RedisServer _redis;

    public AspNetCoreTests(RedisServer redis) => _redis = redis;

    private static ServiceProvider Services(Dictionary<string, string?> settings, ILoggerProvider? logs = null)
    {
        IConfiguration config = new ConfigurationBuilder().AddInMemoryCollection(settings).Build();
        var services = new ServiceCollection();
        services.AddLogging(b =>
        {
            b.SetMinimumLevel(LogLevel.Debug);
            if (logs != null) b.AddProvider(logs);
        });
        services.AddTollgate(config.GetSection("Tollgate"));
        services.AddHealthChecks().AddTollgate();
        return services.BuildServiceProvider();
    }

    private Dictionary<string, string?> Valid(string shard) => new()
    {
        ["Tollgate:Store:Type"] = "redis",
        ["Tollgate:Store:Shards:0"] = shard,
        ["Tollgate:Policies:0:Match"] = "tenant:*",
        ["Tollgate:Policies:0:Type"] = "token_bucket",
        ["Tollgate:Policies:0:Rate"] = "100",
        ["Tollgate:Policies:0:Burst"] = "200",
    };

    // Drains a key: admitted until the store has nothing more for it.
    private static async Task<int> Drain(TollgateLimiter limiter, string key)
    {
        int n = 0;
        while ((await limiter.AcquireAsync(key, 1, TimeSpan.FromMilliseconds(300))).Allowed) n++;
        return n;
    }

    [Fact]
    public async Task AnOptionsChangeUpdatesTheRunningLimiterAndABadOneIsRefused()
    {
        var settings = Valid(_redis.Url);
        settings["Tollgate:Policies:0:Name"] = "update-a-" + Guid.NewGuid().ToString("N");
        settings["Tollgate:Policies:0:Rate"] = "0.001";
        settings["Tollgate:Policies:0:Burst"] = "20";
        IConfigurationRoot root = new ConfigurationBuilder().AddInMemoryCollection(settings).Build();
        var services = new ServiceCollection();
        services.AddLogging();
        services.AddTollgate(root.GetSection("Tollgate"));
        using ServiceProvider sp = services.BuildServiceProvider();
        var limiter = sp.GetRequiredService<TollgateLimiter>();
        Assert.Equal(20, await Drain(limiter, "tenant:a"));

        root["Tollgate:Policies:0:Name"] = "update-b-" + Guid.NewGuid().ToString("N");
        root["Tollgate:Policies:0:Burst"] = "35";
        root.Reload();
        Assert.Equal(1ul, limiter.GetStats().ConfigUpdates);
        for (int i = 0; i < 500 && limiter.GetStats().KeysMoved < 1; i++) await Task.Delay(10);
        Assert.Equal(35, await Drain(limiter, "tenant:a"));

        root["Tollgate:Policies:0:Rate"] = "-1";  // refused by validation: nothing changes
        try { root.Reload(); } catch (Exception) { /* the options' own validation may throw here */ }
        root["Tollgate:Policies:0:Rate"] = "0.001";
        root["Tollgate:Store:Shards:0"] = "redis://127.0.0.1:1";  // needs a new limiter: refused
        root.Reload();
        TollgateStats s = limiter.GetStats();
        Assert.Equal(1ul, s.ConfigUpdates);
        Assert.Equal(1ul, s.ConfigRejected);
    }

    [Fact]
    public void ABadSettingIsNamedByItsConfigurationKey()
    {
        var settings = Valid(_redis.Url);
        settings["Tollgate:Policies:0:Rate"] = "-5";
        using ServiceProvider sp = Services(settings);
        var e = Assert.Throws<OptionsValidationException>(() => sp.GetRequiredService<IOptions<TollgateOptions>>().Value);
        Assert.Contains("Tollgate:Policies:0:Rate", e.Message);
        Assert.Contains("policies[0].rate", e.Message);
    }

    [Fact]
    public void ShardsWithoutTheRedisStoreTypeSayWhichStoreTheyBelongTo()
    {
        var settings = Valid(_redis.Url);
        settings.Remove("Tollgate:Store:Type");
        using ServiceProvider sp = Services(settings);
        var e = Assert.Throws<OptionsValidationException>(() => sp.GetRequiredService<IOptions<TollgateOptions>>().Value);
        Assert.Contains("Tollgate:Store:Shards: unknown field for the store type \"in_process\": it belongs to the " +
                        "\"redis\" store (set Tollgate:Store:Type to \"redis\")", e.Message);
        Assert.Contains("(store.shards: ", e.Message);
    }

    [Fact]
    public void AnUnknownKeyIsAnError()
    {
        var settings = Valid(_redis.Url);
        settings["Tollgate:Policies:0:Rat"] = "5";
        using ServiceProvider sp = Services(settings);
        var e = Assert.Throws<InvalidOperationException>(() => sp.GetRequiredService<IOptions<TollgateOptions>>().Value);
        Assert.Contains("'Rat'", e.Message);
        Assert.StartsWith("Tollgate: ", e.Message);
    }

    [Fact]
    public void OptionsBecomeTheNativeJson()
    {
        var o = new TollgateOptions
        {
            IdleTimeoutMs = 5000,
            Store = new StoreSettings { Type = "redis", Shards = new() { "redis://h:1" }, Breaker = new() { FailureRatio = 0.25 } },
            Policies = { new PolicySettings { Match = "tenant:*", Type = "token_bucket", Rate = 5 } },
        };
        Assert.Equal(
            """{"idle_timeout_ms":5000,"store":{"type":"redis","shards":["redis://h:1"],"breaker":{"failure_ratio":0.25}},"policies":[{"match":"tenant:*","type":"token_bucket","rate":5}]}""",
            o.ToJson());
        Assert.Equal("Tollgate:Store:Breaker:FailureRatio", TollgateOptions.ConfigurationPath("store.breaker.failure_ratio"));
    }

    [Fact]
    public void AClusterStoreBecomesTheNativeJsonAndValidates()
    {
        var o = new TollgateOptions
        {
            Store = new StoreSettings
            {
                Type = "redis_cluster",
                Nodes = new() { "redis://10.0.0.5:7000", "redis://10.0.0.6:7000" },
                WaitReplicas = 1,
                WaitTimeoutMs = 20,
            },
            Policies = { new PolicySettings { Match = "tenant:*", Type = "token_bucket", Rate = 5 } },
        };
        Assert.Equal(
            """{"store":{"type":"redis_cluster","nodes":["redis://10.0.0.5:7000","redis://10.0.0.6:7000"],"wait_replicas":1,"wait_timeout_ms":20},"policies":[{"match":"tenant:*","type":"token_bucket","rate":5}]}""",
            o.ToJson());
        TollgateLimiter.Validate(o.ToJson());
        Assert.Equal("Tollgate:Store:Nodes:0", TollgateOptions.ConfigurationPath("store.nodes[0]"));
    }

    [Fact]
    public void APolicyFallbackBecomesTheNativeJsonAndValidates()
    {
        var o = new TollgateOptions
        {
            Policies = { new PolicySettings { Match = "tenant:*", Type = "token_bucket", Rate = 5,
                Fallback = new FallbackSettings { Mode = "deny", Instances = 4 } } },
        };
        Assert.Equal(
            """{"policies":[{"match":"tenant:*","type":"token_bucket","rate":5,"fallback":{"mode":"deny","instances":4}}]}""",
            o.ToJson());
        TollgateLimiter.Validate(o.ToJson());
    }

    [Fact]
    public async Task HealthCheckReportsTheShardsBreakers()
    {
        using ServiceProvider sp = Services(Valid(_redis.Url));
        var check = new TollgateHealthCheck(sp.GetRequiredService<TollgateLimiter>());
        var registration = new HealthCheckRegistration("tollgate", check, HealthStatus.Unhealthy, null);
        HealthCheckResult r = await check.CheckHealthAsync(new HealthCheckContext { Registration = registration });
        Assert.Equal(HealthStatus.Healthy, r.Status);
        Assert.Equal("closed", r.Data["shard0"]);
        HealthReport report = await sp.GetRequiredService<HealthCheckService>().CheckHealthAsync();
        Assert.Equal(HealthStatus.Healthy, report.Entries["tollgate"].Status);
    }

    [Fact]
    public async Task HealthCheckIsUnhealthyWhenTheOnlyShardsBreakerOpens()
    {
        var settings = Valid($"redis://127.0.0.1:{RedisServer.FreePort()}");
        settings["Tollgate:Store:Breaker:MinimumThroughput"] = "1";
        settings["Tollgate:Store:Breaker:BreakDurationMs"] = "600000";
        long transitions = 0;
        using var meters = new MeterListener
        {
            InstrumentPublished = (i, l) => { if (i.Name == "tollgate.breaker.transitions") l.EnableMeasurementEvents(i); },
        };
        meters.SetMeasurementEventCallback<long>((_, v, _, _) => Interlocked.Add(ref transitions, v));
        meters.Start();
        var logs = new CollectingLoggerProvider();
        using ServiceProvider sp = Services(settings, logs);
        TollgateLimiter limiter = sp.GetRequiredService<TollgateLimiter>();
        HealthCheckService health = sp.GetRequiredService<HealthCheckService>();
        var deadline = DateTime.UtcNow.AddSeconds(30);
        HealthReport report = await health.CheckHealthAsync();
        for (int i = 0; report.Status != HealthStatus.Unhealthy && DateTime.UtcNow < deadline; i++)
        {
            limiter.TryAcquire($"tenant:h{i}");  // each new key asks the (unreachable) shard for a lease
            await Task.Delay(20);
            report = await health.CheckHealthAsync();
        }
        Assert.Equal(HealthStatus.Unhealthy, report.Status);
        Assert.Equal("open", report.Entries["tollgate"].Data["shard0"]);
        Assert.True(limiter.GetStats().BreakerTransitions >= 1);
        // The observer may report a moment after the state is visible: wait for it (bounded).
        bool Logged() => logs.Entries.Exists(e => e.Level == LogLevel.Warning && e.Message.Contains("circuit breaker closed -> open"));
        while ((Interlocked.Read(ref transitions) == 0 || !Logged()) && DateTime.UtcNow < deadline)
        {
            meters.RecordObservableInstruments();  // an observable counter over the native counters
            await Task.Delay(20);
        }
        Assert.True(Interlocked.Read(ref transitions) >= 1);  // the transition reached the meter
        Assert.Contains(logs.Entries, e => e.Level == LogLevel.Warning && e.Message.Contains("circuit breaker closed -> open"));
    }

    [Fact]
    public async Task NativeLogLinesReachILogger()
    {
        // A shard nobody listens on: the connection's failure is logged (a warning).
        var logs = new CollectingLoggerProvider();
        using ServiceProvider sp = Services(Valid($"redis://127.0.0.1:{RedisServer.FreePort()}"), logs);
        TollgateLimiter limiter = sp.GetRequiredService<TollgateLimiter>();
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (logs.Count == 0 && DateTime.UtcNow < deadline)
        {
            limiter.TryAcquire("tenant:log");
            await Task.Delay(20);
        }
        Assert.True(logs.Count > 0);
        Assert.All(logs.Entries, e => Assert.Equal("Tollgate", e.Category));
        Assert.DoesNotContain(logs.Entries, e => e.Message.Contains("tenant:log", StringComparison.Ordinal));
    }

    private sealed class CollectingLoggerProvider : ILoggerProvider
    {
        private readonly List<(string Category, LogLevel Level, string Message)> _entries = new();

        public int Count
        {
            get { lock (_entries) return _entries.Count; }
        }

        public List<(string Category, LogLevel Level, string Message)> Entries
        {
            get { lock (_entries) return new(_entries); }
        }

        public ILogger CreateLogger(string categoryName) => new Logger(this, categoryName);

        public void Dispose()
        {
        }

        private sealed class Logger : ILogger
        {
            private readonly CollectingLoggerProvider _owner;
            private readonly string _category;

            public Logger(CollectingLoggerProvider owner, string category)
            {
                _owner = owner;
                _category = category;
            }

            public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

            public bool IsEnabled(LogLevel logLevel) => true;

            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception,
                Func<TState, Exception?, string> formatter)
            {
                if (_category != "Tollgate") return;
                lock (_owner._entries) _owner._entries.Add((_category, logLevel, formatter(state, exception)));
            }
        }
    }
}

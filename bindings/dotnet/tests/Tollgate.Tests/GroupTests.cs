using System;
using System.Collections.Generic;
using System.Runtime.InteropServices;
using System.Threading.RateLimiting;
using System.Threading.Tasks;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Tollgate.AspNetCore;
using Xunit;

namespace Tollgate.Tests;

// Tenant groups (docs/quotas.md) through the binding, on the in-process store: the options that
// mirror "groups", "weight", "guaranteed_rate" and "fair_instances", and Reason.OverGroupLimit.
// Waits are bounded (30 s); no assertion depends on how long anything takes.
// Not in parallel with LimiterTests (the "redis" collection): its waits make
// TollgateLimiter.PendingWaits move, which is process-wide and which LimiterTests counts exactly.
[Collection("redis")]
public sealed class GroupTests
{
    private static readonly TimeSpan Long = TimeSpan.FromSeconds(30);

    // A group of 10 tokens that then refills one token per 1000 s: once spent, it stays spent
    // for the whole test. Each tenant's own rate (100) is far above it. "solo:*" keys have no
    // group: their own quota (1 token, same refill) is what runs out.
    private static Dictionary<string, string?> Settings() => new()
    {
        ["Tollgate:Groups:0:Name"] = "gpu",
        ["Tollgate:Groups:0:Rate"] = "0.001",
        ["Tollgate:Groups:0:Burst"] = "10",
        ["Tollgate:Policies:0:Match"] = "tenant:*",
        ["Tollgate:Policies:0:Group"] = "gpu",
        ["Tollgate:Policies:0:Type"] = "token_bucket",
        ["Tollgate:Policies:0:Rate"] = "100",
        ["Tollgate:Policies:0:Weight"] = "2",
        ["Tollgate:Policies:0:FairInstances"] = "true",
        ["Tollgate:Policies:1:Match"] = "solo:*",
        ["Tollgate:Policies:1:Type"] = "token_bucket",
        ["Tollgate:Policies:1:Rate"] = "0.001",
        ["Tollgate:Policies:1:Burst"] = "1",
    };

    private static ServiceProvider Services(Dictionary<string, string?> settings)
    {
        IConfiguration config = new ConfigurationBuilder().AddInMemoryCollection(settings).Build();
        var services = new ServiceCollection();
        services.AddLogging();
        services.AddTollgate(config.GetSection("Tollgate"));
        services.AddRateLimiter(o => o.UseTollgateGlobalLimiter(
            http => http.Request.Headers.TryGetValue("X-Key", out var k) ? k.ToString() : null));
        return services.BuildServiceProvider();
    }

    [Fact]
    public void ReasonNamesMatchTheNativeLibrary()
    {
        Assert.Equal(Native.ReasonCount, Enum.GetValues<Reason>().Length);
        Assert.Equal(Reason.InDebt, (Reason)(Native.ReasonCount - 1));
        for (int i = 0; i < Native.ReasonCount; i++)
            Assert.Equal(NativeReason(i), ReasonNames.Of((Reason)i));
        // the loaded library has exactly ReasonCount reasons: tg_stats.denied[] has that length
        Assert.Equal("unknown", NativeReason(Native.ReasonCount));
        Assert.Equal("over_group_limit", ReasonNames.Of(Reason.OverGroupLimit));
        Assert.Equal("in_debt", ReasonNames.Of(Reason.InDebt));
    }

    private static unsafe string NativeReason(int reason) => Marshal.PtrToStringUTF8((nint)Native.ReasonStr(reason))!;

    [Fact]
    public void GroupsAndSharesBecomeTheNativeJsonAndValidate()
    {
        var o = new TollgateOptions
        {
            Groups = new() { new GroupSettings { Name = "gpu", Rate = 120, Burst = 120 }, new GroupSettings { Name = "cpu", Rate = 50 } },
            Policies =
            {
                new PolicySettings { Match = "tenant:*", Group = "gpu", Type = "token_bucket", Rate = 100,
                    Weight = 2, GuaranteedRate = 10, FairInstances = false },
                new PolicySettings { Match = "batch:*", Group = "cpu", Type = "token_bucket", Rate = 20 },
            },
        };
        Assert.Equal(
            """{"groups":[{"name":"gpu","rate":120,"burst":120},{"name":"cpu","rate":50}],"policies":[{"match":"tenant:*","group":"gpu","type":"token_bucket","rate":100,"weight":2,"guaranteed_rate":10,"fair_instances":false},{"match":"batch:*","group":"cpu","type":"token_bucket","rate":20}]}""",
            o.ToJson());
        TollgateLimiter.Validate(o.ToJson());
        Assert.Equal("Tollgate:Policies:0:GuaranteedRate", TollgateOptions.ConfigurationPath("policies[0].guaranteed_rate"));
        Assert.Equal("Tollgate:Groups:1:Rate", TollgateOptions.ConfigurationPath("groups[1].rate"));
    }

    [Fact]
    public void AWeightWithoutABudgetedGroupNamesTheField()
    {
        var o = new TollgateOptions
        {
            Policies = { new PolicySettings { Match = "tenant:*", Group = "gpu", Type = "token_bucket", Rate = 5, Weight = 2 } },
        };
        var e = Assert.Throws<TollgateConfigException>(() => TollgateLimiter.Validate(o.ToJson()));
        Assert.Contains("policies[0].weight", e.Message);

        var settings = Settings();
        settings.Remove("Tollgate:Groups:0:Name");
        settings.Remove("Tollgate:Groups:0:Rate");
        settings.Remove("Tollgate:Groups:0:Burst");
        using ServiceProvider sp = Services(settings);
        var v = Assert.Throws<OptionsValidationException>(() => sp.GetRequiredService<IOptions<TollgateOptions>>().Value);
        Assert.Contains("Tollgate:Policies:0:Weight", v.Message);
        Assert.Contains("policies[0].weight", v.Message);
    }

    [Fact]
    public void AGroupWithoutARateIsNamedByItsConfigurationKey()
    {
        var settings = Settings();
        settings.Remove("Tollgate:Groups:0:Rate");
        using ServiceProvider sp = Services(settings);
        var v = Assert.Throws<OptionsValidationException>(() => sp.GetRequiredService<IOptions<TollgateOptions>>().Value);
        Assert.Contains("Tollgate:Groups:0:Rate", v.Message);
        Assert.Contains("groups[0].rate", v.Message);

        settings = Settings();
        settings["Tollgate:Policies:0:GuaranteedRate"] = "5";  // above the group's rate
        using ServiceProvider sp2 = Services(settings);
        v = Assert.Throws<OptionsValidationException>(() => sp2.GetRequiredService<IOptions<TollgateOptions>>().Value);
        Assert.Contains("Tollgate:Policies:0:GuaranteedRate", v.Message);
    }

    [Fact]
    public async Task ASpentGroupIsOverGroupLimitAnd429LikeOverLimit()
    {
        using ServiceProvider sp = Services(Settings());
        TollgateLimiter limiter = sp.GetRequiredService<TollgateLimiter>();
        Decision group = await SpendUntil(limiter, "tenant:a", Reason.OverGroupLimit, Reason.OverLimit);
        Assert.False(group.Allowed);
        Assert.True(group.RetryAfter > TimeSpan.Zero);
        Decision own = await SpendUntil(limiter, "solo:a", Reason.OverLimit, Reason.OverGroupLimit);
        Assert.False(own.Allowed);
        Assert.True(limiter.GetStats().DeniedByReason[Reason.OverGroupLimit] >= 1);

        // the RateLimiter view: refused at once (no queueing for a spent budget), with its reason
        using (TollgateRateLimiter view = limiter.ForKey("tenant:a"))
        {
            ValueTask<RateLimitLease> wait = view.AcquireAsync();
            Assert.True(wait.IsCompleted);
            using RateLimitLease lease = await wait;
            Assert.False(lease.IsAcquired);
            Assert.True(lease.TryGetMetadata(MetadataName.ReasonPhrase, out string? phrase));
            Assert.Equal("over_group_limit", phrase);
            Assert.True(lease.TryGetMetadata(MetadataName.RetryAfter, out TimeSpan after));
            Assert.True(after > TimeSpan.Zero);
        }

        // the rate-limiting middleware: both are 429 with Retry-After; an unlimited request is not
        RequestDelegate pipeline = TestPipeline.WithRateLimiter(sp);
        HttpContext overGroup = await Send(pipeline, sp, "tenant:a");
        HttpContext overOwn = await Send(pipeline, sp, "solo:a");
        HttpContext unlimited = await Send(pipeline, sp, null);
        Assert.Equal(StatusCodes.Status429TooManyRequests, overOwn.Response.StatusCode);
        Assert.Equal(overOwn.Response.StatusCode, overGroup.Response.StatusCode);
        Assert.True(long.Parse(overGroup.Response.Headers.RetryAfter.ToString()) >= 1);
        Assert.True(long.Parse(overOwn.Response.Headers.RetryAfter.ToString()) >= 1);
        Assert.Equal(StatusCodes.Status200OK, unlimited.Response.StatusCode);
    }

    private static async Task<HttpContext> Send(RequestDelegate pipeline, IServiceProvider sp, string? key)
    {
        var context = new DefaultHttpContext { RequestServices = sp };
        if (key != null) context.Request.Headers["X-Key"] = key;
        await pipeline(context).WaitAsync(Long);
        return context;
    }

    // Spends until a denial gives `reason` (not merely a lease still on its way); `never` must
    // not be the reason on the way.
    private static async Task<Decision> SpendUntil(TollgateLimiter limiter, string key, Reason reason, Reason never)
    {
        Assert.True((await limiter.AcquireAsync(key, 1, Long)).Allowed);
        var deadline = DateTime.UtcNow + Long;
        while (DateTime.UtcNow < deadline)
        {
            Decision d = limiter.TryAcquire(key);
            if (!d.Allowed && d.Reason == reason) return d;
            Assert.NotEqual(never, d.Reason);
            if (!d.Allowed) await Task.Delay(1);
        }
        Assert.Fail($"no {reason} within 30 s");
        return default;
    }
}

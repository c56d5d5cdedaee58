using System;
using System.Collections.Generic;
using System.Linq;
using System.Net;
using System.Net.Http;
using System.Threading.Tasks;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Tollgate.AspNetCore;
using Xunit;

namespace Tollgate.Tests;

// Reservations (costs known only afterwards): TollgateReservation.Settle against real Redis,
// and RequireTollgateReservation on a minimal API served by real Kestrel on a loopback port.
[Collection("redis")]
public sealed class ReservationTests
{
    private readonly RedisServer _redis;

    public ReservationTests(RedisServer redis) => _redis = redis;

    private string Config(string policy) =>
        "{\"store\": {\"type\": \"redis\", \"shards\": [\"" + _redis.Url + "\"]}, \"policies\": [" +
        "{\"name\": \"" + policy + "\", \"match\": \"tenant:*\", \"type\": \"token_bucket\", " +
        "\"rate\": 0.001, \"burst\": 1000}]}";

    private static async Task<TollgateReservation> ReserveWarm(TollgateLimiter limiter, string key, long estimate)
    {
        for (int i = 0; i < 2000; i++)  // the first lease is on its way: a cold key is denied
        {
            TollgateReservation r = limiter.Reserve(key, estimate);
            if (r.IsAcquired) return r;
            r.Dispose();
            await Task.Delay(10);
        }
        throw new TimeoutException("no lease for " + key);
    }

    [Fact]
    public async Task SettleChargesTheActualCostAndDisposeTheEstimate()
    {
        using TollgateLimiter limiter = TollgateLimiter.Create(Config("reserve-" + Guid.NewGuid().ToString("N")));
        using (TollgateReservation r = await ReserveWarm(limiter, "tenant:a", 100))
        {
            Assert.True(r.IsPending);
            Settlement s = r.Settle(30);
            Assert.Equal(30, s.Charged);
            Assert.Equal(70, s.Refunded + s.Dropped);
            Assert.False(r.IsPending);
            Assert.Throws<InvalidOperationException>(() => r.Settle(30));
        }
        using (TollgateReservation r = await ReserveWarm(limiter, "tenant:a", 10))
        {
            Assert.Throws<ArgumentOutOfRangeException>(() => r.Settle(-1));
            Assert.Throws<ArgumentOutOfRangeException>(() => r.Settle(long.MaxValue));
            Assert.True(r.IsPending, "a refused settle changes nothing");
        }  // settled at the estimate
        using (TollgateReservation bad = limiter.Reserve("tenant:a", 0))
        {
            Assert.False(bad.IsAcquired);
            Assert.Equal(Reason.InvalidArgument, bad.Decision.Reason);
            Assert.Throws<InvalidOperationException>(() => bad.Settle(1));
        }
        TollgateStats st = limiter.GetStats();
        Assert.Equal(2ul, st.Reserved);
        Assert.Equal(1ul, st.SettledUnder);
        Assert.Equal(0ul, st.SettledOver);
    }

    [Fact]
    public async Task ReserveAsyncWaitsForTheLeaseAndEndsByTimeoutOrCancellation()
    {
        using TollgateLimiter limiter = TollgateLimiter.Create(Config("reserve-async-" + Guid.NewGuid().ToString("N")));
        // The whole burst held (a new Limiter holds whole estimates until settles show less,
        // docs/quotas.md): the next one waits until its timeout, or until cancelled.
        using TollgateReservation all = await limiter.ReserveAsync("tenant:d", 1000, TimeSpan.FromSeconds(30));
        Assert.True(all.IsAcquired, all.Decision.Reason.ToString());
        using (TollgateReservation late = await limiter.ReserveAsync("tenant:d", 10, TimeSpan.FromMilliseconds(50)))
        {
            Assert.False(late.IsAcquired);
            Assert.False(late.IsPending);
            Assert.Equal(Reason.Timeout, late.Decision.Reason);
        }
        using var cts = new System.Threading.CancellationTokenSource();
        Task<TollgateReservation> waiting = limiter.ReserveAsync("tenant:d", 10, TimeSpan.FromSeconds(600), cts.Token);
        Assert.False(waiting.IsCompleted);
        cts.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => waiting);
        // A cold key: the reservation arrives with its first lease, without a retry loop.
        using (TollgateReservation r = await limiter.ReserveAsync("tenant:c", 5, TimeSpan.FromSeconds(30)))
        {
            Assert.True(r.IsAcquired, r.Decision.Reason.ToString());
            Assert.True(r.IsPending);
            Assert.Equal(2, r.Settle(2).Charged);
        }
        TollgateStats st = limiter.GetStats();
        Assert.Equal(2ul, st.Reserved);
    }

    [Fact]
    public async Task AnEndpointReservesItsEstimateAndIsSettledWithWhatItReports()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseKestrel().UseUrls("http://127.0.0.1:0");
        string policy = "endpoint-" + Guid.NewGuid().ToString("N");
        builder.Services.AddSingleton(_ => TollgateLimiter.Create(Config(policy)));
        await using WebApplication app = builder.Build();
        static string? Key(HttpContext http) => http.Request.Headers["X-Tenant"].FirstOrDefault() is { } t ? "tenant:" + t : null;
        static long Estimate(HttpContext http) => long.Parse(http.Request.Query["estimate"]!);
        // Reports the actual cost through the feature, the header, or not at all.
        app.MapPost("/feature", (HttpContext http) =>
        {
            http.Features.Get<ITollgateReservationFeature>()!.ActualCost = long.Parse(http.Request.Query["used"]!);
            return "ok";
        }).RequireTollgateReservation(Key, Estimate);
        app.MapPost("/header", (HttpContext http) =>
        {
            http.Response.Headers[TollgateReservationExtensions.ActualCostHeader] = http.Request.Query["used"].ToString();
            return "ok";
        }).RequireTollgateReservation(Key, Estimate);
        app.MapPost("/silent", () => "ok").RequireTollgateReservation(Key, Estimate);
        await app.StartAsync();
        string url = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        using var client = new HttpClient { BaseAddress = new Uri(url) };
        async Task<HttpResponseMessage> Post(string path)
        {
            var req = new HttpRequestMessage(HttpMethod.Post, path);
            req.Headers.Add("X-Tenant", "acme");
            return await client.SendAsync(req);
        }
        // Reserving never waits: a 429 while the key's leases are on their way (lease_pending).
        async Task<HttpResponseMessage> PostUntilServed(string path)
        {
            HttpResponseMessage r = await Post(path);
            for (int i = 0; i < 2000 && r.StatusCode == HttpStatusCode.TooManyRequests; i++)
            {
                await Task.Delay(10);
                r = await Post(path);
            }
            return r;
        }
        var limiter = app.Services.GetRequiredService<TollgateLimiter>();
        Assert.Equal(HttpStatusCode.OK, (await PostUntilServed("/silent?estimate=1")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await PostUntilServed("/feature?estimate=100&used=10")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await PostUntilServed("/header?estimate=100&used=150")).StatusCode);
        HttpResponseMessage tooBig = await Post("/silent?estimate=5000");  // above the capacity
        Assert.Equal(HttpStatusCode.TooManyRequests, tooBig.StatusCode);
        Assert.Contains("invalid_argument", await tooBig.Content.ReadAsStringAsync());
        TollgateStats st = limiter.GetStats();
        Assert.True(st.Reserved >= 3, $"reserved {st.Reserved}");
        Assert.Equal(1ul, st.SettledUnder);
        Assert.Equal(1ul, st.SettledOver);
        await app.StopAsync();
    }
}

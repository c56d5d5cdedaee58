using System;
using System.Threading.Tasks;
using Polly;
using Polly.RateLimiting;
using Xunit;

namespace Tollgate.Tests;

// A TollgateRateLimiter is a System.Threading.RateLimiting.RateLimiter, so Polly takes it as is.
[Collection("redis")]
public sealed class PollyTests
{
    private readonly RedisServer _redis;

    public PollyTests(RedisServer redis) => _redis = redis;

    [Fact]
    public async Task APollyPipelineAdmitsWithinTheQuotaAndRejectsWithRetryAfter()
    {
        using TollgateLimiter limiter = TollgateLimiter.Create($$"""
            {"store": {"type": "redis", "shards": ["{{_redis.Url}}"]}, "leases": {"max_fraction": 1},
             "policies": [{"match": "tenant:*", "type": "token_bucket", "rate": 0.001, "burst": 3}]}
            """);
        string key = "tenant:" + Guid.NewGuid().ToString("N");
        using TollgateRateLimiter tenant = limiter.ForKey(key);
        ResiliencePipeline pipeline = new ResiliencePipelineBuilder().AddRateLimiter(tenant).Build();

        int admitted = 0;
        RateLimiterRejectedException? rejected = null;
        for (int i = 0; i < 20 && rejected == null; i++)
        {
            try
            {
                // AcquireAsync under the hood: the first call waits for the first lease.
                await pipeline.ExecuteAsync(_ => ValueTask.CompletedTask);
                admitted++;
            }
            catch (RateLimiterRejectedException e)
            {
                rejected = e;
            }
        }
        Assert.InRange(admitted, 1, 3);
        Assert.NotNull(rejected);
        Assert.NotNull(rejected!.RetryAfter);  // from MetadataName.RetryAfter
        Assert.True(rejected.RetryAfter > TimeSpan.Zero);
    }
}

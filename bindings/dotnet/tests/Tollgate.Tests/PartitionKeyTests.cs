using System;
using System.Collections.Generic;
using System.Threading.Tasks;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Tollgate.AspNetCore;
using Xunit;

namespace Tollgate.Tests;

// The partition key of docs/dotnet.md and the packages' READMEs: a request without a tenant
// (no header, empty, blank) is not limited by the policy, and never shares the key "tenant:".
// Not in parallel with LimiterTests (the "redis" collection): its waits make
// TollgateLimiter.PendingWaits move, which is process-wide and which LimiterTests counts exactly.
[Collection("redis")]
public sealed class PartitionKeyTests
{
    private static readonly TimeSpan Long = TimeSpan.FromSeconds(30);

    // Verbatim from docs/dotnet.md (AddTollgatePolicy's second argument).
    private static readonly Func<HttpContext, string?> DocsKey = http =>
        http.Request.Headers["X-Tenant"].ToString() is var tenant && !string.IsNullOrWhiteSpace(tenant)
            ? "tenant:" + tenant     // each tenant its own quota
            : null;                  // no tenant (missing, empty or blank header): not limited by this policy

    // One token per tenant, refilled one per 1000 s: a second request of a tenant is refused.
    private static ServiceProvider Services()
    {
        IConfiguration config = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Tollgate:Policies:0:Match"] = "tenant:*",
            ["Tollgate:Policies:0:Type"] = "token_bucket",
            ["Tollgate:Policies:0:Rate"] = "0.001",
            ["Tollgate:Policies:0:Burst"] = "1",
        }).Build();
        var services = new ServiceCollection();
        services.AddLogging();
        services.AddTollgate(config.GetSection("Tollgate"));
        services.AddRateLimiter(o => o.AddTollgatePolicy("per-tenant", DocsKey));
        return services.BuildServiceProvider();
    }

    private static HttpContext Request(IServiceProvider sp, string? tenant)
    {
        var context = new DefaultHttpContext { RequestServices = sp };
        if (tenant != null) context.Request.Headers["X-Tenant"] = tenant;
        return context;
    }

    [Fact]
    public void TheDocumentedKeyIsNullWithoutATenant()
    {
        using ServiceProvider sp = Services();
        Assert.Null(DocsKey(Request(sp, null)));
        Assert.Null(DocsKey(Request(sp, "")));
        Assert.Null(DocsKey(Request(sp, "  ")));
        Assert.Equal("tenant:acme", DocsKey(Request(sp, "acme")));
    }

    [Fact]
    public async Task RequestsWithoutATenantAreNotLimitedAndShareNoQuota()
    {
        using ServiceProvider sp = Services();
        RequestDelegate pipeline = TestPipeline.WithRateLimiter(sp);
        // The policy through endpoint metadata, as RequireRateLimiting("per-tenant") sets it.
        async Task<int> Send(string? tenant)
        {
            HttpContext c = Request(sp, tenant);
            c.SetEndpoint(new Endpoint(_ => Task.CompletedTask,
                new EndpointMetadataCollection(new Microsoft.AspNetCore.RateLimiting.EnableRateLimitingAttribute("per-tenant")),
                "infer"));
            await pipeline(c).WaitAsync(Long);
            return c.Response.StatusCode;
        }

        Assert.Equal(StatusCodes.Status200OK, await Send("acme"));
        Assert.Equal(StatusCodes.Status429TooManyRequests, await Send("acme"));  // the policy applies
        foreach (string? none in new[] { null, "", " ", null, "" })
            Assert.Equal(StatusCodes.Status200OK, await Send(none));
    }
}

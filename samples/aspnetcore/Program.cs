// A minimal API whose tenants share global quotas through Tollgate. Each request names its
// tenant in the X-Tenant header; over its quota it gets 429 with Retry-After.
//   samples/aspnetcore/run.sh            (in-process store; see README.md for Redis)
using System.Threading.RateLimiting;
using Tollgate.AspNetCore;

var builder = WebApplication.CreateBuilder(args);
builder.Services.AddTollgate(builder.Configuration.GetSection("Tollgate"));
builder.Services.AddHealthChecks().AddTollgate();
static string TenantKey(HttpContext http) => "tenant:" + (http.Request.Headers["X-Tenant"].FirstOrDefault() ?? "anonymous");

// Sample:RateLimiting: "tollgate" (the default), "off" (no middleware), or "bcl" (the same
// middleware and partitions with the BCL's in-process token bucket): bench/dotnet/wrk.sh
// compares the three.
string mode = builder.Configuration.GetValue("Sample:RateLimiting", "tollgate")!;
if (mode == "bcl")
{
    builder.Services.AddRateLimiter(o =>
    {
        o.AddPolicy("per-tenant", http => RateLimitPartition.GetTokenBucketLimiter(TenantKey(http),
            _ => new TokenBucketRateLimiterOptions
            {
                TokenLimit = 1_000_000_000, TokensPerPeriod = 1_000_000_000,
                ReplenishmentPeriod = TimeSpan.FromSeconds(1), QueueLimit = 0,
            }));
        o.UseTollgateRejection();
    });
}
else
{
    builder.Services.AddRateLimiter(o => o.AddTollgatePolicy("per-tenant", TenantKey));
}

var app = builder.Build();
if (mode != "off") app.UseRateLimiter();

app.MapGet("/", (HttpContext http) => $"hello, {http.Request.Headers["X-Tenant"].FirstOrDefault() ?? "anonymous"}\n")
    .RequireRateLimiting("per-tenant");
app.MapHealthChecks("/healthz");
app.MapTollgateMetrics("/metrics");  // Prometheus text (docs/observability.md)
app.Run();

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
// A fake "completion": the cost (tokens generated) is known only when it ends. The request
// reserves its estimate (prompt + max_tokens) and is settled with what it used
// (docs/quotas.md, "Estimated costs"); the tenant's debt, if any, is paid by its next leases.
//   curl -X POST -H 'X-Tenant: acme' 'localhost:5080/v1/completions?prompt=hello%20world&max_tokens=200'
app.MapPost("/v1/completions", (HttpContext http, string? prompt, int? max_tokens) =>
    {
        int promptTokens = Math.Max(1, (prompt ?? "").Length / 4);
        int generated = Random.Shared.Next(0, Math.Max(1, max_tokens ?? 256) + 1);
        http.Features.Get<ITollgateReservationFeature>()!.ActualCost = promptTokens + generated;
        return Results.Json(new { usage = new { prompt_tokens = promptTokens, completion_tokens = generated } });
    })
    .RequireTollgateReservation(http => "tokens:" + (http.Request.Headers["X-Tenant"].FirstOrDefault() ?? "anonymous"), http =>
        Math.Max(1, (http.Request.Query["prompt"].ToString().Length / 4)) +
        (long.TryParse(http.Request.Query["max_tokens"], out long m) ? m : 256));
app.MapHealthChecks("/healthz");
app.MapTollgateMetrics("/metrics");  // Prometheus text (docs/observability.md)
app.Run();

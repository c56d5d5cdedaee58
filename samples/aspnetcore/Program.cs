// A minimal API whose tenants share global quotas through Tollgate. Each request names its
// tenant in the X-Tenant header; over its quota it gets 429 with Retry-After.
//   samples/aspnetcore/run.sh            (in-process store; see README.md for Redis)
using Tollgate.AspNetCore;

var builder = WebApplication.CreateBuilder(args);
builder.Services.AddTollgate(builder.Configuration.GetSection("Tollgate"));
builder.Services.AddHealthChecks().AddTollgate();
builder.Services.AddRateLimiter(o => o.AddTollgatePolicy("per-tenant",
    http => "tenant:" + (http.Request.Headers["X-Tenant"].FirstOrDefault() ?? "anonymous")));

var app = builder.Build();
// Sample:RateLimiting=false leaves the middleware out (bench/dotnet/wrk.sh compares both).
if (app.Configuration.GetValue("Sample:RateLimiting", true)) app.UseRateLimiter();

app.MapGet("/", (HttpContext http) => $"hello, {http.Request.Headers["X-Tenant"].FirstOrDefault() ?? "anonymous"}\n")
    .RequireRateLimiting("per-tenant");
app.MapHealthChecks("/healthz");
app.Run();

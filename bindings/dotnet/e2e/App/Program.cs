using System.Diagnostics;
using System.Diagnostics.Metrics;
using Tollgate.AspNetCore;

// Telemetry as an application would see it: listeners on the "Tollgate" source and meter.
long leaseActivities = 0, leaseMeasurements = 0, decisionMeasurements = 0;
var tagValues = new System.Collections.Concurrent.ConcurrentBag<string>();
using var activities = new ActivityListener
{
    ShouldListenTo = s => s.Name == "Tollgate",
    Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
    ActivityStopped = a =>
    {
        if (a.OperationName == "tollgate.lease") Interlocked.Increment(ref leaseActivities);
        foreach (var t in a.Tags) tagValues.Add(t.Value ?? "");
    },
};
ActivitySource.AddActivityListener(activities);
using var meters = new MeterListener
{
    InstrumentPublished = (i, l) => { if (i.Meter.Name == "Tollgate") l.EnableMeasurementEvents(i); },
};
meters.SetMeasurementEventCallback<long>((i, value, tags, _) =>
{
    if (i.Name == "tollgate.lease.requests") Interlocked.Increment(ref leaseMeasurements);
    if (i.Name == "tollgate.decisions") Interlocked.Increment(ref decisionMeasurements);
    foreach (var t in tags) tagValues.Add(t.Value?.ToString() ?? "");
});
meters.Start();

var builder = WebApplication.CreateBuilder(args);
builder.Services.AddTollgate(builder.Configuration.GetSection("Tollgate"));
builder.Services.AddHealthChecks().AddTollgate();
builder.Services.AddRateLimiter(o => o.AddTollgatePolicy("per-tenant",
    http => http.Request.Headers.TryGetValue("X-Tenant", out var t) ? "tenant:" + t : null));

var app = builder.Build();
app.UseRateLimiter();
app.MapGet("/work", () => "ok").RequireRateLimiting("per-tenant");
app.MapHealthChecks("/healthz");
app.MapGet("/telemetry", (string? tenant) =>
{
    meters.RecordObservableInstruments();
    return Results.Json(new
    {
        leaseActivities = Interlocked.Read(ref leaseActivities),
        leaseMeasurements = Interlocked.Read(ref leaseMeasurements),
        decisionMeasurements = Interlocked.Read(ref decisionMeasurements),
        tenantInTags = tenant != null && tagValues.Any(v => v.Contains(tenant, StringComparison.Ordinal)),
    });
});
app.Run();

using System.Collections.Generic;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace Tollgate.AspNetCore;

/// <summary>
/// Healthy while every Redis shard's circuit breaker is closed; degraded when some are open or
/// half-open (decisions for those shards fall back); unhealthy when all are open.
/// </summary>
public sealed class TollgateHealthCheck : IHealthCheck
{
    private readonly TollgateLimiter _limiter;

    /// <summary>Creates the check for the registered limiter.</summary>
    public TollgateHealthCheck(TollgateLimiter limiter) => _limiter = limiter;

    /// <inheritdoc />
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context,
        CancellationToken cancellationToken = default)
    {
        TollgateStats stats = _limiter.GetStats();
        var data = new Dictionary<string, object>();
        for (int i = 0; i < stats.Breakers.Count; i++)
            data[$"shard{i}"] = TollgateTelemetry.StateName(stats.Breakers[i]);
        int open = stats.Breakers.Count(b => b != BreakerState.Closed);
        HealthCheckResult result =
            open == 0 ? HealthCheckResult.Healthy($"{stats.Breakers.Count} shard(s), all breakers closed", data)
            : open == stats.Breakers.Count && stats.Breakers.All(b => b == BreakerState.Open)
                ? new HealthCheckResult(context.Registration.FailureStatus, "every shard's breaker is open", null, data)
                : HealthCheckResult.Degraded($"{open} of {stats.Breakers.Count} shard breakers not closed", null, data);
        return Task.FromResult(result);
    }
}

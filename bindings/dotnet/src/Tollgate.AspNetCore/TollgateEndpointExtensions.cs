using System;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;

namespace Tollgate.AspNetCore;

/// <summary>Endpoints over the registered <see cref="TollgateLimiter"/>.</summary>
public static class TollgateEndpointExtensions
{
    /// <summary>The Prometheus text format's content type.</summary>
    public const string PrometheusContentType = "text/plain; version=0.0.4; charset=utf-8";

    /// <summary>
    /// Serves the limiter's metrics for a Prometheus scrape at <paramref name="pattern"/>: the
    /// native exposition (<see cref="TollgateLimiter.GetPrometheusText"/>), in the metric vocabulary
    /// of docs/observability.md. Add authorization or a separate port as for any metrics endpoint.
    /// </summary>
    public static IEndpointConventionBuilder MapTollgateMetrics(this IEndpointRouteBuilder endpoints,
        string pattern = "/metrics")
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        return endpoints.MapGet(pattern, (HttpContext http) =>
        {
            TollgateLimiter limiter = http.RequestServices.GetRequiredService<TollgateLimiter>();
            return Results.Text(limiter.GetPrometheusText(), PrometheusContentType);
        });
    }
}

using System;
using System.Globalization;
using System.Threading.Tasks;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;

namespace Tollgate.AspNetCore;

/// <summary>
/// The reservation an endpoint runs under (<see cref="TollgateReservationExtensions.RequireTollgateReservation"/>):
/// the endpoint sets <see cref="ActualCost"/> once it knows what the request cost, and the
/// reservation is settled with it when the endpoint returns.
/// </summary>
public interface ITollgateReservationFeature
{
    /// <summary>The reservation of the request's estimate.</summary>
    TollgateReservation Reservation { get; }

    /// <summary>The request's actual cost; unset: the response header, or else the estimate.</summary>
    long? ActualCost { get; set; }
}

/// <summary>Reserve an estimate from the request, settle the actual cost from the response.</summary>
public static class TollgateReservationExtensions
{
    /// <summary>The response header an endpoint may set instead of <see cref="ITollgateReservationFeature.ActualCost"/>.</summary>
    public const string ActualCostHeader = "Tollgate-Actual-Cost";

    private sealed class Feature : ITollgateReservationFeature
    {
        public Feature(TollgateReservation reservation) => Reservation = reservation;
        public TollgateReservation Reservation { get; }
        public long? ActualCost { get; set; }
    }

    /// <summary>
    /// Runs the endpoint under a reservation of <paramref name="estimate"/> tokens of the key
    /// <paramref name="key"/> gives (null: not limited), taken without waiting
    /// (<see cref="TollgateLimiter.Reserve"/>): when it is denied the endpoint does not run and
    /// the answer is 429 with Retry-After. When the endpoint returns, the reservation is settled
    /// with the cost it set in <see cref="ITollgateReservationFeature.ActualCost"/> (from
    /// <c>HttpContext.Features</c>), or in the <see cref="ActualCostHeader"/> response header;
    /// without either, or when the endpoint throws, at the estimate.
    /// </summary>
    public static TBuilder RequireTollgateReservation<TBuilder>(this TBuilder builder,
        Func<HttpContext, string?> key, Func<HttpContext, long> estimate)
        where TBuilder : IEndpointConventionBuilder
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(key);
        ArgumentNullException.ThrowIfNull(estimate);
        builder.AddEndpointFilter(async (context, next) =>
        {
            HttpContext http = context.HttpContext;
            string? k = key(http);
            if (k is null) return await next(context);
            TollgateLimiter limiter = http.RequestServices.GetRequiredService<TollgateLimiter>();
            using TollgateReservation reservation = limiter.Reserve(k, estimate(http));
            if (!reservation.IsAcquired)
            {
                TimeSpan wait = reservation.Decision.RetryAfter;
                http.Response.Headers.RetryAfter =
                    ((long)Math.Ceiling(Math.Max(1, wait.TotalSeconds))).ToString(CultureInfo.InvariantCulture);
                return Results.Text("Too Many Requests: " + ReasonNames.Of(reservation.Decision.Reason) + "\n",
                    statusCode: StatusCodes.Status429TooManyRequests);
            }
            var feature = new Feature(reservation);
            http.Features.Set<ITollgateReservationFeature>(feature);
            object? result = await next(context);
            long? actual = feature.ActualCost;
            if (actual is null &&
                long.TryParse(http.Response.Headers[ActualCostHeader].ToString(), NumberStyles.None,
                    CultureInfo.InvariantCulture, out long fromHeader))
            {
                actual = fromHeader;
            }
            if (actual is long cost && cost <= 1L << 53 && reservation.IsPending) reservation.Settle(cost);
            return result;  // unsettled: Dispose settles at the estimate
        });
        return builder;
    }
}

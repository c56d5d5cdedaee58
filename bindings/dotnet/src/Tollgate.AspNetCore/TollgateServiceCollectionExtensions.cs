using System;
using System.Globalization;
using System.Threading.RateLimiting;
using System.Threading.Tasks;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.RateLimiting;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Tollgate.AspNetCore;

/// <summary>Registers Tollgate with ASP.NET Core.</summary>
public static class TollgateServiceCollectionExtensions
{
    /// <summary>
    /// Binds <see cref="TollgateOptions"/> to <paramref name="section"/> (unknown keys are errors),
    /// validates them at start-up (a bad setting stops the host with a message naming it) and
    /// registers one <see cref="TollgateLimiter"/> singleton whose native log lines go to
    /// <see cref="ILogger"/> (category "Tollgate").
    /// </summary>
    public static IServiceCollection AddTollgate(this IServiceCollection services, IConfigurationSection section)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(section);
        services.AddOptions<TollgateOptions>()
            .Configure(o => BindStrictly(section, o))
            .ValidateOnStart();
        services.AddSingleton<IValidateOptions<TollgateOptions>>(new TollgateOptionsValidator(section.Path));
        // A reload of the section reaches IOptionsMonitor (and so the running limiter).
        services.AddSingleton<IOptionsChangeTokenSource<TollgateOptions>>(
            new ConfigurationChangeTokenSource<TollgateOptions>(Options.DefaultName, section));
        services.AddSingleton(sp =>
        {
            var monitor = sp.GetRequiredService<IOptionsMonitor<TollgateOptions>>();
            TollgateOptions o = monitor.CurrentValue;
            ILogger logger = sp.GetRequiredService<ILoggerFactory>().CreateLogger("Tollgate");
            TollgateLimiter limiter = TollgateLimiter.Create(o.ToJson(), new TollgateLimiterOptions
            {
                Log = (level, message) => logger.Log(ToLogLevel(level), "{Message}", message),
                MinimumLogLevel = MinimumLevel(logger),
                QueueTimeout = o.QueueTimeout,
                DefaultRetryAfter = o.DefaultRetryAfter,
            });
            // appsettings reload, Azure App Configuration, ...: the running limiter takes the
            // change; a bad one is logged and the running config stays.
            limiter.Subscription = monitor.OnChange(changed => Update(limiter, changed, logger));
            return limiter;
        });
        return services;
    }

    /// <summary>A health check ("tollgate") reporting the Redis shards' circuit breakers.</summary>
    public static IHealthChecksBuilder AddTollgate(this IHealthChecksBuilder builder, string name = "tollgate")
    {
        ArgumentNullException.ThrowIfNull(builder);
        return builder.AddCheck<TollgateHealthCheck>(name, HealthStatus.Unhealthy, new[] { "tollgate" });
    }

    /// <summary>
    /// A rate-limiting policy that partitions requests by the key <paramref name="keyOf"/> gives
    /// (for example "tenant:" + the tenant id; null: not limited by this policy, docs/dotnet.md says
    /// what to give a request without a tenant). Also makes rejections 429 with
    /// Retry-After, unless <c>OnRejected</c> is already set.
    /// </summary>
    public static RateLimiterOptions AddTollgatePolicy(this RateLimiterOptions options, string policyName,
        Func<HttpContext, string?> keyOf)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(keyOf);
        options.AddPolicy(policyName, context => PartitionOf(context, keyOf));
        return options.UseTollgateRejection();
    }

    /// <summary>The same partitioning as <see cref="AddTollgatePolicy"/>, as the global limiter.</summary>
    public static RateLimiterOptions UseTollgateGlobalLimiter(this RateLimiterOptions options,
        Func<HttpContext, string?> keyOf)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(keyOf);
        options.GlobalLimiter = PartitionedRateLimiter.Create<HttpContext, string>(c => PartitionOf(c, keyOf));
        return options.UseTollgateRejection();
    }

    /// <summary>Rejections become 429 with a Retry-After header (whole seconds, rounded up).</summary>
    public static RateLimiterOptions UseTollgateRejection(this RateLimiterOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.RejectionStatusCode = StatusCodes.Status429TooManyRequests;
        options.OnRejected ??= (context, _) =>
        {
            if (context.Lease.TryGetMetadata(MetadataName.RetryAfter, out TimeSpan retry))
            {
                long seconds = Math.Max(1, (long)Math.Ceiling(retry.TotalSeconds));
                context.HttpContext.Response.Headers.RetryAfter = seconds.ToString(CultureInfo.InvariantCulture);
            }
            return ValueTask.CompletedTask;
        };
        return options;
    }

    // Unknown keys are errors (as in the JSON form); the binder's own message hides the
    // property's name in an inner exception, so it is brought up front.
    private static void BindStrictly(IConfigurationSection section, TollgateOptions options)
    {
        try
        {
            section.Bind(options, b => b.ErrorOnUnknownConfiguration = true);
        }
        catch (InvalidOperationException e)
        {
            Exception inner = e;
            while (inner.InnerException != null) inner = inner.InnerException;
            throw new InvalidOperationException($"{section.Path}: {inner.Message}", e);
        }
    }

    private static void Update(TollgateLimiter limiter, TollgateOptions options, ILogger logger)
    {
        try
        {
            limiter.Update(options.ToJson());
        }
        catch (TollgateConfigException e)
        {
            logger.LogError("Tollgate config change refused, the running config stays: {Message}", e.Message);
        }
        catch (ObjectDisposedException)
        {
        }
    }

    private static RateLimitPartition<string> PartitionOf(HttpContext context, Func<HttpContext, string?> keyOf)
    {
        string? key = keyOf(context);
        if (key is null) return RateLimitPartition.GetNoLimiter(string.Empty);
        return context.RequestServices.GetRequiredService<TollgateLimiter>().Partition(key);
    }

    private static LogLevel ToLogLevel(TollgateLogLevel level) => level switch
    {
        TollgateLogLevel.Debug => LogLevel.Debug,
        TollgateLogLevel.Information => LogLevel.Information,
        TollgateLogLevel.Warning => LogLevel.Warning,
        _ => LogLevel.Error,
    };

    private static TollgateLogLevel MinimumLevel(ILogger logger) =>
        logger.IsEnabled(LogLevel.Debug) ? TollgateLogLevel.Debug
        : logger.IsEnabled(LogLevel.Information) ? TollgateLogLevel.Information
        : logger.IsEnabled(LogLevel.Warning) ? TollgateLogLevel.Warning
        : TollgateLogLevel.Error;
}

/// <summary>Checks the options with the native parser; failures name the configuration key.</summary>
internal sealed class TollgateOptionsValidator : IValidateOptions<TollgateOptions>
{
    private readonly string _section;

    public TollgateOptionsValidator(string section) => _section = section;

    public ValidateOptionsResult Validate(string? name, TollgateOptions options)
    {
        if (options.QueueTimeout < TimeSpan.Zero)
            return ValidateOptionsResult.Fail($"{_section}:QueueTimeout: must not be negative");
        if (options.DefaultRetryAfter <= TimeSpan.Zero)
            return ValidateOptionsResult.Fail($"{_section}:DefaultRetryAfter: must be > 0");
        try
        {
            TollgateLimiter.Validate(options.ToJson());
            return ValidateOptionsResult.Success;
        }
        catch (TollgateConfigException e)
        {
            // "Tollgate config: policies[0].rate: must be > 0" → name the configuration key too.
            string detail = e.Message.StartsWith("Tollgate config: ", StringComparison.Ordinal)
                ? e.Message["Tollgate config: ".Length..]
                : e.Message;
            int colon = detail.IndexOf(": ", StringComparison.Ordinal);
            string key = colon > 0 ? TollgateOptions.ConfigurationPath(detail[..colon], _section) : _section;
            // "set store.type to ..." (a field of another store's section) in the settings' own names.
            string reason = (colon > 0 ? detail[(colon + 2)..] : detail)
                .Replace("store.type", TollgateOptions.ConfigurationPath("store.type", _section), StringComparison.Ordinal);
            return ValidateOptionsResult.Fail($"{key}: {reason} ({detail})");
        }
    }
}

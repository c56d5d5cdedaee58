using System;
using System.Collections.Generic;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Tollgate.AspNetCore;

/// <summary>
/// The "Tollgate" configuration section. Every field of the native JSON config
/// (docs/configuration.md) in PascalCase (<c>IdleTimeoutMs</c> for <c>idle_timeout_ms</c>);
/// fields left out take the native defaults.
/// </summary>
public sealed class TollgateOptions
{
    /// <summary>instance_id</summary>
    public string? InstanceId { get; set; }
    /// <summary>max_keys</summary>
    public long? MaxKeys { get; set; }
    /// <summary>max_key_length</summary>
    public long? MaxKeyLength { get; set; }
    /// <summary>max_waiters_per_key</summary>
    public long? MaxWaitersPerKey { get; set; }
    /// <summary>idle_timeout_ms</summary>
    public long? IdleTimeoutMs { get; set; }
    /// <summary>leases</summary>
    public LeaseSettings? Leases { get; set; }
    /// <summary>cold_keys</summary>
    public ColdKeySettings? ColdKeys { get; set; }
    /// <summary>store</summary>
    public StoreSettings? Store { get; set; }
    /// <summary>groups: budgets shared by the keys of the policies that name them (docs/quotas.md)</summary>
    public List<GroupSettings>? Groups { get; set; }
    /// <summary>policies (at least one)</summary>
    public List<PolicySettings> Policies { get; set; } = new();

    /// <summary>How long the middleware's AcquireAsync waits for tokens (not part of the native config).</summary>
    [JsonIgnore]
    public TimeSpan QueueTimeout { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>Retry-After when the native decision has none (not part of the native config).</summary>
    [JsonIgnore]
    public TimeSpan DefaultRetryAfter { get; set; } = TimeSpan.FromSeconds(1);

    private static readonly JsonSerializerOptions s_json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    /// <summary>The native JSON config these options stand for.</summary>
    public string ToJson() => JsonSerializer.Serialize(this, s_json);

    /// <summary>"policies[0].rate" → "Tollgate:Policies:0:Rate": the native field as a configuration path.</summary>
    public static string ConfigurationPath(string jsonField, string section = "Tollgate")
    {
        var parts = new List<string> { section };
        foreach (string segment in jsonField.Split('.', StringSplitOptions.RemoveEmptyEntries))
        {
            string name = segment;
            string? index = null;
            int bracket = segment.IndexOf('[');
            if (bracket >= 0)
            {
                name = segment[..bracket];
                index = segment[(bracket + 1)..].TrimEnd(']');
            }
            var pascal = new System.Text.StringBuilder();
            foreach (string word in name.Split('_', StringSplitOptions.RemoveEmptyEntries))
                pascal.Append(char.ToUpperInvariant(word[0])).Append(word.AsSpan(1));
            parts.Add(pascal.ToString());
            if (index != null) parts.Add(index);
        }
        return string.Join(':', parts);
    }
}

/// <summary>A quota (docs/configuration.md, policies).</summary>
public sealed class PolicySettings
{
    /// <summary>name</summary>
    public string? Name { get; set; }
    /// <summary>match: "tenant:*" by prefix, anything else exactly, "*" all.</summary>
    public string? Match { get; set; }
    /// <summary>group</summary>
    public string? Group { get; set; }
    /// <summary>type: token_bucket, fixed_window, sliding_window, concurrency.</summary>
    public string? Type { get; set; }
    /// <summary>rate (tokens per second)</summary>
    public double? Rate { get; set; }
    /// <summary>burst</summary>
    public double? Burst { get; set; }
    /// <summary>limit</summary>
    public long? Limit { get; set; }
    /// <summary>window_ms</summary>
    public long? WindowMs { get; set; }
    /// <summary>penalty_box</summary>
    public PenaltyBoxSettings? PenaltyBox { get; set; }
    /// <summary>fallback: what a key decides while its Redis shard is unavailable (docs/resilience.md)</summary>
    public FallbackSettings? Fallback { get; set; }
    /// <summary>weight: each key's weight when its group's rate is shared out (&gt; 0, default 1; only in a group with a budget)</summary>
    public double? Weight { get; set; }
    /// <summary>guaranteed_rate: tokens per second each key gets at least when it wants them (default 0, at most the group's rate; only in a group with a budget)</summary>
    public double? GuaranteedRate { get; set; }
    /// <summary>fair_instances: under scarcity, split a key's refill among instances by demand (token_bucket only; default: on; false turns it off)</summary>
    public bool? FairInstances { get; set; }
    /// <summary>shadow: decisions are computed, counted and reported as if enforced, but always admit (docs/configuration.md)</summary>
    public bool? Shadow { get; set; }
    /// <summary>max_overage: a reservation's settle charges at most its estimate plus this (not for concurrency; default: the capacity; docs/quotas.md, "Estimated costs")</summary>
    public long? MaxOverage { get; set; }
}

/// <summary>groups[]: a budget shared by every key of the policies whose group is <see cref="Name"/> (docs/quotas.md)</summary>
public sealed class GroupSettings
{
    /// <summary>name (required): what policies name in their group</summary>
    public string? Name { get; set; }
    /// <summary>rate (required, &gt; 0): tokens per second for the whole group</summary>
    public double? Rate { get; set; }
    /// <summary>burst: most tokens at once (0 or unset: one second of rate)</summary>
    public double? Burst { get; set; }
}

/// <summary>fallback</summary>
public sealed class FallbackSettings
{
    /// <summary>mode: "local" (default), "deny" or "allow"</summary>
    public string? Mode { get; set; }
    /// <summary>0 or unset: share mode (the local bucket runs at the share this instance was last granted); N: a static bucket of the rate and burst divided by N</summary>
    public long? Instances { get; set; }
    /// <summary>rate of the local bucket (tokens per second)</summary>
    public double? Rate { get; set; }
    /// <summary>burst of the local bucket</summary>
    public double? Burst { get; set; }
}

/// <summary>penalty_box</summary>
public sealed class PenaltyBoxSettings
{
    /// <summary>denials</summary>
    public long? Denials { get; set; }
    /// <summary>within_ms</summary>
    public long? WithinMs { get; set; }
    /// <summary>duration_ms</summary>
    public long? DurationMs { get; set; }
}

/// <summary>leases</summary>
public sealed class LeaseSettings
{
    /// <summary>ttl_ms</summary>
    public long? TtlMs { get; set; }
    /// <summary>horizon_ms</summary>
    public long? HorizonMs { get; set; }
    /// <summary>max_fraction</summary>
    public double? MaxFraction { get; set; }
    /// <summary>min_tokens</summary>
    public long? MinTokens { get; set; }
    /// <summary>expiry_margin_ms</summary>
    public long? ExpiryMarginMs { get; set; }
}

/// <summary>cold_keys</summary>
public sealed class ColdKeySettings
{
    /// <summary>mode: deny or optimistic</summary>
    public string? Mode { get; set; }
    /// <summary>allowance</summary>
    public long? Allowance { get; set; }
}

/// <summary>store</summary>
public sealed class StoreSettings
{
    /// <summary>type: in_process, redis or redis_cluster</summary>
    public string? Type { get; set; }
    /// <summary>shards (redis): redis:// or rediss:// URLs, one per shard</summary>
    public List<string>? Shards { get; set; }
    /// <summary>nodes (redis_cluster): some of the cluster's nodes, redis:// or rediss:// URLs; the rest are discovered</summary>
    public List<string>? Nodes { get; set; }
    /// <summary>wait_replicas: &gt; 0 sends WAIT after each batch of leases; a grant that many replicas do not have in time is not used</summary>
    public long? WaitReplicas { get; set; }
    /// <summary>wait_timeout_ms</summary>
    public long? WaitTimeoutMs { get; set; }
    /// <summary>connect_timeout_ms</summary>
    public long? ConnectTimeoutMs { get; set; }
    /// <summary>command_timeout_ms</summary>
    public long? CommandTimeoutMs { get; set; }
    /// <summary>tls_ca_file</summary>
    public string? TlsCaFile { get; set; }
    /// <summary>breaker (Polly's names: FailureRatio, SamplingDuration, MinimumThroughput, BreakDuration)</summary>
    public BreakerSettings? Breaker { get; set; }
    /// <summary>bulkhead</summary>
    public BulkheadSettings? Bulkhead { get; set; }
}

/// <summary>store.breaker</summary>
public sealed class BreakerSettings
{
    /// <summary>failure_ratio</summary>
    public double? FailureRatio { get; set; }
    /// <summary>slow_call_rate_threshold</summary>
    public double? SlowCallRateThreshold { get; set; }
    /// <summary>slow_call_duration_threshold_ms</summary>
    public long? SlowCallDurationThresholdMs { get; set; }
    /// <summary>sampling_duration_ms</summary>
    public long? SamplingDurationMs { get; set; }
    /// <summary>sliding_window_size</summary>
    public long? SlidingWindowSize { get; set; }
    /// <summary>minimum_throughput</summary>
    public long? MinimumThroughput { get; set; }
    /// <summary>break_duration_ms</summary>
    public long? BreakDurationMs { get; set; }
    /// <summary>permitted_calls_in_half_open</summary>
    public long? PermittedCallsInHalfOpen { get; set; }
}

/// <summary>store.bulkhead</summary>
public sealed class BulkheadSettings
{
    /// <summary>max_in_flight</summary>
    public long? MaxInFlight { get; set; }
    /// <summary>max_queue</summary>
    public long? MaxQueue { get; set; }
}

// AttemptAcquire through TollgateRateLimiter on a warm key, against the BCL's in-process
// TokenBucketRateLimiter, measured in the same run by BenchmarkDotNet (in-process toolchain).
// With --json the last line printed is one JSON object: tollgate_ns, bcl_token_bucket_ns, ...
using System.Globalization;
using System.Text.Json;
using System.Threading.RateLimiting;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Loggers;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;
using BenchmarkDotNet.Toolchains.InProcess.Emit;
using Tollgate;

bool json = args.Contains("--json");
var job = Job.Default
    .WithToolchain(InProcessEmitToolchain.Instance)
    .WithLaunchCount(1)
    .WithWarmupCount(5)
    .WithIterationCount(15)
    .WithIterationTime(Perfolizer.Horology.TimeInterval.FromMilliseconds(250));
IConfig config = ManualConfig.CreateMinimumViable().AddJob(job);
if (json) config = ManualConfig.CreateEmpty().AddJob(job).AddLogger(NullLogger.Instance)
    .AddColumnProvider(BenchmarkDotNet.Columns.DefaultColumnProviders.Instance);
// Reports under bin/, not in whatever folder the command ran from.
config = config.WithArtifactsPath(Path.Combine(AppContext.BaseDirectory, "BenchmarkDotNet.Artifacts"));

Summary summary = BenchmarkRunner.Run<AttemptAcquireBench>(config);
double Mean(string method) =>
    summary.Reports.First(r => r.BenchmarkCase.Descriptor.WorkloadMethod.Name == method).ResultStatistics!.Mean;
long Allocated(string method)
{
    BenchmarkReport r = summary.Reports.First(r => r.BenchmarkCase.Descriptor.WorkloadMethod.Name == method);
    long? bytes = r.GcStats.GetBytesAllocatedPerOperation(r.BenchmarkCase);
    return bytes ?? -1;
}
double tollgate = Mean(nameof(AttemptAcquireBench.Tollgate));
double bcl = Mean(nameof(AttemptAcquireBench.BclTokenBucket));
var result = new Dictionary<string, object>
{
    ["tollgate_ns"] = Math.Round(tollgate, 2),
    ["bcl_token_bucket_ns"] = Math.Round(bcl, 2),
    ["ratio"] = Math.Round(tollgate / bcl, 3),
    ["target_ratio_max"] = 1.2,
    ["tollgate_allocated_bytes_per_op"] = Allocated(nameof(AttemptAcquireBench.Tollgate)),
    ["bcl_allocated_bytes_per_op"] = Allocated(nameof(AttemptAcquireBench.BclTokenBucket)),
    ["native_key_call_ns"] = Math.Round(Mean(nameof(AttemptAcquireBench.NativeKeyOnly)), 2),
    ["tollgate_admitted_fraction"] = Math.Round(AttemptAcquireBench.LastAdmittedFraction, 4),
    ["native_call_ns"] = Math.Round(Mean(nameof(AttemptAcquireBench.NativeOnly)), 2),
    ["native_call_with_handle_ref_ns"] = Math.Round(Mean(nameof(AttemptAcquireBench.NativeWithHandleRef)), 2),
    ["limiter_try_acquire_ns"] = Math.Round(Mean(nameof(AttemptAcquireBench.LimiterTryAcquire)), 2),
    ["load_average_1m"] = LoadAverage(),
    ["native_version"] = TollgateLimiter.NativeVersion,
    ["runtime"] = System.Runtime.InteropServices.RuntimeInformation.FrameworkDescription,
    ["cores"] = Environment.ProcessorCount,
};
if (!json)
{
    foreach (var (k, v) in result) Console.WriteLine($"{k,-28} {Convert.ToString(v, CultureInfo.InvariantCulture)}");
}
Console.WriteLine(JsonSerializer.Serialize(result));

static double LoadAverage()
{
    try
    {
        return double.Parse(File.ReadAllText("/proc/loadavg").Split(' ')[0], CultureInfo.InvariantCulture);
    }
    catch (IOException)
    {
        return -1;
    }
}

[MemoryDiagnoser]
public class AttemptAcquireBench
{
    public static double LastAdmittedFraction;
    private TollgateLimiter _tollgate = null!;
    private RateLimiter _view = null!;
    private nint _key;
    private TokenBucketRateLimiter _bcl = null!;
    private long _admitted, _calls;

    [GlobalSetup]
    public void Setup()
    {
        // The in-process store: the hot path never touches the store, whichever it is; the
        // quota is large enough never to run out, so every call is a warm-key decision.
        _tollgate = TollgateLimiter.Create("""
            {"policies": [{"match": "tenant:*", "type": "token_bucket", "rate": 1e9, "burst": 1e9}]}
            """);
        _view = _tollgate.ForKey("tenant:bench");
        _key = ((TollgateRateLimiter)_view).NativeKey!.DangerousGetHandle();
        if (!_tollgate.AcquireAsync("tenant:bench", 1, TimeSpan.FromSeconds(30)).GetAwaiter().GetResult().Allowed)
            throw new InvalidOperationException("no first lease");
        _bcl = new TokenBucketRateLimiter(new TokenBucketRateLimiterOptions
        {
            TokenLimit = 1_000_000_000,
            TokensPerPeriod = 1_000_000_000,
            ReplenishmentPeriod = TimeSpan.FromMilliseconds(1),
            QueueLimit = 0,
            AutoReplenishment = true,
        });
    }

    [Benchmark]
    public bool Tollgate()
    {
        using RateLimitLease lease = _view.AttemptAcquire();
        _calls++;
        if (lease.IsAcquired) _admitted++;
        return lease.IsAcquired;
    }

    // Breakdown: tg_try_acquire (by string) alone, and with the SafeHandle's AddRef/Release.
    [Benchmark]
    public unsafe bool NativeOnly()
    {
        NativeDecision d;
        fixed (byte* k = "tenant:bench"u8)
            global::Tollgate.Native.TryAcquire(&d, _tollgate.Handle.DangerousGetHandle(), k, 12, 1);
        return d.Allowed != 0;
    }

    // The view's call: tg_try_acquire_key through the key resolved once.
    [Benchmark]
    public unsafe bool NativeKeyOnly()
    {
        NativeDecision d;
        global::Tollgate.Native.TryAcquireKey(&d, _key, 1);
        return d.Allowed != 0;
    }

    [Benchmark]
    public unsafe bool NativeWithHandleRef()
    {
        NativeDecision d;
        bool added = false;
        _tollgate.Handle.DangerousAddRef(ref added);
        fixed (byte* k = "tenant:bench"u8)
            global::Tollgate.Native.TryAcquire(&d, _tollgate.Handle.DangerousGetHandle(), k, 12, 1);
        _tollgate.Handle.DangerousRelease();
        return d.Allowed != 0;
    }

    [Benchmark]
    public bool LimiterTryAcquire() => _tollgate.TryAcquire("tenant:bench").Allowed;

    [Benchmark(Baseline = true)]
    public bool BclTokenBucket()
    {
        using RateLimitLease lease = _bcl.AttemptAcquire();
        return lease.IsAcquired;
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        if (_calls > 0) LastAdmittedFraction = (double)_admitted / _calls;
        _view.Dispose();
        _tollgate.Dispose();
        _bcl.Dispose();
    }
}

using System;

namespace Tollgate;

/// <summary>Permits of a concurrency policy; disposing returns them. Not thread-safe.</summary>
public sealed class TollgatePermit : IDisposable
{
    private readonly PermitHandle _handle;

    internal TollgatePermit(PermitHandle handle, Decision decision)
    {
        _handle = handle;
        Decision = decision;
    }

    /// <summary>Whether the permits were granted.</summary>
    public bool IsAcquired => Decision.Allowed;

    /// <summary>The decision.</summary>
    public Decision Decision { get; }

    /// <summary>Returns the permits (if any); idempotent.</summary>
    public void Dispose() => _handle.Dispose();
}

using System;
using System.Collections.Generic;
using System.Linq;
using System.Reflection;
using System.Runtime.InteropServices;
using Xunit;

namespace Tollgate.Tests;

// The native library declares its counters once (tollgate/stats_list.h) and lists tg_stats's
// fields with their offsets (tg_stats_field). These tests fail when the binding drifts from
// that: a field of tg_stats that NativeStats lacks or places elsewhere, a counter that the
// public TollgateStats lacks or does not copy.
public sealed class StatsLayoutTests
{
    // Fields of tg_stats that are no counter: TollgateStats shows them in other forms
    // (Denied, DeniedByReason, Breakers).
    private static readonly HashSet<string> NotCounters = new()
    {
        "version", "denied_total", "denied", "shards", "breakers_closed", "breakers_open",
        "breakers_half_open", "denied_over_group_limit", "denied_in_debt",
    };

    private static unsafe List<(string Name, int Offset)> NativeFields(out int size)
    {
        Native.EnsureCompatible();
        var fields = new List<(string, int)>();
        for (nuint i = 0; ; i++)
        {
            nuint offset = 0;
            byte* name = Native.StatsField(&offset, i);
            if (name == null)
            {
                size = (int)offset;
                return fields;
            }
            fields.Add((Marshal.PtrToStringUTF8((nint)name)!, (int)offset));
        }
    }

    private static string Pascal(string snake) =>
        string.Concat(snake.Split('_').Select(p => char.ToUpperInvariant(p[0]) + p[1..]));

    [Fact]
    public unsafe void NativeStatsHasEveryFieldOfTgStatsAtItsOffset()
    {
        var fields = NativeFields(out int size);
        Assert.NotEmpty(fields);
        var mine = typeof(NativeStats).GetFields(BindingFlags.Instance | BindingFlags.Public)
            .Select(f => f.Name).ToHashSet();
        foreach (var (name, offset) in fields)
        {
            string field = Pascal(name);
            Assert.True(mine.Contains(field), $"NativeStats lacks {field} (tg_stats.{name})");
            Assert.Equal(offset, (int)Marshal.OffsetOf<NativeStats>(field));
        }
        Assert.Equal(fields.Count, mine.Count);
        Assert.Equal(size, sizeof(NativeStats));
    }

    [Fact]
    public unsafe void TollgateStatsShowsAndCopiesEveryCounter()
    {
        var fields = NativeFields(out _);
        // Each field holds a value of its own: its offset + 1.
        NativeStats s = default;
        byte* raw = (byte*)&s;
        foreach (var (name, offset) in fields)
            if (!NotCounters.Contains(name)) *(ulong*)(raw + offset) = (ulong)offset + 1;
        var stats = TollgateStats.From(s, Array.Empty<BreakerState>());
        foreach (var (name, offset) in fields)
        {
            if (NotCounters.Contains(name)) continue;
            PropertyInfo? p = typeof(TollgateStats).GetProperty(Pascal(name));
            Assert.True(p != null, $"TollgateStats lacks {Pascal(name)} (tg_stats.{name})");
            Assert.Equal((ulong)offset + 1, (ulong)p!.GetValue(stats)!);
        }
    }
}

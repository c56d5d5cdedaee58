using System;
using System.Runtime.InteropServices;
using System.Runtime.Versioning;
using System.Reflection;
using Xunit;

namespace Tollgate.Tests;

public sealed class RuntimeTests
{
    // bindings/dotnet/test.sh runs the net8.0 build self-contained on the .NET 8 runtime pack and
    // the net10.0 build on the installed .NET 10: neither may be rolled forward onto another.
    [Fact]
    public void TheTestsRunOnTheRuntimeTheirBuildTargets()
    {
        string target = Assembly.GetExecutingAssembly().GetCustomAttribute<TargetFrameworkAttribute>()!.FrameworkName;
        int major = new FrameworkName(target).Version.Major;  // ".NETCoreApp,Version=v8.0" → 8
        Assert.Equal(major, Environment.Version.Major);
        Assert.StartsWith($".NET {major}.", RuntimeInformation.FrameworkDescription);
        Console.WriteLine($"runtime: {RuntimeInformation.FrameworkDescription} for {target}");
    }
}

using System;
using System.Diagnostics;
using System.IO;
using System.Net;
using System.Net.Sockets;
using System.Threading;

namespace Tollgate.Tests;

/// <summary>A real redis-server on a free loopback port, no persistence; killed when disposed.</summary>
public sealed class RedisServer : IDisposable
{
    private readonly Process _process;
    private readonly string _dir;

    public RedisServer()
    {
        _dir = Directory.CreateTempSubdirectory("tollgate-redis-").FullName;
        Port = FreePort();
        _process = Process.Start(new ProcessStartInfo("redis-server")
        {
            ArgumentList = { "--port", Port.ToString(), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--dir", _dir },
            RedirectStandardOutput = true,
            UseShellExecute = false,
        }) ?? throw new InvalidOperationException("redis-server did not start");
        _process.OutputDataReceived += (_, _) => { };
        _process.BeginOutputReadLine();
        // Ready when it answers PING (at most 10 s).
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (!Ping())
        {
            if (DateTime.UtcNow > deadline || _process.HasExited)
            {
                Dispose();
                throw new InvalidOperationException("redis-server did not answer PING");
            }
            Thread.Sleep(20);
        }
    }

    public int Port { get; }

    public string Url => $"redis://127.0.0.1:{Port}";

    /// <summary>Stops the server's process (SIGSTOP): connections stay open, nothing answers.</summary>
    public void Pause() => Signal("-STOP");

    /// <summary>Lets a paused server go on (SIGCONT).</summary>
    public void Resume() => Signal("-CONT");

    private void Signal(string signal)
    {
        using Process kill = Process.Start("kill", new[] { signal, _process.Id.ToString() })!;
        kill.WaitForExit();
        if (kill.ExitCode != 0) throw new InvalidOperationException($"kill {signal} failed");
    }

    /// <summary>A loopback port nobody listens on (just now).</summary>
    public static int FreePort()
    {
        var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        int port = ((IPEndPoint)l.LocalEndpoint).Port;
        l.Stop();
        return port;
    }

    private bool Ping()
    {
        try
        {
            using var c = new TcpClient();
            c.Connect(IPAddress.Loopback, Port);
            using NetworkStream s = c.GetStream();
            s.Write("PING\r\n"u8);
            var buf = new byte[16];
            int n = s.Read(buf, 0, buf.Length);
            return n > 0 && buf[0] == (byte)'+';
        }
        catch (SocketException)
        {
            return false;
        }
    }

    public void Dispose()
    {
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill();
                _process.WaitForExit(5000);
            }
        }
        catch (InvalidOperationException)
        {
        }
        _process.Dispose();
        try
        {
            Directory.Delete(_dir, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}

[Xunit.CollectionDefinition("redis")]
public sealed class RedisCollection : Xunit.ICollectionFixture<RedisServer>
{
}

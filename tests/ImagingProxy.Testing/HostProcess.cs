using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;

namespace ImagingProxy.Testing;

/// <summary>
/// The real host (<c>dotnet ImagingProxy.Host.dll</c>) in its own process, for what only a process shows: memory,
/// environment-variable configuration, SIGTERM. Listener ports are read from its "Listener X bound to" log lines.
/// </summary>
public sealed partial class HostProcess : IDisposable
{
    private readonly ConcurrentDictionary<string, TaskCompletionSource<int>> _ports = new(StringComparer.OrdinalIgnoreCase);
    private readonly ConcurrentQueue<string> _output = new();
    private readonly TaskCompletionSource _exitedOutput = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private HostProcess(Process process) => Process = process;

    public Process Process { get; }

    public string Output => string.Join('\n', _output);

    /// <summary>
    /// Starts the host with <paramref name="arguments"/>; it runs in <paramref name="workingDirectory"/> (default: its
    /// own directory, which is always its content root).
    /// </summary>
    public static HostProcess Start(IEnumerable<string> arguments, IDictionary<string, string>? environment = null, string? workingDirectory = null)
    {
        var info = new ProcessStartInfo("dotnet")
        {
            WorkingDirectory = workingDirectory ?? AppContext.BaseDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        info.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "ImagingProxy.Host.dll"));
        foreach (var argument in arguments)
        {
            info.ArgumentList.Add(argument);
        }

        foreach (var (key, value) in environment ?? new Dictionary<string, string>())
        {
            info.Environment[key] = value;
        }

        var host = new HostProcess(Process.Start(info)!);
        host.Process.OutputDataReceived += (_, e) => host.OnLine(e.Data);
        host.Process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is not null)
            {
                host._output.Enqueue(e.Data);
            }
        };
        host.Process.BeginOutputReadLine();
        host.Process.BeginErrorReadLine();
        return host;
    }

    private readonly List<(string Text, TaskCompletionSource Seen)> _awaited = [];

    /// <summary>Completes when the host has written a line containing <paramref name="text"/> (e.g. "Application is shutting down").</summary>
    public Task WaitForOutputAsync(string text, TimeSpan timeout)
    {
        var seen = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_awaited)
        {
            if (_output.Any(l => l.Contains(text, StringComparison.Ordinal)))
            {
                return Task.CompletedTask;
            }

            _awaited.Add((text, seen));
        }

        return seen.Task.WaitAsync(timeout);
    }

    private void OnLine(string? line)
    {
        if (line is null)
        {
            _exitedOutput.TrySetResult();
            foreach (var port in _ports.Values)
            {
                port.TrySetException(new InvalidOperationException("host exited:\n" + Output));
            }

            return;
        }

        lock (_awaited)
        {
            _output.Enqueue(line);
            foreach (var (text, seen) in _awaited)
            {
                if (line.Contains(text, StringComparison.Ordinal))
                {
                    seen.TrySetResult();
                }
            }
        }

        var match = ListenerBound().Match(line);
        if (match.Success)
        {
            Port(match.Groups[1].Value).TrySetResult(int.Parse(match.Groups[2].Value, CultureInfo.InvariantCulture));
        }
    }

    private TaskCompletionSource<int> Port(string listener)
        => _ports.GetOrAdd(listener, _ => new TaskCompletionSource<int>(TaskCreationOptions.RunContinuationsAsynchronously));

    /// <summary>The bound port of a listener, once the host has logged it.</summary>
    public Task<int> PortAsync(string listener) => Port(listener).Task.WaitAsync(TimeSpan.FromSeconds(60));

    /// <summary>Sends SIGTERM, as Kubernetes does before stopping a pod.</summary>
    public void Terminate()
    {
        using var kill = Process.Start("kill", ["-TERM", Process.Id.ToString(CultureInfo.InvariantCulture)]);
        kill.WaitForExit();
    }

    public async Task<int> WaitForExitAsync(TimeSpan timeout)
    {
        await Process.WaitForExitAsync().WaitAsync(timeout);
        await _exitedOutput.Task.WaitAsync(TimeSpan.FromSeconds(5));
        return Process.ExitCode;
    }

    public long ResidentBytes()
    {
        foreach (var line in File.ReadLines($"/proc/{Process.Id}/status"))
        {
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
            {
                return long.Parse(line.AsSpan(6).Trim().TrimEnd(" kB"), CultureInfo.InvariantCulture) * 1024;
            }
        }

        return 0;
    }

    [GeneratedRegex(@"Listener (\S+) \(\w+\) bound to .*:(\d+)\.")]
    private static partial Regex ListenerBound();

    public void Dispose()
    {
        if (!Process.HasExited)
        {
            Process.Kill(entireProcessTree: true);
            Process.WaitForExit(10_000);
        }

        Process.Dispose();
    }
}

using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;

namespace ImagingProxy.PeerTests.Deploy;

/// <summary>
/// The image's ENTRYPOINT started on this machine: in the runtime stage's WORKDIR, with only the image's environment
/// (not the test's), as the image's uid and gid through <c>setpriv</c> when the test runs as root. Reads the
/// "Listener X (Kind) bound to ADDRESS:PORT." lines the host logs.
/// </summary>
public sealed partial class ImageProcess : IAsyncDisposable
{
    /// <summary>util-linux: changes uid, gid and groups, then execs the command in the same process.</summary>
    public const string Setpriv = "/usr/bin/setpriv";

    /// <summary>The PATH of the aspnet image.</summary>
    private const string ImagePath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

    private readonly ConcurrentQueue<string> _output = new();
    private readonly ConcurrentDictionary<string, int> _bound = new(StringComparer.Ordinal);
    private readonly TaskCompletionSource _outputEnded = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Process _process;
    private TaskCompletionSource _lineSeen = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private ImageProcess(Process process) => _process = process;

    public string Output => string.Join('\n', _output);

    public IReadOnlyDictionary<string, int> BoundPorts => _bound;

    public int Id => _process.Id;

    /// <summary>
    /// Starts <paramref name="entrypoint"/> (its first word <c>dotnet</c> is this machine's muxer). With
    /// <paramref name="uid"/> the process runs as that uid and gid with no supplementary groups.
    /// </summary>
    public static ImageProcess Start(IReadOnlyList<string> entrypoint, string workingDirectory, IReadOnlyDictionary<string, string> environment, int? uid)
    {
        Assert.True(entrypoint.Count > 0 && entrypoint[0] == "dotnet", $"the ENTRYPOINT is not `dotnet ...`: {string.Join(' ', entrypoint)}");
        var dotnet = Muxer();
        var start = new ProcessStartInfo(uid is null ? dotnet : Setpriv)
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        if (uid is { } id)
        {
            var text = id.ToString(CultureInfo.InvariantCulture);
            foreach (var word in new[] { $"--reuid={text}", $"--regid={text}", "--clear-groups", "--", dotnet })
            {
                start.ArgumentList.Add(word);
            }
        }

        foreach (var word in entrypoint.Skip(1))
        {
            start.ArgumentList.Add(word);
        }

        start.Environment.Clear();
        start.Environment["PATH"] = ImagePath;
        foreach (var (key, value) in environment)
        {
            start.Environment[key] = value;
        }

        var process = new ImageProcess(Process.Start(start) ?? throw new InvalidOperationException($"{start.FileName} did not start"));
        process._process.OutputDataReceived += (_, e) => process.OnLine(e.Data, isStandardOutput: true);
        process._process.ErrorDataReceived += (_, e) => process.OnLine(e.Data, isStandardOutput: false);
        process._process.BeginOutputReadLine();
        process._process.BeginErrorReadLine();
        return process;
    }

    /// <summary>Completes once every named listener has logged its port; fails early with the output if the process exits.</summary>
    public async Task<IReadOnlyDictionary<string, int>> WaitForListenersAsync(IReadOnlyCollection<string> names, TimeSpan timeout)
    {
        using var cancel = new CancellationTokenSource(timeout);
        var exited = _process.WaitForExitAsync();
        while (true)
        {
            // Taken before the check: a line logged after the check completes it.
            var line = NextLine();
            if (names.All(_bound.ContainsKey))
            {
                break;
            }

            if (exited.IsCompleted)
            {
                await _outputEnded.Task.WaitAsync(TimeSpan.FromSeconds(5));
                Assert.Fail($"the process exited with {_process.ExitCode} before binding {string.Join(", ", names.Where(n => !_bound.ContainsKey(n)))}:\n{Output}");
            }

            try
            {
                await Task.WhenAny(line, exited).WaitAsync(cancel.Token);
            }
            catch (OperationCanceledException)
            {
                Assert.Fail($"within {timeout} the process did not log a bound port for {string.Join(", ", names.Where(n => !_bound.ContainsKey(n)))}:\n{Output}");
            }
        }

        return _bound;
    }

    /// <summary>SIGTERM, as `docker stop` and the kubelet send it.</summary>
    public async Task TerminateAsync()
    {
        using var kill = Process.Start("kill", ["-TERM", _process.Id.ToString(CultureInfo.InvariantCulture)]);
        await kill.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(10));
        Assert.True(kill.ExitCode == 0, $"kill -TERM {_process.Id} exited with {kill.ExitCode}");
    }

    /// <summary>The exit code, with every output line read; throws <see cref="TimeoutException"/> past the bound.</summary>
    public async Task<int> WaitForExitAsync(TimeSpan timeout)
    {
        await _process.WaitForExitAsync().WaitAsync(timeout);
        await _outputEnded.Task.WaitAsync(TimeSpan.FromSeconds(5));
        return _process.ExitCode;
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(10));
        }

        _process.Dispose();
    }

    private Task NextLine()
    {
        lock (_output)
        {
            return _lineSeen.Task;
        }
    }

    private void OnLine(string? line, bool isStandardOutput)
    {
        if (line is null)
        {
            if (isStandardOutput)
            {
                _outputEnded.TrySetResult();
            }

            return;
        }

        if (ListenerBound().Match(line) is { Success: true } match)
        {
            _bound[match.Groups[1].Value] = int.Parse(match.Groups[2].Value, CultureInfo.InvariantCulture);
        }

        TaskCompletionSource seen;
        lock (_output)
        {
            _output.Enqueue(line);
            seen = _lineSeen;
            _lineSeen = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        }

        seen.TrySetResult();
    }

    /// <summary>The dotnet muxer on PATH, symbolic links resolved (the image's PATH may not hold this machine's).</summary>
    private static string Muxer()
    {
        foreach (var directory in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries))
        {
            var candidate = new FileInfo(Path.Combine(directory, "dotnet"));
            if (candidate.Exists)
            {
                return candidate.ResolveLinkTarget(returnFinalTarget: true)?.FullName ?? candidate.FullName;
            }
        }

        throw new FileNotFoundException("no dotnet on PATH");
    }

    [GeneratedRegex(@"Listener (\S+) \(\w+\) bound to .*:(\d+)\.")]
    private static partial Regex ListenerBound();
}

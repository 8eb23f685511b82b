using System.ComponentModel;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text.RegularExpressions;

namespace ImagingProxy.PeerTests.Peers;

/// <summary>
/// A real third-party program run for a test: output lines are kept for assertion messages, readiness is
/// awaited (TCP port, HTTP URL or an output line), and the whole process tree is killed on dispose.
/// Every peer gets <c>TCP_NODELAY=1</c>: Debian's dcmtk and Orthanc leave Nagle on without it.
/// </summary>
public sealed class PeerProcess : IAsyncDisposable, IDisposable
{
    private const int MaxKeptLines = 5000;
    private static readonly TimeSpan s_pollInterval = TimeSpan.FromMilliseconds(50);
    private static readonly TimeSpan s_killWait = TimeSpan.FromSeconds(10);

    private readonly Process _process;
    private readonly Lock _gate = new();
    private readonly List<string> _lines = [];
    private readonly List<(Func<string, bool> Match, TaskCompletionSource<string> Found)> _lineWaiters = [];
    private readonly TaskCompletionSource<int> _exited = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _droppedLines;
    private int _disposed;

    private PeerProcess(Process process, string name)
    {
        _process = process;
        Name = name;
    }

    public string Name { get; }

    public int Id { get; private set; }

    /// <summary>Completes with the exit code once the process has exited and its output is read.</summary>
    public Task<int> Exited => _exited.Task;

    public bool HasExited => _exited.Task.IsCompleted;

    /// <summary>A snapshot of the stdout and stderr lines so far, in arrival order.</summary>
    public IReadOnlyList<string> Lines
    {
        get
        {
            lock (_gate)
            {
                return [.. _lines];
            }
        }
    }

    /// <summary>All kept output as one text, for assertion messages.</summary>
    public string Output
    {
        get
        {
            lock (_gate)
            {
                var head = _droppedLines > 0 ? $"[{_droppedLines} earlier lines dropped]\n" : "";
                return head + string.Join('\n', _lines);
            }
        }
    }

    public static PeerProcess Start(PeerStartInfo startInfo)
    {
        ArgumentNullException.ThrowIfNull(startInfo);
        var psi = new ProcessStartInfo(startInfo.FileName)
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
        };
        foreach (var argument in startInfo.Arguments)
        {
            psi.ArgumentList.Add(argument);
        }

        if (startInfo.WorkingDirectory is not null)
        {
            psi.WorkingDirectory = startInfo.WorkingDirectory;
        }

        psi.Environment["TCP_NODELAY"] = "1";
        foreach (var (key, value) in startInfo.Environment)
        {
            psi.Environment[key] = value;
        }

        var process = new Process { StartInfo = psi, EnableRaisingEvents = true };
        var peer = new PeerProcess(process, startInfo.Name ?? Path.GetFileName(startInfo.FileName));
        process.OutputDataReceived += (_, e) => peer.OnLine(e.Data);
        process.ErrorDataReceived += (_, e) => peer.OnLine(e.Data);
        try
        {
            process.Start();
        }
        catch (Win32Exception ex)
        {
            process.Dispose();
            throw new InvalidOperationException(
                $"Cannot start '{startInfo.FileName}' ({ex.Message}). Is it installed? Run scripts/install-peers.sh.", ex);
        }

        peer.Id = process.Id;
        process.StandardInput.Close();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        _ = peer.WatchExitAsync();
        return peer;
    }

    /// <summary>Waits until something accepts TCP connections on 127.0.0.1:<paramref name="port"/>.</summary>
    public Task WaitForTcpPortAsync(int port, TimeSpan timeout, CancellationToken cancellationToken = default) =>
        WaitUntilAsync($"127.0.0.1:{port} accepting TCP", async token =>
        {
            using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            try
            {
                await socket.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port), token);
                return true;
            }
            catch (SocketException)
            {
                return false;
            }
        }, timeout, cancellationToken);

    /// <summary>Waits until a GET of <paramref name="url"/> answers with a success status.</summary>
    public async Task WaitForHttpAsync(Uri url, TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
        await WaitUntilAsync($"GET {url} answering", async token =>
        {
            try
            {
                using var response = await http.GetAsync(url, token);
                return response.IsSuccessStatusCode;
            }
            catch (HttpRequestException)
            {
                return false;
            }
        }, timeout, cancellationToken);
    }

    /// <summary>Waits for an output line (stdout or stderr, already seen or still to come) that matches.</summary>
    public async Task<string> WaitForLineAsync(Func<string, bool> match, TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(match);
        var found = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_gate)
        {
            var seen = _lines.Find(line => match(line));
            if (seen is not null)
            {
                return seen;
            }

            _lineWaiters.Add((match, found));
        }

        try
        {
            var winner = await Task.WhenAny(found.Task, Exited).WaitAsync(timeout, cancellationToken);
            if (winner == found.Task || found.Task.IsCompleted)
            {
                return await found.Task;
            }

            throw new InvalidOperationException($"{Name} exited with code {Exited.Result} before printing the awaited line.\n{Output}");
        }
        catch (TimeoutException)
        {
            throw new TimeoutException($"{Name} printed no matching line within {timeout}.\n{Output}");
        }
        finally
        {
            lock (_gate)
            {
                _lineWaiters.RemoveAll(w => w.Found == found);
            }
        }
    }

    public Task<string> WaitForLineAsync(Regex pattern, TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(pattern);
        return WaitForLineAsync(pattern.IsMatch, timeout, cancellationToken);
    }

    /// <summary>Kills the process and all its children (e.g. a node killed mid-transfer) and waits for the exit.</summary>
    public async Task KillAsync()
    {
        KillTree();
        try
        {
            await Exited.WaitAsync(s_killWait);
        }
        catch (TimeoutException)
        {
            throw new TimeoutException($"{Name} (pid {Id}) did not exit within {s_killWait} of being killed.");
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        KillTree();
        await Exited.WaitAsync(s_killWait).ContinueWith(_ => { }, TaskScheduler.Default);
        _process.Dispose();
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        KillTree();
        _process.WaitForExit(s_killWait);
        _process.Dispose();
    }

    public override string ToString() => $"{Name} (pid {Id})";

    private void KillTree()
    {
        if (HasExited)
        {
            return;
        }

        try
        {
            _process.Kill(entireProcessTree: true);
        }
        catch (InvalidOperationException)
        {
            // Exited in the meantime.
        }
        catch (Win32Exception)
        {
            // Exited in the meantime, or a child vanished while the tree was walked.
        }
    }

    private async Task WaitUntilAsync(string what, Func<CancellationToken, Task<bool>> probe, TimeSpan timeout, CancellationToken cancellationToken)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(timeout);
        try
        {
            while (true)
            {
                if (HasExited)
                {
                    throw new InvalidOperationException($"{Name} exited with code {Exited.Result} before {what}.\n{Output}");
                }

                if (await probe(deadline.Token))
                {
                    return;
                }

                // A poll, not a sleep: nothing signals "port open"; the exit of the process ends the wait at once.
                await Task.WhenAny(Task.Delay(s_pollInterval, deadline.Token), Exited);
            }
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new TimeoutException($"{Name}: no {what} within {timeout}.\n{Output}");
        }
    }

    private void OnLine(string? line)
    {
        if (line is null)
        {
            return;
        }

        List<TaskCompletionSource<string>>? matched = null;
        lock (_gate)
        {
            if (_lines.Count >= MaxKeptLines)
            {
                _lines.RemoveAt(0);
                _droppedLines++;
            }

            _lines.Add(line);
            foreach (var (match, found) in _lineWaiters)
            {
                if (match(line))
                {
                    (matched ??= []).Add(found);
                }
            }
        }

        matched?.ForEach(found => found.TrySetResult(line));
    }

    private async Task WatchExitAsync()
    {
        // WaitForExitAsync also waits for the end of the redirected output, so every line is in by then.
        await _process.WaitForExitAsync();
        _exited.TrySetResult(_process.ExitCode);
    }
}

using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace ImagingProxy.PeerTests.Dicom;

/// <summary>Runs a dcmtk tool (installed under /usr/bin) with TCP_NODELAY=1, collecting its output; killed on dispose.</summary>
internal sealed class DcmtkProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _output = new();

    private DcmtkProcess(string tool, IEnumerable<string> arguments)
    {
        var start = new ProcessStartInfo($"/usr/bin/{tool}")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = Path.GetTempPath(),
        };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        start.Environment["TCP_NODELAY"] = "1";
        _process = new Process { StartInfo = start };
        _process.OutputDataReceived += (_, e) => Append(e.Data);
        _process.ErrorDataReceived += (_, e) => Append(e.Data);
    }

    public string Output
    {
        get
        {
            lock (_output)
            {
                return _output.ToString();
            }
        }
    }

    public static DcmtkProcess Start(string tool, params string[] arguments)
    {
        var process = new DcmtkProcess(tool, arguments);
        process._process.Start();
        process._process.BeginOutputReadLine();
        process._process.BeginErrorReadLine();
        return process;
    }

    /// <summary>Starts storescp on a free loopback port and returns once the port accepts connections.</summary>
    public static async Task<(DcmtkProcess Process, int Port)> StartStorescpAsync(string aeTitle, params string[] options)
    {
        var port = FreePort();
        var process = Start("storescp", ["-aet", aeTitle, .. options, port.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
        await process.WaitUntilListeningAsync(port);
        return (process, port);
    }

    /// <summary>Binds port 0 on loopback, reads the port the OS chose, and releases it.</summary>
    public static int FreePort()
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)socket.LocalEndPoint!).Port;
    }

    public async Task<int> WaitForExitAsync(TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        await _process.WaitForExitAsync(cts.Token);
        return _process.ExitCode;
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            await _process.WaitForExitAsync(cts.Token);
        }

        _process.Dispose();
    }

    // storescp prints nothing when it starts listening, so there is no event to await: probe the port until it accepts.
    private async Task WaitUntilListeningAsync(int port)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (true)
        {
            Assert.False(_process.HasExited, $"storescp exited early: {Output}");
            using var probe = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            try
            {
                await probe.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port));
                return;
            }
            catch (SocketException) when (DateTime.UtcNow < deadline)
            {
                await Task.Delay(50);
            }
        }
    }

    private void Append(string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (_output)
        {
            _output.AppendLine(line);
        }
    }
}

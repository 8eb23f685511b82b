using System.Globalization;
using ImagingProxy.PeerTests.Peers;

namespace ImagingProxy.PeerTests.Mllp;

/// <summary>A running tests/peers/hl7_node.py (python3-hl7 MLLP receiver) with its message log.</summary>
internal sealed class Hl7Node : IAsyncDisposable
{
    private readonly PeerProcess _process;

    private Hl7Node(PeerProcess process, int port, string logPath)
    {
        _process = process;
        Port = port;
        LogPath = logPath;
    }

    public int Port { get; }

    public string LogPath { get; }

    public string Address => $"tcp://127.0.0.1:{Port.ToString(CultureInfo.InvariantCulture)}";

    public static async Task<Hl7Node> StartAsync(string directory, string name, params string[] options)
    {
        var log = Path.Combine(directory, name + ".log");
        var script = Path.Combine(PythonHl7.RepositoryRoot, "tests", "peers", "hl7_node.py");
        var process = PeerProcess.Start(new PeerStartInfo(PythonHl7.Python)
        {
            Arguments = [script, "--host", "127.0.0.1", "--port", "0", "--log", log, .. options],
            Name = name,
        });
        try
        {
            var line = await process.WaitForLineAsync(l => l.StartsWith("LISTENING ", StringComparison.Ordinal), PythonHl7.Timeout);
            return new Hl7Node(process, int.Parse(line["LISTENING ".Length..], CultureInfo.InvariantCulture), log);
        }
        catch
        {
            await process.DisposeAsync();
            throw;
        }
    }

    /// <summary>MSH-10 of every message the node received (its log: "&lt;MSH-10&gt; &lt;MSH-9&gt;" per line).</summary>
    public async Task<List<(string ControlId, string MessageType)>> ReceivedAsync()
    {
        if (!File.Exists(LogPath))
        {
            return [];
        }

        var lines = await File.ReadAllLinesAsync(LogPath);
        return lines.Where(l => l.Length > 0).Select(l => l.Split(' ', 2)).Select(p => (p[0], p.Length > 1 ? p[1] : string.Empty)).ToList();
    }

    public Task KillAsync() => _process.KillAsync();

    public ValueTask DisposeAsync() => _process.DisposeAsync();
}

namespace ImagingProxy.PeerTests.Peers;

/// <summary>
/// A running dcmtk storescp. It binds all interfaces (it has no listen-address option); the port is a free
/// loopback port. Dispose kills it (and its forked children) and deletes an output directory it owns.
/// </summary>
public sealed class StoreScp : IAsyncDisposable, IDisposable
{
    private readonly TempDirectory? _ownedDirectory;

    internal StoreScp(PeerProcess process, string aeTitle, int port, string outputDirectory, TempDirectory? ownedDirectory)
    {
        Process = process;
        AeTitle = aeTitle;
        Port = port;
        OutputDirectory = outputDirectory;
        _ownedDirectory = ownedDirectory;
    }

    public PeerProcess Process { get; }

    public string AeTitle { get; }

    public int Port { get; }

    public string OutputDirectory { get; }

    public DicomNode Node => new(AeTitle, "127.0.0.1", Port);

    /// <summary>The files received so far (storescp names them <c>MODALITY.SOPInstanceUID</c>).</summary>
    public IReadOnlyList<string> ReceivedFiles() =>
        [.. Directory.EnumerateFiles(OutputDirectory, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal)];

    public Task KillAsync() => Process.KillAsync();

    public async ValueTask DisposeAsync()
    {
        await Process.DisposeAsync();
        _ownedDirectory?.Dispose();
    }

    public void Dispose()
    {
        Process.Dispose();
        _ownedDirectory?.Dispose();
    }
}

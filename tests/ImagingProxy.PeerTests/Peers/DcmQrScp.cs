namespace ImagingProxy.PeerTests.Peers;

/// <summary>
/// A running dcmtk dcmqrscp (C-STORE, C-FIND, C-MOVE, C-GET SCP) with its config and database in a temp directory.
/// Dispose kills it and deletes the directory.
/// </summary>
public sealed class DcmQrScp : IAsyncDisposable, IDisposable
{
    private readonly TempDirectory _directory;

    internal DcmQrScp(PeerProcess process, string aeTitle, int port, TempDirectory directory, string configPath, string databaseDirectory)
    {
        Process = process;
        AeTitle = aeTitle;
        Port = port;
        _directory = directory;
        ConfigPath = configPath;
        DatabaseDirectory = databaseDirectory;
    }

    public PeerProcess Process { get; }

    public string AeTitle { get; }

    public int Port { get; }

    public string ConfigPath { get; }

    public string DatabaseDirectory { get; }

    public DicomNode Node => new(AeTitle, "127.0.0.1", Port);

    public Task KillAsync() => Process.KillAsync();

    public async ValueTask DisposeAsync()
    {
        await Process.DisposeAsync();
        _directory.Dispose();
    }

    public void Dispose()
    {
        Process.Dispose();
        _directory.Dispose();
    }
}

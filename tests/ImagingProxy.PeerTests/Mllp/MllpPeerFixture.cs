using ImagingProxy.Testing;

namespace ImagingProxy.PeerTests.Mllp;

/// <summary>
/// What the MLLP peer test classes share: a temporary folder for node logs, the python3-hl7 nodes a test starts
/// (tests/peers/hl7_node.py) and the proxy under test; all stopped and removed after each test.
/// </summary>
public abstract class MllpPeerFixture(string prefix) : IAsyncLifetime
{
    protected string Folder { get; } = Directory.CreateTempSubdirectory(prefix).FullName;

    private protected List<Hl7Node> Nodes { get; } = [];

    protected TestProxy? Proxy { get; set; }

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        if (Proxy is not null)
        {
            await Proxy.DisposeAsync();
        }

        foreach (var node in Nodes)
        {
            await node.DisposeAsync();
        }

        Directory.Delete(Folder, recursive: true);
    }

    private protected async Task<Hl7Node> NodeAsync(string name, params string[] options)
    {
        var node = await Hl7Node.StartAsync(Folder, name, options);
        Nodes.Add(node);
        return node;
    }
}

using ImagingProxy.Testing;

namespace ImagingProxy.PeerTests.Peers;

/// <summary>
/// nginx servers (<see cref="NginxNode"/>) behind an in-process ImagingProxy whose configuration names them, started
/// together and stopped together: the proxy first, then the servers.
/// </summary>
public sealed class NginxBehindProxy : IAsyncDisposable
{
    private readonly List<NginxNode> _nodes = [];

    private NginxBehindProxy()
    {
    }

    /// <summary>The certificate of the proxy's HTTPS endpoints (<see cref="TestCertificate.TrustingHandler"/> for clients).</summary>
    public TestCertificate Certificate { get; } = new();

    /// <summary>The servers, in the order of their <c>server</c> blocks.</summary>
    public IReadOnlyList<NginxNode> Nodes => _nodes;

    public TestProxy Proxy { get; private set; } = null!;

    /// <summary>
    /// Starts one nginx per <c>server</c> block body, then the proxy with the clusters and routes
    /// <paramref name="configure"/> writes for them (as <see cref="TestConfig.Build"/> takes them).
    /// </summary>
    public static async Task<NginxBehindProxy> StartAsync(IEnumerable<string> servers, Func<IReadOnlyList<NginxNode>, (string Clusters, string Routes)> configure)
    {
        ArgumentNullException.ThrowIfNull(servers);
        ArgumentNullException.ThrowIfNull(configure);
        var started = new NginxBehindProxy();
        try
        {
            foreach (var server in servers)
            {
                started._nodes.Add(await NginxNode.StartAsync(server));
            }

            var (clusters, routes) = configure(started._nodes);
            started.Proxy = await TestProxy.StartAsync(TestConfig.Build(started.Certificate, clusters, routes));
            return started;
        }
        catch
        {
            await started.DisposeAsync();
            throw;
        }
    }

    /// <summary>A client of the proxy's HTTPS <c>Viewers</c> endpoint.</summary>
    public HttpClient ViewersClient() => new(Certificate.TrustingHandler()) { BaseAddress = Proxy.Url("Viewers", "https") };

    public async ValueTask DisposeAsync()
    {
        if (Proxy is not null)
        {
            await Proxy.DisposeAsync();
        }

        foreach (var node in _nodes)
        {
            await node.DisposeAsync();
        }

        Certificate.Dispose();
    }
}

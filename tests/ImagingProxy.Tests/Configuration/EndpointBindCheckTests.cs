using System.Net;
using System.Net.Sockets;
using ImagingProxy.Configuration;
using Microsoft.Extensions.Configuration;

namespace ImagingProxy.Tests.Configuration;

/// <summary>A reload that moves a Kestrel endpoint is checked by binding the new address first; only moves are checked.</summary>
public sealed class EndpointBindCheckTests : IDisposable
{
    private readonly TcpListener _taken = new(IPAddress.Loopback, 0);

    public EndpointBindCheckTests() => _taken.Start();

    private int TakenPort => ((IPEndPoint)_taken.LocalEndpoint).Port;

    public void Dispose() => _taken.Stop();

    private static IConfiguration Endpoints(params (string Name, string Url)[] endpoints)
        => new ConfigurationBuilder().AddInMemoryCollection(endpoints.Select(e => new KeyValuePair<string, string?>($"Kestrel:Endpoints:{e.Name}:Url", e.Url))).Build();

    [Theory]
    [InlineData("http://127.0.0.1:{0}", "address already in use")]
    [InlineData("http://localhost:{0}", "address already in use")]
    [InlineData("http://*:{0}", "address already in use")]
    [InlineData("http://192.0.2.1:8080", "the address is not on this host")]
    public void A_moved_endpoint_whose_address_cannot_be_bound_is_a_problem(string url, string error)
    {
        var target = string.Format(System.Globalization.CultureInfo.InvariantCulture, url, TakenPort);

        var problems = EndpointBindCheck.Problems(Endpoints(("Viewers", "http://127.0.0.1:0")), Endpoints(("Viewers", target)));

        Assert.Equal([$"Kestrel:Endpoints:Viewers:Url: '{target}' cannot be bound ({error}); the endpoint stays on its current address."], problems);
    }

    [Fact]
    public void An_address_in_use_by_a_running_endpoint_that_stays_or_not_on_this_host_is_still_a_problem()
    {
        var taken = $"http://127.0.0.1:{TakenPort}";

        // Admin keeps the port (the TcpListener plays it) while Viewers moves onto it: Kestrel would fail too.
        var stays = EndpointBindCheck.Problems(Endpoints(("Viewers", "http://127.0.0.1:0"), ("Admin", taken)), Endpoints(("Viewers", taken), ("Admin", taken)));
        Assert.Equal([$"Kestrel:Endpoints:Viewers:Url: '{taken}' cannot be bound (address already in use); the endpoint stays on its current address."], stays);

        // Viewers moves to another address on the port it holds now, an address this host does not have.
        var elsewhere = $"http://192.0.2.1:{TakenPort}";
        Assert.Equal(
            [$"Kestrel:Endpoints:Viewers:Url: '{elsewhere}' cannot be bound (the address is not on this host); the endpoint stays on its current address."],
            EndpointBindCheck.Problems(Endpoints(("Viewers", taken)), Endpoints(("Viewers", elsewhere))));

        Assert.Equal(
            ["Kestrel:Endpoints:Viewers:Url: 'http://localhost:0': Kestrel cannot bind localhost to a dynamic port (0); name 127.0.0.1 or [::1]."],
            EndpointBindCheck.Problems(Endpoints(("Viewers", taken)), Endpoints(("Viewers", "http://localhost:0"))));
    }

    [Fact]
    public void Unchanged_urls_ports_the_running_endpoints_hold_and_port_0_are_not_tried()
    {
        var taken = $"http://127.0.0.1:{TakenPort}";

        // Unchanged (the running endpoint itself holds the port), moved onto a port a running endpoint holds (Kestrel
        // frees it in the same rebind: here a scheme change), and an ephemeral port.
        Assert.Empty(EndpointBindCheck.Problems(Endpoints(("Viewers", taken)), Endpoints(("Viewers", taken))));
        Assert.Empty(EndpointBindCheck.Problems(Endpoints(("Viewers", taken)), Endpoints(("Viewers", $"https://127.0.0.1:{TakenPort}"))));
        Assert.Empty(EndpointBindCheck.Problems(Endpoints(("Viewers", "http://127.0.0.1:0")), Endpoints(("Viewers", "http://127.0.0.1:0/"))));
    }

    [Fact]
    public void The_gate_names_the_endpoints_a_reload_rebinds()
    {
        Dictionary<string, string?> before = new(StringComparer.OrdinalIgnoreCase)
        {
            ["Kestrel:Endpoints:Viewers:Url"] = "https://0.0.0.0:443",
            ["Kestrel:Endpoints:Xds:Url"] = "http://0.0.0.0:17035",
            ["Kestrel:Endpoints:Admin:Url"] = "http://0.0.0.0:9901",
            ["Kestrel:Limits:MaxRequestBodySize"] = "10",
        };
        Dictionary<string, string?> after = new(before, StringComparer.OrdinalIgnoreCase)
        {
            ["Kestrel:Endpoints:Viewers:Url"] = "https://0.0.0.0:8443",
            ["Kestrel:Endpoints:Admin:Certificate:Path"] = "admin.pem",
            ["Kestrel:Limits:MaxRequestBodySize"] = "20",
        };

        Assert.Equal(["Admin", "Viewers"], ConfigurationGate.ChangedEndpoints(before, after));
        Assert.Empty(ConfigurationGate.ChangedEndpoints(before, new(before, StringComparer.OrdinalIgnoreCase)));

        // Shared settings rebind every endpoint.
        Dictionary<string, string?> defaults = new(before, StringComparer.OrdinalIgnoreCase) { ["Kestrel:EndpointDefaults:SslProtocols:0"] = "Tls13" };
        Assert.Equal(["Admin", "Viewers", "Xds"], ConfigurationGate.ChangedEndpoints(before, defaults));
    }
}

using System.Text.Json;
using ImagingProxy.Forwarding;
using ImagingProxy.PeerTests.Mllp;
using ImagingProxy.Testing;

namespace ImagingProxy.PeerTests.Forwarding;

// Real peer: python3-zeep (Debian), a SOAP 1.1 and 1.2 client (tests/peers/soap_client.py), calling the Xds endpoint
// whose registry is on a closed port. zeep reads an answer as a fault only in its own SOAP version: a SOAP 1.2 fault
// sent to its SOAP 1.1 binding comes out as "Unknown fault occured" with no code.
public sealed class ZeepSoapFaultTests : IAsyncLifetime
{
    private readonly TestCertificate _certificate = new();
    private TestProxy? _proxy;
    private ClosedPort? _closed;

    public async Task InitializeAsync()
    {
        _closed = new ClosedPort();
        var closed = _closed.Port;
        _proxy = await TestProxy.StartAsync(TestConfig.Build(
            _certificate,
            $$"""{ "xds-registry": { "Destinations": { "registry": { "Address": "http://127.0.0.1:{{closed}}/" } } } }""",
            "{}",
            """{ "Xds": { "RegistryCluster": "xds-registry" } }"""));
    }

    public async Task DisposeAsync()
    {
        if (_proxy is not null)
        {
            await _proxy.DisposeAsync();
        }

        _closed?.Dispose();
        _certificate.Dispose();
    }

    [Theory(Timeout = 120_000)]
    [InlineData("11", XdsAction.RegistryStoredQuery, "soap:Server", "The registry for ITI-18 could not be reached (connection refused); retry later.")]
    [InlineData("12", XdsAction.RegistryStoredQuery, "env:Receiver", "The registry for ITI-18 could not be reached (connection refused); retry later.")]
    [InlineData("11", "urn:ihe:iti:2007:CrossGatewayQuery", "soap:Client", "Unknown SOAP action 'urn:ihe:iti:2007:CrossGatewayQuery': this endpoint serves ITI-18, ITI-41, ITI-42 and ITI-43.")]
    [InlineData("12", "urn:ihe:iti:2007:CrossGatewayQuery", "env:Sender", "Unknown SOAP action 'urn:ihe:iti:2007:CrossGatewayQuery': this endpoint serves ITI-18, ITI-41, ITI-42 and ITI-43.")]
    public async Task A_soap_client_reads_the_proxys_fault_in_its_own_soap_version(string soap, string action, string code, string message)
    {
        var script = Path.Combine(PythonHl7.RepositoryRoot, "tests", "peers", "soap_client.py");
        var url = new Uri(_proxy!.Url("Xds"), "/axis2/services/xds").ToString();

        var (exitCode, output, error) = await PythonHl7.RunAsync(PythonHl7.StartInfo(PythonHl7.Python, script, "--url", url, "--soap", soap, "--action", action));

        Assert.True(exitCode == 0, $"soap_client.py exited {exitCode}: {error}");
        using var result = JsonDocument.Parse(output);
        Assert.Equal("fault", result.RootElement.GetProperty("outcome").GetString());
        Assert.Equal(code, result.RootElement.GetProperty("code").GetString());
        Assert.Equal(message, result.RootElement.GetProperty("message").GetString());
    }
}

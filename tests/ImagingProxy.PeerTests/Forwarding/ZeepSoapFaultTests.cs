using System.Text.Json;
using ImagingProxy.Forwarding;
using ImagingProxy.PeerTests.Mllp;
using ImagingProxy.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

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
            """{ "Xds": { "RegistryCluster": "xds-registry" } }"""),
            builder => builder.Logging.AddFakeLogging());
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

    [Theory(Timeout = 120_000)]
    [InlineData("11", "soap:Client")]
    [InlineData("12", "env:Sender")]
    public async Task A_soap_client_whose_action_holds_a_control_character_reads_the_fault_and_the_log_line_shows_it_as_text(string soap, string code)
    {
        // The action on the wire holds an escape sequence (ESC [31m, a terminal's red); XML 1.0 has no way to carry ESC,
        // so a fault quoting it raw is no XML at all and zeep reported a TransportError instead of the fault.
        var script = Path.Combine(PythonHl7.RepositoryRoot, "tests", "peers", "soap_client.py");
        var url = new Uri(_proxy!.Url("Xds"), "/axis2/services/xds").ToString();

        var (exitCode, output, error) = await PythonHl7.RunAsync(PythonHl7.StartInfo(
            PythonHl7.Python, script, "--url", url, "--soap", soap, "--action", "urn:test:Probe", "--sent-action", @"urn:test:\x1b[31mProbe"));

        Assert.True(exitCode == 0, $"soap_client.py exited {exitCode}: {error}");
        using var result = JsonDocument.Parse(output);
        Assert.True(result.RootElement.GetProperty("outcome").GetString() == "fault", output);
        Assert.Equal(code, result.RootElement.GetProperty("code").GetString());
        Assert.Equal(@"Unknown SOAP action 'urn:test:\x1B[31mProbe': this endpoint serves ITI-18, ITI-41, ITI-42 and ITI-43.", result.RootElement.GetProperty("message").GetString());
        var logged = _proxy.Services.GetFakeLogCollector().GetSnapshot().Where(r => r.Id.Id == 400).Select(r => r.Message).ToList();
        Assert.Contains(@"XDS request from 127.0.0.1 refused: Unknown action 'urn:test:\x1B[31mProbe'.", logged);
    }
}

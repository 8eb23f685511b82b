using System.Globalization;
using ImagingProxy.Configuration;
using ImagingProxy.Mllp;
using ImagingProxy.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using Microsoft.Extensions.Logging;
using Yarp.ReverseProxy.Model;
using static ImagingProxy.PeerTests.Dicom.DicomProxyHarness;

namespace ImagingProxy.PeerTests.Mllp;

/// <summary>
/// MLLP from ImagingProxy to HL7 receivers over TLS (<c>tls://</c> destinations). Peer: tests/peers/hl7_node.py
/// (python3-hl7) serving MLLP over TLS with Python's ssl module and requiring a client certificate from the test CA.
/// </summary>
public sealed class MllpNodeTlsTests : IAsyncLifetime
{
    private static readonly TimeSpan s_timeout = TimeSpan.FromSeconds(60);

    private readonly string _directory = Directory.CreateTempSubdirectory("mllp-node-tls-").FullName;
    private readonly TestCertificateAuthority _ca = new();
    private readonly TestCertificateAuthority _foreign = new("Some Other CA");
    private readonly List<Hl7Node> _nodes = [];
    private TestProxy? _proxy;

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        if (_proxy is not null)
        {
            await _proxy.DisposeAsync();
        }

        foreach (var node in _nodes)
        {
            await node.DisposeAsync();
        }

        _ca.Dispose();
        _foreign.Dispose();
        Directory.Delete(_directory, recursive: true);
    }

    [Fact]
    public async Task Messages_reach_a_tls_node_that_requires_the_proxys_client_certificate_and_each_ack_comes_back_for_its_message()
    {
        var node = await StartTlsNodeAsync("tls", _ca);
        _proxy = await TestProxy.StartAsync(MllpProxyConfig.Create(
            new Dictionary<string, string[]> { ["orders"] = [TlsAddress(node)] }, [("*", "orders")], metadata: TlsMetadata()));
        using var timeout = new CancellationTokenSource(s_timeout);
        await using var first = await MllpClient.ConnectAsync(_proxy.Port("hl7"), timeout.Token);
        await using var second = await MllpClient.ConnectAsync(_proxy.Port("hl7"), timeout.Token);

        for (var i = 0; i < 20; i++)
        {
            foreach (var (client, name) in new[] { (first, "A"), (second, "B") })
            {
                var controlId = $"{name}{i:D3}";
                var reply = await client.SendAsync(MllpClient.Message(controlId), timeout.Token);
                Assert.NotNull(reply);
                Assert.Equal(AcknowledgmentCode.ApplicationAccept, reply.Code);
                Assert.Equal(controlId, reply.ControlId);
            }
        }

        var received = await node.ReceivedAsync();
        Assert.Equal(40, received.Count);
        Assert.Equal(40, received.Select(r => r.ControlId).Distinct().Count());
        var pool = _proxy.Services.GetRequiredService<MllpNodePool>();
        Assert.Equal(2, pool.RentedCount(TlsAddress(node)));
    }

    [Fact]
    public async Task A_node_with_an_untrusted_certificate_gets_no_message_and_its_connect_probe_fails_on_the_certificate()
    {
        var untrusted = await StartTlsNodeAsync("untrusted", _foreign);
        var trusted = await StartTlsNodeAsync("trusted", _ca);
        var clusters = new Dictionary<string, string[]> { ["orders"] = [TlsAddress(untrusted), TlsAddress(trusted)] };
        using var timeout = new CancellationTokenSource(s_timeout);

        // No health checks: a message offered to the untrusted node (every other new connection) fails over to the other.
        await using (var proxy = await TestProxy.StartAsync(MllpProxyConfig.Create(clusters, [("*", "orders")], metadata: TlsMetadata())))
        {
            using var retries = new MetricCollector<long>(proxy.Services.GetRequiredService<System.Diagnostics.Metrics.IMeterFactory>(), ImagingProxy.Telemetry.ImagingProxyTelemetry.MeterName, "imagingproxy.hl7.retries");
            for (var c = 0; c < 4; c++)
            {
                await using var client = await MllpClient.ConnectAsync(proxy.Port("hl7"), timeout.Token);
                var reply = await client.SendAsync(MllpClient.Message($"C{c}"), timeout.Token);
                Assert.NotNull(reply);
                Assert.Equal(AcknowledgmentCode.ApplicationAccept, reply.Code);
            }

            Assert.Contains(retries.GetMeasurementSnapshot(), m => Equals(m.Tags["destination"], "orders-node1"));
        }

        Assert.Empty(await untrusted.ReceivedAsync());
        Assert.Equal(4, (await trusted.ReceivedAsync()).Count);

        // The Connect probe of a tls:// node completes the handshake.
        _proxy = await TestProxy.StartAsync(MllpProxyConfig.Create(clusters, [("*", "orders")], metadata: TlsMetadata(), activeHealth: true));
        using var details = new ProbeRecorder(_proxy, "orders-node1", "orders-node2");

        await WaitForHealthAsync(_proxy, "orders", d => d.Health.Active == (d.DestinationId == "orders-node2" ? DestinationHealth.Healthy : DestinationHealth.Unhealthy), ["orders-node1", "orders-node2"], TimeSpan.FromSeconds(30));
        await details.WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Contains("remote certificate is invalid", details["orders-node1"].Detail, StringComparison.Ordinal);
        Assert.Equal("TLS session opened", details["orders-node2"].Detail);
    }

    [Fact]
    public async Task A_cluster_without_a_client_certificate_gets_an_ar_nak_and_the_log_points_to_the_client_certificate_setting()
    {
        // The node requires a client certificate; TLS 1.3 tells the client it was refused only after the handshake.
        var node = await StartTlsNodeAsync("tls", _ca);
        _proxy = await TestProxy.StartAsync(
            MllpProxyConfig.Create(new Dictionary<string, string[]> { ["orders"] = [TlsAddress(node)] }, [("*", "orders")], metadata: new Dictionary<string, string> { [MetadataKeys.TlsCaPath] = _ca.CertificatePath }),
            builder => builder.Logging.AddFakeLogging());
        using var timeout = new CancellationTokenSource(s_timeout);
        await using var client = await MllpClient.ConnectAsync(_proxy.Port("hl7"), timeout.Token);

        var reply = await client.SendAsync(MllpClient.Message("NOCERT1"), timeout.Token);

        Assert.NotNull(reply);
        Assert.Equal(AcknowledgmentCode.ApplicationReject, reply.Code);
        Assert.Equal("NOCERT1", reply.ControlId);
        Assert.Empty(await node.ReceivedAsync());
        var logs = _proxy.Services.GetFakeLogCollector().GetSnapshot().Select(r => r.Message).ToList();
        Assert.True(
            logs.Any(m => m.Contains("NOCERT1", StringComparison.Ordinal) && m.Contains("Tls.ClientCertificatePath", StringComparison.Ordinal)),
            string.Join('\n', logs.Where(m => m.Contains("NOCERT1", StringComparison.Ordinal))));
    }

    private async Task<Hl7Node> StartTlsNodeAsync(string name, TestCertificateAuthority issuer)
    {
        var (certificate, key) = issuer.IssueServer();
        var node = await Hl7Node.StartAsync(_directory, name, "--tls-cert", certificate, "--tls-key", key, "--tls-ca", _ca.CertificatePath);
        _nodes.Add(node);
        return node;
    }

    private static string TlsAddress(Hl7Node node) => $"tls://127.0.0.1:{node.Port.ToString(CultureInfo.InvariantCulture)}";

    private Dictionary<string, string> TlsMetadata()
    {
        var (certificate, key) = _ca.IssueClient();
        return new()
        {
            [MetadataKeys.TlsCaPath] = _ca.CertificatePath,
            [MetadataKeys.TlsClientCertificatePath] = certificate,
            [MetadataKeys.TlsClientKeyPath] = key,
        };
    }
}

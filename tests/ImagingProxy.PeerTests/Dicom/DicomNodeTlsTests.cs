using System.Text;
using System.Text.Json;
using ImagingProxy.Dicom;
using ImagingProxy.PeerTests.Peers;
using ImagingProxy.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using Microsoft.Extensions.Logging;
using Yarp.ReverseProxy.Model;
using static ImagingProxy.PeerTests.Dicom.DicomProxyHarness;

namespace ImagingProxy.PeerTests.Dicom;

/// <summary>
/// TLS from ImagingProxy to DICOM TLS nodes (<c>tls://</c> destinations). Peers: dcmtk storescp <c>+tls</c>, which by
/// default requires and verifies the client's certificate (<c>-rc</c>), as DICOM TLS nodes do; storescu and echoscu as
/// plain-TCP clients of the proxy. Certificates come from test CAs (<see cref="TestCertificateAuthority"/>).
/// </summary>
public sealed class DicomNodeTlsTests
{
    [Theory(Timeout = 90_000)]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Storescu_files_arrive_byte_identical_at_a_tls_storescp_that_requires_the_proxys_client_certificate(bool earlyConnect)
    {
        using var ca = new TestCertificateAuthority();
        using var files = TestDicomFiles.Create();
        var sent = await files.CreateSeriesAsync(3);
        var (scp, nodeCertificate) = await StartTlsStoreScpWithCertificateAsync(ca, ca);
        await using var _ = scp;
        var client = ca.IssueClient();
        await using var proxy = await StartAsync(
            TlsCluster("pacs", [("pacs1", scp.Port)], ca.CertificatePath, client),
            Route("any", "*", "pacs"),
            earlyConnect);
        using var recorder = Record(proxy);

        var result = await Dcmtk.StoreAsync(proxy.Port("dicom"), "PACS", sent.Select(f => f.Path));

        Assert.True(result.Succeeded, $"{result}\n--- storescp ---\n{scp.Process.Output}");
        await AssertReceivedAsync(scp, sent);
        var summary = Assert.Single(await recorder.WaitAsync(1));
        Assert.Equal(DicomAssociationEndReason.Released, summary.Reason);
        Assert.Equal(3, summary.CStoreRequests);
        Assert.Equal(1, summary.Attempts);

        // The expiry gauge: the node's certificate as it presented it, and the proxy's own client certificate.
        using var expirations = new MetricCollector<double>(proxy.Services.GetRequiredService<System.Diagnostics.Metrics.IMeterFactory>(), ImagingProxy.Telemetry.ImagingProxyTelemetry.MeterName, "imagingproxy.tls.certificate.expiration_timestamp");
        expirations.RecordObservableInstruments();
        var measured = expirations.GetMeasurementSnapshot();
        var node = Assert.Single(measured, m => Equals(m.Tags["role"], "node"));
        Assert.Equal(("pacs", "pacs1"), (node.Tags["cluster"], node.Tags["destination"]));
        Assert.Equal(NotAfter(nodeCertificate), node.Value);
        var own = Assert.Single(measured, m => Equals(m.Tags["role"], "client"));
        Assert.Equal(("pacs", "none"), (own.Tags["cluster"], own.Tags["destination"]));
        Assert.Equal(NotAfter(client.CertificatePath), own.Value);
    }

    [Fact(Timeout = 90_000)]
    public async Task A_tls_storescp_trusting_only_the_root_accepts_the_proxys_client_certificate_from_an_issuing_ca()
    {
        // storescp verifies clients against the hospital's root only: the issuing CA must come with the certificate.
        using var root = new TestCertificateAuthority("Hospital Root CA");
        using var issuing = new TestCertificateAuthority("Hospital Issuing CA", root);
        var scp = await StartTlsStoreScpAsync(root, root);
        await using var _ = scp;
        await using var proxy = await StartAsync(
            TlsCluster("pacs", [("pacs1", scp.Port)], root.CertificatePath, issuing.IssueClient()),
            Route("any", "*", "pacs"),
            earlyConnect: false);

        var echo = await Dcmtk.EchoAsync(proxy.Port("dicom"), "PACS");

        Assert.True(echo.Succeeded, $"{echo}\n--- storescp ---\n{scp.Process.Output}");
    }

    [Fact(Timeout = 90_000)]
    public async Task A_client_certificate_taken_out_of_the_clusters_metadata_and_a_node_moved_to_tcp_leave_the_expiry_gauge()
    {
        using var ca = new TestCertificateAuthority();
        var scp = await StartTlsStoreScpAsync(ca, ca);
        await using var _ = scp;
        var routes = Route("any", "*", "pacs");
        await using var proxy = await StartAsync(TlsCluster("pacs", [("pacs1", scp.Port)], ca.CertificatePath, ca.IssueClient()), routes);
        var echo = await Dcmtk.EchoAsync(proxy.Port("dicom"), "PACS");
        Assert.True(echo.Succeeded, echo.ToString());
        using var expirations = new MetricCollector<double>(proxy.Services.GetRequiredService<System.Diagnostics.Metrics.IMeterFactory>(), ImagingProxy.Telemetry.ImagingProxyTelemetry.MeterName, "imagingproxy.tls.certificate.expiration_timestamp");
        expirations.RecordObservableInstruments();
        Assert.Equal(["client", "node"], expirations.GetMeasurementSnapshot().Select(m => (string)m.Tags["role"]!).Order());

        // The node no longer needs a client certificate: the one taken out of the configuration is no longer reported.
        Assert.Empty(await proxy.ReloadAsync(TestProxy.Config("{" + TlsCluster("pacs", [("pacs1", scp.Port)], ca.CertificatePath, clientCertificate: null) + "}", DicomProxyHarness.Dicom(routes))));
        expirations.Clear();
        expirations.RecordObservableInstruments();
        Assert.Equal("node", (string)Assert.Single(expirations.GetMeasurementSnapshot()).Tags["role"]!);

        // The node is reached over plain TCP now (TLS ended by a tunnel in front of it): its old certificate neither.
        var plain = $$""" "pacs": { "Metadata": { "Protocol": "Dicom" }, "Destinations": { "pacs1": { "Address": "tcp://127.0.0.1:{{Port(scp.Port)}}" } } } """;
        Assert.Empty(await proxy.ReloadAsync(TestProxy.Config("{" + plain + "}", DicomProxyHarness.Dicom(routes))));
        expirations.Clear();
        expirations.RecordObservableInstruments();
        Assert.Empty(expirations.GetMeasurementSnapshot());
    }

    private static double NotAfter(string certificatePath)
    {
        using var certificate = System.Security.Cryptography.X509Certificates.X509Certificate2.CreateFromPem(File.ReadAllText(certificatePath));
        return new DateTimeOffset(certificate.NotAfter.ToUniversalTime()).ToUnixTimeSeconds();
    }

    [Fact(Timeout = 90_000)]
    public async Task A_node_with_an_untrusted_certificate_is_failed_over_and_a_node_refusing_the_proxy_gets_no_association_each_with_the_reason_logged()
    {
        using var ca = new TestCertificateAuthority();
        using var foreign = new TestCertificateAuthority("Some Other CA");
        await using var untrusted = await StartTlsStoreScpAsync(server: foreign, clients: ca);
        await using var trusted = await StartTlsStoreScpAsync(server: ca, clients: ca);
        var client = ca.IssueClient();
        var clusters = TlsCluster("pacs", [("a-untrusted", untrusted.Port), ("b-trusted", trusted.Port)], ca.CertificatePath, client)
            + "," + TlsCluster("nocert", [("trusted", trusted.Port)], ca.CertificatePath, clientCertificate: null);
        await using var proxy = await TestProxy.StartAsync(
            TestProxy.Config("{" + clusters + "}", DicomProxyHarness.Dicom(Route("pacs", "PACS", "pacs") + "," + Route("nocert", "NOCERT", "nocert"))),
            builder => builder.Logging.AddFakeLogging());
        using var recorder = Record(proxy);
        using var failovers = new MetricCollector<long>(proxy.Services.GetRequiredService<System.Diagnostics.Metrics.IMeterFactory>(), DicomProxyMetrics.MeterName, "imagingproxy.dicom.failovers");

        var failedOver = await Dcmtk.EchoAsync(proxy.Port("dicom"), "PACS");
        var refused = await Dcmtk.EchoAsync(proxy.Port("dicom"), "NOCERT");

        Assert.True(failedOver.Succeeded, $"{failedOver}\n--- storescp ---\n{trusted.Process.Output}");
        Assert.False(refused.Succeeded, refused.ToString());
        Assert.Contains("Rejected Transient", refused.Output, StringComparison.OrdinalIgnoreCase);
        var summaries = await recorder.WaitAsync(2);
        var released = Assert.Single(summaries, s => s.Reason == DicomAssociationEndReason.Released);
        Assert.Equal("b-trusted", released.DestinationId);
        Assert.Equal(2, released.Attempts);
        Assert.Single(summaries, s => s.Reason == DicomAssociationEndReason.NoDestination);
        Assert.Contains(failovers.GetMeasurementSnapshot(), m => Equals(m.Tags["destination"], "a-untrusted"));

        var logs = proxy.Services.GetFakeLogCollector().GetSnapshot().Select(r => r.Message).ToList();
        Assert.Contains(logs, m => m.Contains("a-untrusted", StringComparison.Ordinal) && m.Contains("TLS handshake: The remote certificate is invalid", StringComparison.Ordinal));
        Assert.Contains(logs, m => m.Contains("cluster nocert", StringComparison.Ordinal) && m.Contains("TLS session ended", StringComparison.Ordinal) && m.Contains("Tls.ClientCertificatePath", StringComparison.Ordinal));
    }

    [Fact(Timeout = 90_000)]
    public async Task The_echo_probe_speaks_tls_a_trusted_node_is_healthy_and_an_untrusted_one_unhealthy_with_the_certificate_as_reason()
    {
        using var ca = new TestCertificateAuthority();
        using var foreign = new TestCertificateAuthority("Some Other CA");
        await using var untrusted = await StartTlsStoreScpAsync(server: foreign, clients: ca);
        await using var trusted = await StartTlsStoreScpAsync(server: ca, clients: ca);
        var clusters = TlsCluster("pacs", [("untrusted", untrusted.Port), ("trusted", trusted.Port)], ca.CertificatePath, ca.IssueClient());
        var at = clusters.IndexOf("\"Metadata\"", StringComparison.Ordinal);
        clusters = clusters.Insert(at, "\"HealthCheck\": { \"Active\": { \"Enabled\": true, \"Interval\": \"00:00:01\", \"Timeout\": \"00:00:05\" } }, ");
        await using var proxy = await TestProxy.StartAsync(
            TestProxy.Config("{" + clusters + "}", DicomProxyHarness.Dicom(Route("pacs", "PACS", "pacs"))),
            builder => builder.Logging.AddFakeLogging());
        using var details = new ProbeRecorder(proxy, "trusted", "untrusted");

        await WaitForHealthAsync(proxy, "pacs", d => d.Health.Active == (d.DestinationId == "trusted" ? DestinationHealth.Healthy : DestinationHealth.Unhealthy), ["trusted", "untrusted"], TimeSpan.FromSeconds(30));
        await details.WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Contains("remote certificate is invalid", details["untrusted"].Detail, StringComparison.Ordinal);
        Assert.True(details["trusted"].Healthy, details["trusted"].Detail);
        var logs = proxy.Services.GetFakeLogCollector().GetSnapshot();
        Assert.Contains(logs, r => r.Level == LogLevel.Warning && r.Message.Contains("'untrusted'", StringComparison.Ordinal) && r.Message.Contains("remote certificate is invalid", StringComparison.Ordinal));

        // The association path agrees with the probe: the untrusted node is not offered.
        var echo = await Dcmtk.EchoAsync(proxy.Port("dicom"), "PACS");
        Assert.True(echo.Succeeded, echo.ToString());
    }

    /// <summary>storescp with DICOM TLS: its certificate issued by <paramref name="server"/>, clients verified against <paramref name="clients"/> (required).</summary>
    private static async Task<StoreScp> StartTlsStoreScpAsync(TestCertificateAuthority server, TestCertificateAuthority clients)
        => (await StartTlsStoreScpWithCertificateAsync(server, clients)).Scp;

    /// <inheritdoc cref="StartTlsStoreScpAsync"/>
    private static async Task<(StoreScp Scp, string CertificatePath)> StartTlsStoreScpWithCertificateAsync(TestCertificateAuthority server, TestCertificateAuthority clients)
    {
        var (certificate, key) = server.IssueServer();
        return (await Dcmtk.StartStoreScpAsync(new StoreScpOptions { AeTitle = "PACS", ExtraArguments = ["+tls", key, certificate, "+cf", clients.CertificatePath] }), certificate);
    }

    /// <summary>A DICOM cluster of <c>tls://</c> destinations trusting <paramref name="caPath"/>, with an optional client certificate.</summary>
    private static string TlsCluster(string id, IEnumerable<(string Id, int Port)> destinations, string caPath, (string CertificatePath, string KeyPath)? clientCertificate)
    {
        var text = new StringBuilder();
        foreach (var (destinationId, port) in destinations)
        {
            text.Append(text.Length > 0 ? "," : string.Empty).Append($$""" "{{destinationId}}": { "Address": "tls://127.0.0.1:{{Port(port)}}" } """);
        }

        var metadata = new Dictionary<string, string> { ["Protocol"] = "Dicom", ["Tls.CaPath"] = caPath };
        if (clientCertificate is { } pair)
        {
            metadata["Tls.ClientCertificatePath"] = pair.CertificatePath;
            metadata["Tls.ClientKeyPath"] = pair.KeyPath;
        }

        return $$"""
            "{{id}}": { "LoadBalancingPolicy": "FirstAlphabetical", "Metadata": {{JsonSerializer.Serialize(metadata)}}, "Destinations": { {{text}} } }
            """;
    }
}
